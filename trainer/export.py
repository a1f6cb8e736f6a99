"""Export a trained run as a bundle: the pruned supernet's top-s paths as one ExecuTorch program
(one method per path) and ONNX graphs sharing one weights file, plus `manifest.json`.

BatchNorm: every path has its own BN statistics (recalibrated for that path), so folding BN into
the convolutions would give every path its own copy of every conv weight. Instead each BN becomes
a per-channel scale and shift (x * scale + shift) after the shared, unchanged conv weight: the
convs are stored once for all paths and only these small vectors are per path. In the .pte each
such affine is a 1x1 depthwise convolution (weight = scale, bias = shift: the same arithmetic),
which XNNPACK runs as one op in its NHWC layout with the vectors as static constants.

.pte size beyond the distinct weights is one XNNPACK graph per method (its nodes, values and
constant references) plus the program's tables; `write_pte` keeps it small by not letting the
graphs grow avoidable nodes (`DepthwiseAffine`, `_drop_zero_terms`), by short constant names
(`_shorten_named_keys`) and by a 64-byte segment alignment.

Every method and graph is checked against PyTorch before the bundle is moved into place.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import itertools
import json
import os
import platform
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from prp.runtime.backends import onnx_session_options
from prp.runtime.bundle import MANIFEST, SCHEMA_VERSION, load_manifest, sha256_file
from prp.runtime.policies import ladder_policies
from torch import Tensor, nn

from . import __version__
from .config import DEFAULT_COST_MODELS, TrainConfig
from .costs import get_cost_model, price_supernet
from .datasets import DataSplits, batches, load_dataset, to_tensor
from .errors import PRPError
from .profiling import PathTable, trace_ops
from .quantize import (
    CALIBRATION_IMAGES,
    FP32,
    INT8,
    QUANTIZE_CHOICES,
    Int8Path,
    constant_tensors,
    distinct_bytes,
    quantize_path,
)
from .runs import (
    CHECKPOINT,
    CONFIG,
    FRONT,
    one_line,
    read_checkpoint,
    read_config,
    read_json,
    write_json,
)
from .search import PathMetrics, chance_accuracy, select_along_front
from .spaces import Path as ArchPath
from .spaces import get_space
from .supernet import Supernet

ONNX_WEIGHTS = "weights.bin"
PTE = "supernet.pte"
# Each weight is its own segment of the .pte; ExecuTorch's default 128-byte alignment pads
# every per-path BN vector under 128 bytes to 128. 64 is a cache line and what SIMD loads want.
PTE_SEGMENT_ALIGNMENT = 64
CHECK_IMAGES = 8
TOLERANCE = 1e-3  # max abs logit difference allowed between PyTorch and an exported path
# An int8 method against its PT2E reference module: XNNPACK and ONNX Runtime requantize with
# their own integer rounding, and one-step differences add up over the layers (measured on the
# default run's paths: up to ~5 % of the largest logit, ONNX Runtime twice XNNPACK's); allowed:
# this fraction of the reference's largest logit magnitude on the check images.
INT8_TOLERANCE = 0.1


class ExportError(PRPError):
    """The run cannot be exported as asked; nothing was written."""


# ----------------------------------------------------------------------------- run loading
@dataclass
class LoadedRun:
    run_dir: Path
    cfg: TrainConfig
    supernet: Supernet
    front: list[PathMetrics]
    front_data: dict[str, Any]
    fed_training: set[ArchPath]  # paths whose accuracy fed the alpha loss or pruning


def _front_field(obj: Any, key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    """`obj[key]`, which must be a `kind`; a one-line error naming the key otherwise."""
    if not isinstance(obj, dict) or key not in obj:
        raise ExportError(f"{where} lacks {key!r}")
    if not isinstance(obj[key], kind) or isinstance(obj[key], bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        raise ExportError(
            f"{where}[{key!r}] is a {type(obj[key]).__name__}, not a "
            f"{' or '.join(k.__name__ for k in kinds)}"
        )
    return obj[key]


def _read_front(d: Path) -> tuple[dict[str, Any], int, list[PathMetrics]]:
    """`front.json` of run `d`: its data, the number of classes and the front, every field the
    export reads checked first so that a damaged file gets one line, not a traceback."""
    data = read_json(d / FRONT)
    where = f"{d / FRONT}"
    try:
        space_config = _front_field(data, "space_config", where, dict)
        num_classes = int(_front_field(space_config, "num_classes", f"{where} space_config", int))
        front = []
        for k, p in enumerate(_front_field(data, "paths", where, list)):
            at = f"{where} paths[{k}]"
            front.append(
                PathMetrics(
                    tuple(int(i) for i in _front_field(p, "path", at, list)),
                    tuple(str(o) for o in _front_field(p, "ops", at, list)),
                    str(_front_field(p, "key", at, str)),
                    float(_front_field(p, "accuracy", at, (int, float))),
                    float(_front_field(p, "cost", at, (int, float))),
                    int(_front_field(p, "pareto_rank", at, int)),
                )
            )
    except ExportError as e:
        raise ExportError(
            f"{e}: the file is damaged; rerun `prp-train --resume --out {d}` to write it again"
        ) from None
    except (TypeError, ValueError) as e:
        raise ExportError(
            f"{where} is damaged ({one_line(e)}); rerun `prp-train --resume --out {d}` to write "
            f"it again"
        ) from None
    return data, num_classes, front


def load_run(run_dir: str | Path) -> LoadedRun:
    """The trained (pruned) supernet of a run and its front, with clear errors when incomplete,
    damaged or not to be trusted (the checkpoint is read with the weights-only unpickler)."""
    d = Path(run_dir)
    if not (d / CONFIG).is_file():
        raise ExportError(f"{d} is not a training run (no {CONFIG}); train one with prp-train")
    if not (d / FRONT).is_file():
        raise ExportError(
            f"run {d} has no {FRONT}: its training did not finish; run "
            f"`prp-train --resume --out {d}` first"
        )
    if not (d / CHECKPOINT).is_file():
        raise ExportError(f"run {d} has no {CHECKPOINT}; the run directory is incomplete")
    cfg = read_config(d)
    front_data, num_classes, front = _read_front(d)
    space = get_space(
        cfg.space, size=cfg.space_size, **{**cfg.space_overrides, "num_classes": num_classes}
    )
    supernet = Supernet(space)
    state = read_checkpoint(d / CHECKPOINT)  # refuses anything but tensors and plain data
    try:
        mask = state["op_mask"]
        if tuple(mask.shape) != tuple(supernet.op_mask.shape):
            raise ValueError(
                f"op_mask is {tuple(mask.shape)}, the supernet's {tuple(supernet.op_mask.shape)}"
            )
        for s in range(space.num_slots):
            for op in supernet.live_ops(s):
                if not bool(mask[s, op]):
                    supernet.prune(s, op)
        supernet.load_state_dict(state["supernet"])
        fed = {tuple(int(i) for i in p) for p, _ in state["evaluated"]}
        fed |= {tuple(int(i) for i in p) for p, _ in state["targets"]}
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as e:
        raise ExportError(
            f"checkpoint of run {d} does not fit its config.json ({one_line(e)}); it is damaged "
            f"or from another run: restore it from a backup or train again"
        ) from None
    return LoadedRun(d, cfg, supernet.eval(), front, front_data, fed)


def choose_paths(run: LoadedRun, top: int, names: Sequence[str] | None = None) -> list[PathMetrics]:
    """The paths to export, most accurate first: `names` (encoded paths) or `top` picks."""
    space = run.supernet.space
    if names:
        by_key = {m.key: m for m in run.front}
        chosen = []
        for name in names:
            try:
                path = run.supernet.validate(space.decode(name))
            except PRPError as e:
                raise ExportError(f"cannot export path {name!r}: {e}") from None
            key = space.encode(path)
            chosen.append(
                by_key.get(key)
                or PathMetrics(path, space.op_names(path), key, float("nan"), float("nan"), 0)
            )
        if len({m.path for m in chosen}) != len(chosen):
            raise ExportError("--paths names the same path twice")
    else:
        if top < 1:
            raise ExportError(f"--top must be at least 1, got {top}")
        if top > len(run.front):
            raise ExportError(
                f"--top {top} is more than the {len(run.front)} paths of run "
                f"{run.run_dir}'s front; ask for at most {len(run.front)}"
            )
        floor = chance_accuracy(space.num_classes)
        usable = sum(m.accuracy > floor for m in run.front)
        if top > usable:
            raise ExportError(
                f"--top {top}: only {usable} of the {len(run.front)} paths of run "
                f"{run.run_dir}'s front beat chance accuracy ({floor:.1f} %); ask for at most "
                f"{usable}, or name paths with --paths"
            )
        chosen = [m for _, m in select_along_front(run.front, top, floor)]
    return chosen


# ------------------------------------------------------------------------- path modules
class ChannelAffine(nn.Module):
    """A BatchNorm in eval mode as y = x * scale + shift, per channel."""

    scale: Tensor
    shift: Tensor

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        assert bn.running_var is not None and bn.running_mean is not None
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias.detach() - bn.running_mean * scale
        self.register_buffer("scale", scale.reshape(1, -1, 1, 1).clone())
        self.register_buffer("shift", shift.reshape(1, -1, 1, 1).clone())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


class DepthwiseAffine(nn.Module):
    """`ChannelAffine` as the 1x1 depthwise convolution it is (weight = scale, bias = shift), for
    XNNPACK: one static-weight op in its native NHWC layout. As x * scale + shift the per-path
    vectors reach the delegate as runtime inputs in NCHW, and XNNPACK wraps every BN in a
    transpose pair plus a multiply and an add (~4 graph nodes and values per BN, per method)."""

    weight: Tensor
    bias: Tensor

    def __init__(self, affine: ChannelAffine) -> None:
        super().__init__()
        c = affine.scale.numel()
        self.register_buffer("weight", affine.scale.reshape(c, 1, 1, 1).clone())
        self.register_buffer("bias", affine.shift.reshape(c).clone())
        self.channels = c

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.conv2d(x, self.weight, self.bias, groups=self.channels)


def _for_xnnpack(module: nn.Module) -> nn.Module:
    """`module` with every `ChannelAffine` as a `DepthwiseAffine`; all other leaves (the shared
    convs) are the same objects, the containers above them shallow copies."""
    if isinstance(module, ChannelAffine):
        return DepthwiseAffine(module)
    if not module._modules:
        return module
    twin = copy.copy(module)
    twin._modules = {
        name: None if child is None else _for_xnnpack(child)
        for name, child in module._modules.items()
    }
    return twin


def _is_times_zero(node: Any) -> bool:
    """`node` is aten.mul(x, 0) with a literal zero (NB201's `none` op, `Zero`)."""
    return (
        node.op == "call_function"
        and node.target in (torch.ops.aten.mul.Tensor, torch.ops.aten.mul.Scalar)
        and len(node.args) == 2
        and isinstance(node.args[1], (int, float))
        and node.args[1] == 0
    )


def _drop_zero_terms(program: Any) -> Any:
    """Rewrite `y + x * 0` as `y` in an exported program, where y already has the sum's shape
    and dtype (each `none` edge of an NB201 cell is such a term). Exact for finite x: adding a
    zero changes no value. XNNPACK would run every such term as a multiply between two
    transposes (its scalar operand is NCHW) plus an add, ~4 nodes and values per edge."""
    graph = program.graph
    changed = False
    for add in list(graph.nodes):
        if add.op != "call_function" or add.target != torch.ops.aten.add.Tensor:
            continue
        if len(add.args) != 2 or add.kwargs or any(u.op == "output" for u in add.users):
            continue
        for i in (0, 1):
            zero, other = add.args[i], add.args[1 - i]
            if not (hasattr(zero, "op") and hasattr(other, "op") and _is_times_zero(zero)):
                continue
            out, kept = add.meta.get("val"), other.meta.get("val")
            if out is None or kept is None:
                continue
            if tuple(out.shape) != tuple(kept.shape) or out.dtype != kept.dtype:
                continue
            add.replace_all_uses_with(other)
            graph.erase_node(add)
            if not zero.users:
                graph.erase_node(zero)
            changed = True
            break
    if changed:
        graph.eliminate_dead_code()
        program.graph_module.recompile()
    return program


def _replace_bn(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, ChannelAffine(child))
        else:
            _replace_bn(child)


def path_module(supernet: Supernet, path: ArchPath) -> nn.Module:
    """One path as a plain eval-mode network, BN as per-channel affine (statistics as they are
    now in the supernet: recalibrate for the path first)."""
    net = supernet.standalone(path).eval()
    _replace_bn(net)
    return net.eval()


def calibrated_path_module(
    run: LoadedRun, path: ArchPath, train_x: Tensor, train_y: Tensor
) -> nn.Module:
    """`path_module` after recalibrating BN for the path on training batches (seeded)."""
    g = torch.Generator().manual_seed(run.cfg.seed)
    calib = itertools.islice(
        (
            x
            for x, _ in batches(
                train_x, train_y, run.cfg.batch_size, shuffle=True, augment=False, generator=g
            )
        ),
        max(run.cfg.bn_batches, 16),
    )
    run.supernet.recalibrate_bn(path, calib)
    return path_module(run.supernet, path)


@torch.no_grad()
def _accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    correct = 0
    for i in range(0, len(y), 256):
        correct += int((model(x[i : i + 256]).argmax(dim=1) == y[i : i + 256]).sum())
    return 100.0 * correct / max(len(y), 1)


# ------------------------------------------------------------------------------ writers
def _distinct_bytes(modules: Sequence[nn.Module]) -> int:
    seen: dict[str, int] = {}
    for m in modules:
        for t in itertools.chain(m.parameters(), m.buffers()):
            raw = t.detach().contiguous().numpy().tobytes()
            seen.setdefault(hashlib.sha256(raw).hexdigest(), len(raw))
    return sum(seen.values())


def _shorten_named_keys(lowered: Any) -> None:
    """Give every XNNPACK constant a short name instead of its 64-character sha256 hex key.

    XNNPACK names each constant (weights and per-path BN vectors alike) by the hash of its
    bytes; the key is stored once in the program's named-data table and again in every
    delegate graph that uses it, ~150 bytes per tensor per method at NB201's real size. Keys
    are renamed consistently across methods (equal bytes, equal key: sharing is unchanged) and
    each delegate's flatbuffer is rebuilt from its own JSON with only the keys changed.
    """
    import re
    import tempfile

    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import (
        XNNHeader,
        _get_schema_bytes,
    )
    from executorch.exir._serialize._flatbuffer import _flatc_compile, _flatc_decompile
    from executorch.exir._serialize._named_data_store import NamedDataStore, NamedDataStoreOutput
    from executorch.exir.lowered_backend_module import LoweredBackendModule
    from executorch.exir.program._program import collect_named_data_store_from_exported_program

    names: dict[str, str] = {}
    pattern = re.compile(rb'"named_key": "([0-9a-f]{64})"')

    def short(match: re.Match[bytes]) -> bytes:
        key = match.group(1).decode()
        return b'"named_key": "' + names.setdefault(key, f"w{len(names)}").encode() + b'"'

    with tempfile.TemporaryDirectory() as d:
        schema = os.path.join(d, "schema.fbs")
        Path(schema).write_bytes(_get_schema_bytes())
        for method in lowered.methods:
            for module in lowered.exported_program(method).graph_module.modules():
                if not isinstance(module, LoweredBackendModule):
                    continue
                store = module.named_data_store_output
                blob = module.processed_bytes
                if store is None or store.external_data or module.backend_id != "XnnpackBackend":
                    continue
                header = XNNHeader.from_bytes(blob[: XNNHeader.EXPECTED_LENGTH])
                start, size = header.flatbuffer_offset, header.flatbuffer_size
                constants = blob[header.constant_data_offset :]
                Path(d, "graph.bin").write_bytes(blob[start : start + size])
                _flatc_decompile(d, schema, os.path.join(d, "graph.bin"), ["--raw-binary"])
                text = Path(d, "graph.json").read_bytes()
                if not pattern.search(text):
                    continue  # named short already (`_short_xnnpack_keys`): nothing to rebuild
                text = pattern.sub(short, text)
                Path(d, "schema.json").write_bytes(text)
                _flatc_compile(d, schema, os.path.join(d, "schema.json"))
                graph = Path(d, "schema.bin").read_bytes()
                padded = -(-len(graph) // 16) * 16
                new_header = XNNHeader(start, len(graph), start + padded, len(constants))
                module._processed_bytes = b"".join(
                    [
                        new_header.to_bytes().ljust(start, b"\0"),
                        graph.ljust(padded, b"\0"),
                        constants,
                    ]
                )
                module._named_data_store_output = NamedDataStoreOutput(
                    buffers=store.buffers,
                    pte_data={names.get(k, k): v for k, v in store.pte_data.items()},
                    external_data=store.external_data,
                )
    merged = NamedDataStore()  # the program's table, gathered again from the renamed delegates
    for method in lowered.methods:
        collect_named_data_store_from_exported_program(lowered.exported_program(method), merged)
    lowered._named_data_store = merged


@contextlib.contextmanager
def _short_xnnpack_keys() -> Iterator[None]:
    """While lowering, XNNPACK names each constant `w<k>` (k counting distinct bytes) instead of
    its sha256 hex key: the same sharing, without the bytes of long keys.

    For programs with int8 methods, which `_shorten_named_keys` cannot rename afterwards: its
    round trip through flatc's JSON prints floats with 6 digits, and an int8 graph holds its
    activation scales as floats (measured: the rounded scales doubled the int8 methods'
    distance from their PT2E reference at NB201's real size). Names equal bytes alike across
    all methods lowered in the block, as the hex keys do."""
    from executorch.backends.xnnpack.operators import node_visitor

    names: dict[str, str] = {}

    class _Digest:
        def __init__(self, data: bytes = b"") -> None:
            self._hash = hashlib.sha256(data)

        def hexdigest(self) -> str:
            return names.setdefault(self._hash.hexdigest(), f"w{len(names)}")

    class _Hashlib:
        sha256 = _Digest

    saved = node_visitor.hashlib
    node_visitor.hashlib = _Hashlib  # type: ignore[assignment]
    try:
        yield
    finally:
        node_visitor.hashlib = saved


def write_pte(
    modules: Mapping[str, nn.Module | torch.export.ExportedProgram],
    example: Tensor,
    path: Path,
    shorten_keys: bool = True,
) -> str | None:
    """One ExecuTorch program, one XNNPACK-delegated method per path; shared weights once.
    An int8 path comes as the exported program of its quantized module (`quantize.py`).

    `shorten_keys`: rename XNNPACK's 64-character constant keys (`_shorten_named_keys`, or
    `_short_xnnpack_keys` with int8 paths). Both reach into ExecuTorch 1.5.1's private
    serialization, the first thing an upgrade breaks, so where the renaming fails the program is
    lowered again without it and written with the long keys (the same weights, stored once; a
    larger file). Returns why it fell back, or None."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower

    programs = {
        name: m
        if isinstance(m, torch.export.ExportedProgram)  # an int8 path, quantized already
        else _drop_zero_terms(torch.export.export(_for_xnnpack(m).eval(), (example,)))
        for name, m in modules.items()
    }
    quantized = any(isinstance(m, torch.export.ExportedProgram) for m in modules.values())

    def lower(shorten: bool) -> Any:
        with _short_xnnpack_keys() if shorten and quantized else contextlib.nullcontext():
            lowered = to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()])
        if shorten:
            _shorten_named_keys(lowered)
        return lowered.to_executorch(
            ExecutorchBackendConfig(segment_alignment=PTE_SEGMENT_ALIGNMENT)
        )

    fallback = None
    try:
        program = lower(shorten_keys)
    except Exception as e:  # noqa: BLE001 - any failure of the private rewrite: write without it
        if not shorten_keys:
            raise
        fallback = (
            f"could not shorten XNNPACK's constant keys ({type(e).__name__}: "
            f"{' '.join(str(e).split())[:200]}); wrote the program with its long keys"
        )
        program = lower(False)
    path.write_bytes(program.buffer)
    return fallback


def _float_types() -> set[int]:
    import onnx

    return {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}


def write_onnx(modules: dict[str, nn.Module], example: Tensor, out_dir: Path) -> dict[str, Any]:
    """One ONNX graph per path (dynamic batch); every distinct initializer is stored once in
    `weights.bin` and each graph points at it by offset and length. An int8 path comes as its
    PT2E-quantized module and becomes a QDQ graph (int8 weights, DequantizeLinear per channel)
    with the quantization parameters the ExecuTorch method has."""
    import onnx
    from onnx import numpy_helper
    from onnx.external_data_helper import set_external_data
    from torch.export import Dim

    _FLOAT_TYPES = _float_types()  # noqa: N806
    _INT8_TYPES = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}  # noqa: N806
    stored: dict[str, tuple[int, int]] = {}
    tensors: dict[str, list[dict[str, Any]]] = {}
    graphs = {}
    with (out_dir / ONNX_WEIGHTS).open("wb") as f:
        for name, m in modules.items():
            program = torch.onnx.export(
                m,
                (example,),
                dynamo=True,
                optimize=True,
                verbose=False,
                dynamic_shapes={"x": {0: Dim("batch", min=1, max=4096)}},
            )
            assert program is not None
            proto = program.model_proto
            for init in proto.graph.initializer:
                int8_weight = init.data_type in _INT8_TYPES and len(init.dims) >= 2
                if init.data_type not in _FLOAT_TYPES and not int8_weight:
                    continue  # shape-like int tensors and zero points stay inline for ORT
                raw = numpy_helper.to_array(init).tobytes()
                key = hashlib.sha256(init.data_type.to_bytes(4, "little") + raw).hexdigest()
                if key not in stored:
                    # int8 weights leave float tensors after them unaligned; pad to 4 (never
                    # needed between float32 tensors, so an fp32 bundle is unchanged).
                    f.write(b"\0" * (-f.tell() % 4))
                    stored[key] = (f.tell(), len(raw))
                    f.write(raw)
                offset, length = stored[key]
                array = numpy_helper.to_array(init)
                tensors.setdefault(name, []).append(
                    {
                        "name": init.name,
                        "offset": offset,
                        "length": length,
                        "dtype": str(array.dtype),
                        "shape": list(array.shape),
                    }
                )
                for field in ("float_data", "int32_data", "int64_data", "double_data"):
                    init.ClearField(field)  # type: ignore[arg-type]
                init.raw_data = raw  # set_external_data wants raw_data, then it goes
                set_external_data(init, location=ONNX_WEIGHTS, offset=offset, length=length)
                init.data_location = onnx.TensorProto.EXTERNAL
                init.ClearField("raw_data")
            for node in proto.graph.node:  # exporter's per-node provenance: ~75% of the bytes
                del node.metadata_props[:]
            graph_file = f"{name}.onnx"
            onnx.save_model(proto, str(out_dir / graph_file))
            graphs[name] = graph_file
    return {"graphs": graphs, "distinct_tensors": len(stored), "tensors": tensors}


def check_pte(path: Path, modules: dict[str, nn.Module], inputs: Tensor) -> dict[str, float]:
    """Max abs difference of every method of the .pte from PyTorch, run by ExecuTorch."""
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(str(path))
    missing = set(modules) - set(program.method_names)
    if missing:
        raise ExportError(f"{path} lacks methods {sorted(missing)}")
    diffs = {}
    with torch.no_grad():
        for name, m in modules.items():
            method = program.load_method(name)
            diffs[name] = max(
                float((method.execute([x[None]])[0] - m(x[None])).abs().max()) for x in inputs
            )
    return diffs


def check_onnx(
    out_dir: Path, graphs: dict[str, str], modules: dict[str, nn.Module], inputs: Tensor
) -> dict[str, float]:
    """Max abs difference of every ONNX graph from PyTorch, run by ONNX Runtime."""
    import onnxruntime as ort

    diffs = {}
    with torch.no_grad():
        for name, m in modules.items():
            session = ort.InferenceSession(
                str(out_dir / graphs[name]),
                onnx_session_options(),
                providers=["CPUExecutionProvider"],
            )
            feed = {session.get_inputs()[0].name: inputs.numpy()}
            out = session.run(None, feed)[0]
            diffs[name] = float(np.abs(out - m(inputs).numpy()).max())
    return diffs


# ------------------------------------------------------------------------------- export
def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "prp-nas": __version__}
    for pkg in ("torch", "executorch", "onnx", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _other_cost(run: LoadedRun, objective: str) -> tuple[PathTable, Any] | None:
    """A table for the objective the run did not train on, where the space has one."""
    name = DEFAULT_COST_MODELS.get((run.cfg.space, objective))
    if name is None and objective == "energy":
        name = "analytic"
    if name is None:
        return None
    device = run.cfg.cost_device if name == run.cfg.resolved_cost_model() else None
    try:
        model = get_cost_model(name, objective, device)
        return price_supernet(run.supernet, model), model
    except PRPError:
        return None


def _kept_fp32(run: LoadedRun, chosen: Sequence[PathMetrics], names: Sequence[str]) -> set[str]:
    """Keys of the exported paths `names` (encoded paths) keeps in float32."""
    space = run.supernet.space
    keys = {m.key for m in chosen}
    kept = set()
    for name in names:
        try:
            key = space.encode(run.supernet.validate(space.decode(name)))
        except PRPError as e:
            raise ExportError(f"--keep-fp32 {name!r}: {e}") from None
        if key not in keys:
            raise ExportError(
                f"--keep-fp32 {name!r} is not one of the exported paths: {', '.join(sorted(keys))}"
            )
        kept.add(key)
    return kept


def _int8_energy(
    run: LoadedRun, table: tuple[PathTable, Any] | None, trace: Any
) -> tuple[Callable[[ArchPath, float], float] | None, dict[str, Any] | None]:
    """How an int8 path's energy is priced: with the analytic model's `horowitz45-int8` device
    where the run's energy model is the analytic one, else the run's table scaled by the
    analytic int8 / fp32 ratio of the same path. None where the bundle has no energy figures."""
    if table is None:
        return None, None
    int8_model = get_cost_model("analytic", "energy", "horowitz45-int8")
    int8_table = price_supernet(run.supernet, int8_model, trace)
    if table[0].device.startswith("horowitz45"):
        info = {"device": "horowitz45-int8", "source": int8_model.source, "how": "priced"}
        return (lambda path, _fp32: float(int8_table(path))), info
    fp32_table = price_supernet(
        run.supernet, get_cost_model("analytic", "energy", "horowitz45-fp32"), trace
    )
    info = {
        "device": f"{table[0].device} x horowitz45-int8 / horowitz45-fp32",
        "source": f"{table[1].source}, scaled by {int8_model.source}",
        "how": "scaled",
    }
    return (lambda path, fp32: fp32 * float(int8_table(path)) / float(fp32_table(path))), info


def _tensors(m: nn.Module) -> list[Tensor]:
    return [t.detach() for t in itertools.chain(m.parameters(), m.buffers())]


def _stored(q: Int8Path) -> list[Tensor]:
    """The constants of an int8 path a backend stores: int8 weights and float scales and biases
    (the weights' zero points are all zero, symmetric, and XNNPACK stores none)."""
    return [t for t in constant_tensors(q.reference) if t.dtype in (torch.int8, torch.float32)]


def _check_int8(
    reference: Mapping[str, nn.Module],
    int8: Mapping[str, tuple[Int8Path, float]],
    inputs: Tensor,
    pte_diff: dict[str, float],
    onnx_diff: dict[str, float],
) -> None:
    """Every int8 method and graph within `INT8_TOLERANCE` of its PT2E reference."""
    for i in int8:
        with torch.no_grad():
            peak = float(reference[i](inputs).abs().max())
        allowed = INT8_TOLERANCE * max(peak, 1e-6)
        if not (pte_diff[i] <= allowed and onnx_diff[i] <= allowed):
            raise ExportError(
                f"int8 path {i} differs from its PT2E reference by "
                f"{max(pte_diff[i], onnx_diff[i]):.3g} (> {allowed:.3g}, {INT8_TOLERANCE:.0%} "
                f"of its largest logit); ExecuTorch "
                f"{pte_diff[i]:.3g}, ONNX {onnx_diff[i]:.3g}"
            )


def default_policies(paths: Sequence[Mapping[str, Any]], objective: str) -> dict[str, Any]:
    """The manifest's `policies` for exported `paths` (manifest entries): battery thresholds
    evenly spaced over the ladder (most accurate path on a full battery) and the paper's schedule
    (one level down every 5 hours). The ladder holds the paths no other path dominates on
    (accuracy, `objective`'s cost), each strictly cheaper than the one above; dominated paths
    stay in the bundle but on no table (prp.runtime.policies.ladder, the one definition)."""
    return ladder_policies(paths, objective)


def export_bundle(
    run_dir: str | Path,
    out: str | Path,
    top: int = 5,
    paths: Sequence[str] | None = None,
    data: DataSplits | None = None,
    progress: Callable[[str], None] | None = None,
    quantize: str | None = None,
    keep_fp32: Sequence[str] = (),
    shorten_keys: bool = True,
) -> Path:
    """Export run `run_dir` to bundle folder `out`; returns `out`. Nothing is left half-written.

    `quantize="int8"`: every path int8 (PT2E, `quantize.py`) except those named in `keep_fp32`
    (encoded paths), which stay float32: a mixed-precision bundle. `shorten_keys=False` writes
    the `.pte` without the private key rewrite (`write_pte`), as it does when that fails."""
    say = progress or (lambda msg: None)
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ExportError(
            f"--quantize {quantize!r} is not supported; choose {', '.join(QUANTIZE_CHOICES)}"
        )
    if keep_fp32 and quantize is None:
        raise ExportError("--keep-fp32 names float32 paths of an int8 bundle: add --quantize int8")
    given_out = Path(out)
    out = Path(os.path.abspath(out))  # `.` and `..` resolved: tmp goes beside the real name
    _check_out(out, Path(run_dir))
    removed = _remove_stale_leftovers(out.parent)
    if removed:
        say(f"removed leftovers of killed exports: {', '.join(removed)}")
    run = load_run(run_dir)
    chosen = choose_paths(run, top, paths)
    kept = _kept_fp32(run, chosen, keep_fp32)
    cfg = run.cfg
    data = data or load_dataset(
        cfg.dataset,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        limit_per_class=cfg.limit_per_class,
    )
    train_x = to_tensor(data.train.images, data.mean, data.std)
    train_y = torch.tensor(data.train.labels)
    val_x = to_tensor(data.val.images, data.mean, data.std)
    val_y = torch.tensor(data.val.labels)
    test_x = to_tensor(data.test.images, data.mean, data.std)
    test_y = torch.tensor(data.test.labels)
    supernet = run.supernet
    trace = trace_ops(supernet)
    main_model = get_cost_model(
        cfg.resolved_cost_model(),
        cfg.objective,
        cfg.cost_device,
        **({"path": cfg.cost_lut} if cfg.cost_lut else {}),
    )
    tables: dict[str, tuple[PathTable, Any] | None] = {
        cfg.objective: (price_supernet(supernet, main_model, trace), main_model)
    }
    other = "latency" if cfg.objective == "energy" else "energy"
    tables[other] = _other_cost(run, other)
    energy_int8, energy_int8_info = (
        _int8_energy(run, tables["energy"], trace) if quantize else (None, None)
    )

    say(f"recalibrating BatchNorm and measuring {len(chosen)} paths")
    records, modules = [], {}
    for metrics in chosen:
        module = calibrated_path_module(run, metrics.path, train_x, train_y)
        estimated = metrics.accuracy
        if np.isnan(estimated):
            estimated = _accuracy(module, val_x[: cfg.eval_images], val_y[: cfg.eval_images])
        records.append((metrics, estimated, _accuracy(module, test_x, test_y)))
        modules[metrics.key] = module
    order = sorted(range(len(records)), key=lambda k: (-records[k][1], records[k][0].cost))
    ids = [f"path_{i}" for i in range(len(order))]
    named = {ids[i]: modules[records[k][0].key] for i, k in enumerate(order)}
    int8: dict[str, tuple[Int8Path, float]] = {}  # path id -> quantized path, its test accuracy
    calibration = min(CALIBRATION_IMAGES, len(val_y))
    if quantize is not None:
        if calibration == 0:
            raise ExportError(
                f"run {run.run_dir} has no validation images to calibrate int8 paths on; "
                f"train with --val-fraction above 0 or export without --quantize"
            )
        say(f"quantizing {len(chosen) - len(kept)} paths to int8 ({calibration} held-out images)")
        calib = [val_x[i : i + 32] for i in range(0, calibration, 32)]
        for i, k in enumerate(order):
            if records[k][0].key not in kept:
                q = quantize_path(named[ids[i]], test_x[:1], calib)
                int8[ids[i]] = (q, _accuracy(q.reference, test_x, test_y))
    # What each backend runs and is checked against: an int8 path's PT2E reference module.
    reference = {i: int8[i][0].reference if i in int8 else m for i, m in named.items()}
    lowered = {i: int8[i][0].program if i in int8 else m for i, m in named.items()}

    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if (tmp.exists() or tmp.is_symlink()) and not _remove_export_folder(tmp):
        # Our PID, so no live exporter's: a killed one's, reused PID, but not only its files.
        raise ExportError(
            f"{tmp} exists and holds files prp-export does not write; move it away and export again"
        )
    tmp.mkdir(parents=True)
    try:
        example = test_x[:1].clone()
        say("lowering to ExecuTorch (XNNPACK)")
        fallback = write_pte(lowered, example, tmp / PTE, shorten_keys=shorten_keys)
        if fallback:
            say(f"warning: {fallback}")
        say("exporting ONNX graphs")
        onnx_info = write_onnx(reference, example, tmp)
        say("checking every method and graph against PyTorch")
        check_x = test_x[:CHECK_IMAGES]
        pte_diff = check_pte(tmp / PTE, reference, check_x)
        onnx_diff = check_onnx(tmp, onnx_info["graphs"], reference, check_x)
        if int8:
            _check_int8(reference, int8, check_x, pte_diff, onnx_diff)
        worst = max([*(d for i, d in pte_diff.items() if i not in int8)], default=0.0)
        worst = max([worst, *(d for i, d in onnx_diff.items() if i not in int8)])
        if not worst <= TOLERANCE:
            raise ExportError(
                f"an exported path differs from PyTorch by {worst:.3g} (> {TOLERANCE}); "
                f"ExecuTorch: {pte_diff}, ONNX: {onnx_diff}"
            )
        path_entries = []
        for i, k in enumerate(order):
            metrics, estimated, test_acc = records[k]
            entry: dict[str, Any] = {
                "id": ids[i],
                "method": ids[i],
                "onnx": onnx_info["graphs"][ids[i]],
                "ops": list(metrics.ops),
                "path": list(metrics.path),
                "key": metrics.key,
                "accuracy": round(float(estimated), 4),
                "test_accuracy": round(float(int8[ids[i]][1] if ids[i] in int8 else test_acc), 4),
                "energy_mj": None,
                "latency_ms": None,
                "params": int(trace.params()(metrics.path)),
                "macs": int(trace.macs()(metrics.path)),
                "pareto_rank": int(metrics.pareto_rank),
                "onnx_initializers": onnx_info["tensors"].get(ids[i], []),
                "max_abs_diff": {"executorch": pte_diff[ids[i]], "onnx": onnx_diff[ids[i]]},
            }
            for objective, field in (("energy", "energy_mj"), ("latency", "latency_ms")):
                if tables[objective] is not None:
                    entry[field] = float(tables[objective][0](metrics.path))  # type: ignore[index]
            if quantize is not None:  # an fp32 bundle's manifest stays as it was
                entry["precision"] = INT8 if ids[i] in int8 else FP32
                entry["fp32_test_accuracy"] = round(float(test_acc), 4)
                if ids[i] in int8 and energy_int8 is not None and entry["energy_mj"] is not None:
                    entry["energy_mj"] = float(energy_int8(metrics.path, entry["energy_mj"]))
            path_entries.append(entry)
        costs = {
            objective: None
            if t is None
            else {"unit": t[0].unit, "device": t[0].device, "source": t[1].source}
            for objective, t in tables.items()
        }
        files = {name: sha256_file(tmp / name) for name in sorted(os.listdir(tmp))}
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "search_space": run.front_data["space_config"],
            "input": {
                "shape": [1, *supernet.space.input_shape],
                "dtype": "float32",
                "layout": "NCHW",
                "mean": [float(v) for v in data.mean],
                "std": [float(v) for v in data.std],
                "scale": "pixels / 255, then (x - mean) / std",
                "batch": {"executorch": 1, "onnx": "dynamic"},
            },
            "classes": list(data.classes),
            "objective": cfg.objective,
            "costs": costs,
            "paths": path_entries,
            "policies": default_policies(path_entries, cfg.objective),
            "files": files,
            "export": {
                "distinct_weight_bytes": _distinct_bytes(list(named.values())),
                "onnx_distinct_tensors": onnx_info["distinct_tensors"],
                "bn": "per-path BatchNorm statistics as per-channel scale and shift",
                "tolerance": TOLERANCE,
                # XNNPACK constant keys shortened (the private rewrite), or why not
                "short_keys": shorten_keys and fallback is None,
                **({"short_keys_fallback": fallback} if fallback else {}),
            },
            "provenance": {
                "run": str(run.run_dir),
                "dataset": data.source,
                "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "versions": _versions(),
                "command": " ".join(sys.argv),
            },
        }
        if quantize is not None:
            fp32_tensors = [t for i, m in named.items() if i not in int8 for t in _tensors(m)]
            int8_tensors = [t for q, _ in int8.values() for t in _stored(q)]
            manifest["export"]["distinct_weight_bytes"] = _distinct_bytes(
                [m for i, m in named.items() if i not in int8]
            ) + distinct_bytes(int8_tensors)
            manifest["export"]["int8_distinct_weight_bytes"] = distinct_bytes(int8_tensors)
            manifest["export"]["fp32_distinct_weight_bytes"] = distinct_bytes(fp32_tensors)
            manifest["export"]["int8_tolerance"] = INT8_TOLERANCE
            manifest["quantization"] = {
                "precision": quantize,
                "paths": [p["id"] for p in path_entries if p["precision"] == INT8],
                "scheme": "PT2E static post-training quantization, XNNPACKQuantizer: int8 "
                "activations per tensor (affine), int8 weights per output channel (symmetric)",
                "bn": "folded per path into the shared conv's int8 grid: int8 weights shared, "
                "per-channel scales and biases per path",
                "calibration": {
                    "split": "val",
                    "images": calibration,
                    "which": f"the first {calibration} images of the run's validation split",
                },
                "reference": "the PT2E-converted module (PyTorch); every int8 method and graph "
                "is checked against it",
                "onnx": "QDQ graphs (QuantizeLinear/DequantizeLinear around float ops) exported "
                "from the PT2E module: the same scales and zero points as the .pte",
                "energy": energy_int8_info,
                "latency": "latency_ms of an int8 path is the float32 table's figure",
            }
        write_json(tmp / MANIFEST, manifest)
        load_manifest(tmp)  # the contract holds before anything is in place
        _move_into_place(tmp, out, Path(run_dir))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # ours: made above, under a name with our PID
        raise
    return given_out


# ------------------------------------------------------------- the bundle folder, safely
# Folders an export makes beside its bundle: `.NAME.tmp-PID` while writing, `.NAME.old-PID`
# while swapping an old bundle out. A killed export leaves them; the next export removes them
# once PID is no live process and they hold nothing but files an export writes.
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>[1-9][0-9]{0,9})")
_EXPORT_FILE = re.compile(
    r"manifest\.json|supernet\.pte|weights\.bin|path_[0-9]+\.onnx|\.manifest\.json\.\w+\.tmp"
)


def _project_manifest(d: Path) -> dict[str, Any] | None:
    """`d/manifest.json` when it is a manifest of this project (schema version, files, paths)."""
    try:
        data = json.loads((d / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if (
        isinstance(data, dict)
        and isinstance(data.get("schema_version"), int)
        and isinstance(data.get("files"), dict)
        and isinstance(data.get("paths"), list)
    ):
        return data
    return None


def _foreign_entries(d: Path) -> list[str]:
    """Entries of folder `d` that no export wrote: anything but plain files named as export
    files or listed in `d`'s own manifest (an older bundle may have other file names)."""
    manifest = _project_manifest(d)
    listed = set(manifest["files"]) if manifest else set()
    return sorted(
        e.name
        for e in d.iterdir()
        if e.is_symlink()
        or not e.is_file()
        or not (e.name in listed or _EXPORT_FILE.fullmatch(e.name))
    )


def _remove_export_folder(d: Path) -> bool:
    """Delete folder `d` if it holds only files an export writes; False (and `d` untouched)
    if it holds anything else or cannot be removed."""
    try:
        if d.is_symlink() or not d.is_dir() or _foreign_entries(d):
            return False
        for e in d.iterdir():
            e.unlink()
        d.rmdir()
    except OSError:
        return False
    return True


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (or may run: where unsure, it counts as alive)."""
    if pid == os.getpid() or os.name != "posix":  # Windows' os.kill would terminate it
        return True
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _remove_stale_leftovers(parent: Path) -> list[str]:
    """Remove the `.NAME.tmp-PID` / `.NAME.old-PID` folders of killed exports in `parent`;
    returns their names. Folders of live PIDs, or holding anything an export does not
    write, are left alone."""
    if not parent.is_dir():
        return []
    removed = []
    for e in sorted(parent.iterdir()):
        m = _LEFTOVER.fullmatch(e.name)
        if m and not _pid_alive(int(m["pid"])) and _remove_export_folder(e):
            removed.append(e.name)
    return removed


def _check_out(out: Path, run_dir: Path) -> None:
    """Refuse an `--out` whose replacement would lose data: the run being exported or a folder
    above it (or above the current folder), a file, a link, or a folder that is neither empty
    nor a bundle of this project holding only its own files."""
    real_out, real_run, cwd = out.resolve(), run_dir.resolve(), Path.cwd().resolve()
    if real_out == real_run or real_out in real_run.parents:
        what = "is" if real_out == real_run else "holds"
        raise ExportError(
            f"--out {out} {what} the run {run_dir} being exported, and would be replaced by the "
            f"bundle; choose another --out, e.g. exported/{real_run.name}"
        )
    if real_out == cwd or real_out in cwd.parents:
        raise ExportError(f"--out {out} is the current folder or above it; choose another --out")
    if out.is_symlink():
        raise ExportError(f"--out {out} is a symbolic link; give the folder itself instead")
    above = next(p for p in out.parents if p.exists())
    if not above.is_dir():
        raise ExportError(f"--out {out}: {above} is a file, not a folder; choose another --out")
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder; choose another --out")
    if not any(out.iterdir()):
        return
    if _project_manifest(out) is None:
        raise ExportError(
            f"--out {out} is a folder that is neither empty nor a bundle (no manifest.json of "
            f"prp-export); exporting would replace it: choose another --out"
        )
    foreign = _foreign_entries(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise ExportError(
            f"--out {out} holds a bundle and also {shown}, which prp-export did not write; "
            f"move them away or choose another --out"
        )


def _move_into_place(tmp: Path, out: Path, run_dir: Path) -> None:
    """Rename `tmp` onto `out`; an existing bundle there is replaced only once `tmp` is whole,
    and only if `out` still passes `_check_out` (the folder may have changed meanwhile)."""
    _check_out(out, run_dir)
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if (old.exists() or old.is_symlink()) and not _remove_export_folder(old):
        raise ExportError(f"{old} exists and holds files prp-export does not write; move it away")
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)  # the old bundle goes back: nothing is lost
        raise
    _remove_export_folder(old)  # only export files, as `_check_out` found; else it is kept
