"""The ExecuTorch program: one XNNPACK-delegated method per path, shared weights stored once, and
the optional rewrite of XNNPACK's constant keys through ExecuTorch's private serialization."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from prp.runtime.backends import load_program as load_program
from prp.runtime.bundle import PTE as PTE
from torch import Tensor, nn

from ..errors import ExportError
from .graphs import drop_zero_terms, for_xnnpack

# Each weight is its own segment of the .pte; ExecuTorch's default 128-byte alignment pads
# every per-path BN vector under 128 bytes to 128. 64 is a cache line and what SIMD loads want.
PTE_SEGMENT_ALIGNMENT = 64

# XNNPACK names each constant by the sha256 of its bytes (64 hex digits); the short name is the
# first WEIGHT_KEY_DIGITS of that digest. A name derived from the bytes, not a counter, because
# ExecuTorch 1.5.1's XNNPACK weight cache keys packed weights by name alone, process-wide: with
# counted names (`w0`, `w1`, ... in every bundle) two programs open at once ran each other's
# weights. Equal bytes still get one name (stored once, packed once); 64 bits make two different
# tensors sharing a name across the programs of a process negligible (and within one program an
# error, `_ContentKeys`). The manifest records the scheme as export.weight_names.
WEIGHT_KEY_DIGITS = 16
WEIGHT_NAMES_SHORT = f"sha256-{WEIGHT_KEY_DIGITS}"  # the short names
WEIGHT_NAMES_LONG = "sha256"  # XNNPACK's own keys, where the rewrite is off or fell back


class _ContentKeys:
    """The short name of each sha256 hex digest (its first WEIGHT_KEY_DIGITS digits); refuses
    two digests of one program that share their short name, rather than merge two tensors."""

    def __init__(self) -> None:
        self._digests: dict[str, str] = {}

    def __call__(self, digest: str) -> str:
        short = digest[:WEIGHT_KEY_DIGITS]
        if self._digests.setdefault(short, digest) != digest:
            raise ExportError(
                f"two constants' sha256 digests share their first {WEIGHT_KEY_DIGITS} digits "
                f"({short}): names that short would merge two tensors"
            )
        return short


def _shorten_named_keys(lowered: Any) -> None:
    """Give every XNNPACK constant a short name instead of its 64-character sha256 hex key:
    the key's first WEIGHT_KEY_DIGITS digits.

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
    content_key = _ContentKeys()
    pattern = re.compile(rb'"named_key": "([0-9a-f]{64})"')

    def short(match: re.Match[bytes]) -> bytes:
        key = match.group(1).decode()
        if key not in names:
            names[key] = content_key(key)
        return b'"named_key": "' + names[key].encode() + b'"'

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
    """While lowering, XNNPACK names each constant by the first WEIGHT_KEY_DIGITS digits of its
    sha256 hex key instead of all 64: the same sharing, without the bytes of long keys.

    For programs with int8 methods, which `_shorten_named_keys` cannot rename afterwards: its
    round trip through flatc's JSON prints floats with 6 digits, and an int8 graph holds its
    activation scales as floats (measured: the rounded scales doubled the int8 methods'
    distance from their PT2E reference at NB201's real size). Names equal bytes alike across
    all methods lowered in the block, as the hex keys do."""
    from executorch.backends.xnnpack.operators import node_visitor

    content_key = _ContentKeys()

    class _Digest:
        def __init__(self, data: bytes = b"") -> None:
            self._hash = hashlib.sha256(data)

        def hexdigest(self) -> str:
            return content_key(self._hash.hexdigest())

    class _Hashlib:
        sha256 = _Digest

    saved = node_visitor.hashlib
    node_visitor.hashlib = _Hashlib  # type: ignore[assignment]
    try:
        yield
    finally:
        node_visitor.hashlib = saved


# XNNPACK's XNN_FLAG_TRANSIENT_INDIRECTION_BUFFER (xnnpack.h): a convolution builds its
# indirection buffer (a pointer per output pixel and kernel tap, 72 KiB for a 3x3 convolution at
# 32 x 32; 8 KiB for the 1x1 depthwise convolution a per-path BatchNorm becomes) in the runtime's
# workspace at every call instead of keeping one per node. ExecuTorch shares that workspace
# between the methods of a program, so the buffers stop adding up.
XNN_FLAG_TRANSIENT_INDIRECTION_BUFFER = 0x20
_CONV_NODES = ("XNNConv2d", "XNNDepthwiseConv2d")  # what ExecuTorch's conv visitor builds


@contextlib.contextmanager
def _transient_indirection_buffers() -> Iterator[None]:
    """While lowering, every XNNPACK convolution node (dense and depthwise) is serialized with
    XNN_FLAG_TRANSIENT_INDIRECTION_BUFFER. ExecuTorch 1.5.1 passes a node's `flags` on to
    XNNPACK's define call but sets none for convolutions and has no option for it, so the node
    classes its conv visitor builds are wrapped (private API: an upgrade that moves them makes
    the export fail with a clear error, not silently drop the flag)."""
    try:
        from executorch.backends.xnnpack.operators import op_conv2d

        saved = {name: getattr(op_conv2d, name) for name in _CONV_NODES}
    except (ImportError, AttributeError) as e:
        raise ExportError(
            f"--low-memory needs ExecuTorch's XNNPACK conv visitor (op_conv2d.{_CONV_NODES}), "
            f"which this ExecuTorch lacks ({e}); export without --low-memory"
        ) from None

    def flagged(node: Any) -> Any:
        def build(**kwargs: Any) -> Any:
            kwargs["flags"] = kwargs.get("flags", 0) | XNN_FLAG_TRANSIENT_INDIRECTION_BUFFER
            return node(**kwargs)

        return build

    for name, node in saved.items():
        setattr(op_conv2d, name, flagged(node))
    try:
        yield
    finally:
        for name, node in saved.items():
            setattr(op_conv2d, name, node)


@contextlib.contextmanager
def _bias_scales_from_weights() -> Iterator[None]:
    """While lowering, XNNPACK's int32 bias of each int8 conv or linear is stored with its
    weight's per-channel scales as its scales, instead of their products with the input scale.

    XNNPACK runs a static int8 conv from the int32 bias values, the weight's per-channel scales
    and the input and output scales; the bias's own scales are never read. ExecuTorch stores
    them anyway, a new fp32 vector per conv per method because the input scale is the method's
    (measured at NB201's real size: 200 vectors, 30,280 bytes, 2 % of the int8 .pte). The bias
    values are still quantized with the true scales; only the stored scales change, to a vector
    stored already (the weight's). `check_pte` holds every method to its PT2E reference."""
    from executorch.backends.xnnpack.operators.node_visitor import NodeVisitor
    from executorch.backends.xnnpack.operators.quant_params import QuantParams

    from_bias = QuantParams.__dict__["from_bias"]  # the classmethod itself, to put back
    get_quant_params = NodeVisitor.get_quant_params

    def bias_params(cls: Any, bias: Any, weight: Any, input_: Any) -> Any:
        params = from_bias.__func__(cls, bias, weight, input_)
        if params is not None and params.per_channel and not params.per_channel_group:
            params.prp_stored_scale = weight.scale
        return params

    def serialized_params(self: Any, params: Any, graph: Any, external_tag: Any = None) -> Any:
        scale = getattr(params, "prp_stored_scale", None)
        if scale is not None:
            params = copy.copy(params)
            params.scale = scale
        return get_quant_params(self, params, graph, external_tag)

    setattr(QuantParams, "from_bias", classmethod(bias_params))  # noqa: B010 - private API
    setattr(NodeVisitor, "get_quant_params", serialized_params)  # noqa: B010
    try:
        yield
    finally:
        setattr(QuantParams, "from_bias", from_bias)  # noqa: B010
        setattr(NodeVisitor, "get_quant_params", get_quant_params)  # noqa: B010


def write_pte(
    modules: Mapping[str, nn.Module | torch.export.ExportedProgram],
    example: Tensor,
    path: Path,
    shorten_keys: bool = True,
    low_memory: bool = False,
) -> str | None:
    """One ExecuTorch program, one XNNPACK-delegated method per path; shared weights once.
    An int8 path comes as the exported program of its quantized module (`quantize.py`).

    `shorten_keys`: rename XNNPACK's 64-character constant keys to their first
    WEIGHT_KEY_DIGITS digits (`_shorten_named_keys`, or `_short_xnnpack_keys` with int8 paths)
    and, with int8 paths, store no scales of XNNPACK's own for the int32 biases
    (`_bias_scales_from_weights`). These reach into ExecuTorch 1.5.1's private serialization,
    the first thing an upgrade breaks, so where they fail the program is lowered again without
    it and written with the long keys (the same weights, stored once; a larger file). Returns
    why it fell back, or None.

    `low_memory`: every convolution builds its indirection buffer in the workspace the methods
    share, at each call (`_transient_indirection_buffers`): less resident memory per method,
    slower calls."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower

    programs = {
        name: m
        if isinstance(m, torch.export.ExportedProgram)  # an int8 path, quantized already
        else drop_zero_terms(torch.export.export(for_xnnpack(m).eval(), (example,)))
        for name, m in modules.items()
    }
    quantized = any(isinstance(m, torch.export.ExportedProgram) for m in modules.values())

    def lower(shorten: bool) -> Any:
        with contextlib.ExitStack() as stack:
            if low_memory:
                stack.enter_context(_transient_indirection_buffers())
            if shorten and quantized:
                stack.enter_context(_short_xnnpack_keys())
                stack.enter_context(_bias_scales_from_weights())
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


def method_differences(
    program: Any, modules: dict[str, nn.Module], inputs: dict[str, list[Tensor]]
) -> dict[str, float]:
    """Max abs difference, over each method's `inputs`, of every method of a loaded `program`
    from its PyTorch module in `modules`."""
    diffs = {}
    with torch.no_grad():
        for name, m in modules.items():
            method = program.load_method(name)
            diffs[name] = max(
                float((method.execute([x])[0] - m(x)).abs().max()) for x in inputs[name]
            )
    return diffs


def check_pte(path: Path, modules: dict[str, nn.Module], inputs: Tensor) -> dict[str, float]:
    """Max abs difference of every method of the .pte from PyTorch, run by ExecuTorch."""
    program = load_program(path)
    missing = set(modules) - set(program.method_names)
    if missing:
        raise ExportError(f"{path} lacks methods {sorted(missing)}")
    return method_differences(
        program, modules, {name: [x[None] for x in inputs] for name in modules}
    )
