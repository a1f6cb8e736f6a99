"""Op programs: every distinct op signature of a space with a module computing it, the
call-overhead and layout-conversion programs, and their lowering for a backend as prp-export
lowers paths."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from ..profiling import trace_ops
from ..spaces import Shape
from ..supernet import Supernet
from .base import BACKENDS, ProfileError


@dataclass(frozen=True)
class OpProgram:
    """One distinct op signature of a space and a module that computes it."""

    signature: str
    module: nn.Module  # the first place it occurs
    in_shape: Shape
    out_shape: Shape
    uses: int = 1  # places in the supernet with this signature
    free: bool = False  # computes nothing (an identity): priced 0 without measuring
    fixed: bool = False  # part of the skeleton every path has


def op_programs(supernet: Supernet) -> dict[str, OpProgram]:
    """Every distinct signature of `supernet` (fixed skeleton and all candidates), exactly as
    `trace_ops` names them for the `lut` cost model, each with one module to lower."""
    out: dict[str, OpProgram] = {}
    for r in trace_ops(supernet).records:
        if r.signature is None:  # the cost model prices these at 0 (NB201's none and skip)
            continue
        known = out.get(r.signature)
        if known is not None:
            if known.in_shape != r.in_shape:
                raise ProfileError(
                    f"signature {r.signature!r} occurs with input shapes {list(known.in_shape)} "
                    f"and {list(r.in_shape)}; a table cannot price both: the space's signature "
                    f"must name the shape"
                )
            out[r.signature] = replace(
                known, uses=known.uses + 1, fixed=known.fixed and r.slot is None
            )
            continue
        out[r.signature] = OpProgram(
            signature=r.signature,
            module=supernet.net.get_submodule(r.module),
            in_shape=r.in_shape,
            out_shape=r.out_shape,
            free=r.macs == 0 and r.activation_elems == 0,
            fixed=r.slot is None,
        )
    return out


class _Program(nn.Module):
    """An op as a program with one input named `x` (what the exporters' dynamic shapes name)."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class CallOverhead(nn.Module):
    """A program that computes almost nothing: its time is the cost of one call."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x)


CALL_OVERHEAD_SHAPE: Shape = (1, 8)


def identity_convs(channels: int, count: int) -> nn.Module:
    """`count` 1x1 depthwise convolutions that copy their input: XNNPACK runs them in NHWC, so
    a program of them pays the NCHW <-> NHWC conversions an op program pays at its ends."""
    layers = []
    for _ in range(count):
        conv = nn.Conv2d(channels, channels, 1, groups=channels)
        nn.init.ones_(conv.weight)
        nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
        layers.append(conv)
    return nn.Sequential(*layers)


def shape_key(shape: Shape) -> str:
    return "x".join(map(str, shape))


def layout_shapes(programs: dict[str, OpProgram]) -> list[Shape]:
    """The distinct 4-D shapes at the ends of the measured op programs."""
    shapes = {s for p in programs.values() if not p.free for s in (p.in_shape, p.out_shape)}
    return sorted(s for s in shapes if len(s) == 4)


def set_threads(backend: str, threads: int) -> int:
    """Use `threads` threads for `backend` where that is set per process; returns the count."""
    if backend == "executorch":
        from executorch.extension.pybindings import portable_lib

        if threads > 0:
            portable_lib._unsafe_reset_threadpool(threads)
        return int(portable_lib._threadpool_get_thread_count())
    return threads


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ProfileError(f"unknown backend {backend!r}; backends are: {', '.join(BACKENDS)}")
    import importlib.util

    if importlib.util.find_spec(backend) is None:
        raise ProfileError(
            f"backend {backend!r} is not installed; pip install 'prp-nas[train]' or pick the "
            f"other backend"
        )


def program_module(module: nn.Module) -> nn.Module:
    """A copy of `module` as the program prp-export would lower: BatchNorm as per-channel
    affine, as in a bundle, and one input named `x` (the profile kit lowers the same)."""
    from ..lowering import bn_as_affine

    program = copy.deepcopy(module).eval()
    if isinstance(program, nn.BatchNorm2d):
        program = nn.Sequential(program)
    bn_as_affine(program)
    return _Program(program).eval()


def lower(
    module: nn.Module, example: Tensor, backend: str, workdir: Path, threads: int
) -> Callable[[], object]:
    """`module` (`program_module`) lowered for `backend` as prp-export lowers paths; returns a
    call running it once on `example`."""
    from ..lowering import load_program, write_onnx, write_pte

    program = program_module(module)
    if backend == "executorch":
        pte = workdir / "program.pte"
        write_pte({"forward": program}, example, pte)
        loaded = load_program(pte)
        method = loaded.load_method("forward")
        inputs = [example]

        def run_pte() -> object:
            _ = loaded  # the method needs its program alive
            return method.execute(inputs)

        return run_pte
    import onnxruntime as ort
    from prp.runtime.backends import OnnxRuntimeBackend, onnx_session_options

    info = write_onnx({"program": program}, example, workdir)
    options = onnx_session_options()
    if not OnnxRuntimeBackend._pool_ready:  # else the process-wide pool decides
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(workdir / info["graphs"]["program"]), options, providers=["CPUExecutionProvider"]
    )
    feed = {session.get_inputs()[0].name: example.numpy()}
    return lambda: session.run(None, feed)
