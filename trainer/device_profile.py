"""`prp-profile`: measure a search space's per-op cost table on this device, and check it.

Once-for-All and HW-NAS-Bench ship latency tables for a few devices; this builds one for the
device at hand. Every distinct op signature the trainer's op tracing produces (`trace_ops`, the
keys the `lut` cost model looks up) is lowered as its own small program, the same way
`prp-export` lowers paths (ExecuTorch with XNNPACK, or ONNX for ONNX Runtime), and timed with
warm-up and repetitions. The table is in the format `--cost-model lut` reads.

What a sum of op programs gets wrong, and what is done about it: each op program pays once
what a whole path pays once for all its ops: one call (runtime entry, input and output handling)
and XNNPACK's NCHW <-> NHWC layout conversions at its input and output. The call is measured on a
program that computes almost nothing; the conversions, per 4-D shape, as one identity 1x1
depthwise conv program minus the conv itself (two such convs minus one) minus the call. Each op
loses the call and half the conversions of its input and output shapes; the call and the network
input's conversion are added once to a fixed op every path has (`method` in the table). Not
modelled: the additions joining an NB201 cell's edges, and ops the exported program drops because
their result never reaches the output (an additive table prices them; `--validate` reports the
figures both ways, `live_ops_only` for the sum over the ops the program still runs).

Energy: with a readable Linux RAPL counter (`/sys/class/powercap`) the package energy per call
is measured too and written as a second table beside the first (`<out stem>.energy.json`, mJ);
without one the table says so and holds latency only.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from prp.runtime.cli_errors import one_line_errors
from torch import Tensor, nn

from .errors import PRPError
from .pareto import kendall_tau_b
from .profiling import trace_ops
from .runs import read_json, write_json
from .spaces import SIZES, SPACES, Priced, SearchSpace, Shape, get_space
from .supernet import Supernet

PROFILE_FORMAT = "prp-profile"
PROFILE_VERSION = 1
BACKENDS = ("executorch", "onnxruntime")
MIN_VALIDATION_PATHS = 50  # the floor for figures worth quoting
RAPL_ROOT = Path("/sys/class/powercap")
RAPL_MIN_S = 0.25  # RAPL counters update about every millisecond: integrate over longer


class ProfileError(PRPError):
    """A profile that cannot be made or checked as asked; nothing was overwritten."""


# --------------------------------------------------------------------------- signatures
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


# ------------------------------------------------------------------------------ timing
@dataclass(frozen=True)
class Timing:
    median_ms: float
    p25_ms: float
    p75_ms: float
    repeats: int
    energy_mj: float | None = None  # package energy per call, where RAPL is readable

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "median_ms": round(self.median_ms, 6),
            "p25_ms": round(self.p25_ms, 6),
            "p75_ms": round(self.p75_ms, 6),
            "repeats": self.repeats,
        }
        if self.energy_mj is not None:
            out["energy_mj"] = round(self.energy_mj, 9)
        return out


@dataclass(frozen=True)
class RaplCounter:
    """Linux RAPL package energy counters (microjoules, wrapping at `ranges`)."""

    files: tuple[Path, ...]
    ranges: tuple[int, ...]

    @classmethod
    def find(cls, root: Path = RAPL_ROOT) -> RaplCounter | None:
        """The readable package-level counters under `root`, or None (no RAPL, or not readable
        without privileges, as on most machines since Linux 5.10)."""
        files, ranges = [], []
        for zone in sorted(root.glob("*-rapl:*")):
            if zone.name.count(":") != 1:  # sub-zones (core, uncore, dram) are inside a package
                continue
            try:
                int((zone / "energy_uj").read_text())
                top = int((zone / "max_energy_range_uj").read_text())
            except (OSError, ValueError):
                continue
            files.append(zone / "energy_uj")
            ranges.append(top + 1)
        return cls(tuple(files), tuple(ranges)) if files else None

    def read(self) -> tuple[int, ...]:
        return tuple(int(f.read_text()) for f in self.files)

    def microjoules_since(self, start: Sequence[int]) -> int:
        """Energy used since `start` (a `read()`), across one counter wrap."""
        return sum((now - s) % r for now, s, r in zip(self.read(), start, self.ranges, strict=True))


def time_calls(
    call: Callable[[], object], warmup: int, repeats: int, rapl: RaplCounter | None = None
) -> Timing:
    """Median and quartiles of `repeats` timed calls after `warmup` untimed ones; with `rapl`,
    also the package energy per call over a loop of at least `RAPL_MIN_S` seconds."""
    for _ in range(warmup):
        call()
    times = np.empty(repeats)
    for k in range(repeats):
        t0 = time.perf_counter()
        call()
        times[k] = time.perf_counter() - t0
    times *= 1e3
    median = float(np.median(times))
    energy = None
    if rapl is not None:
        n = max(repeats, math.ceil(RAPL_MIN_S * 1e3 / max(median, 1e-6)))
        start = rapl.read()
        for _ in range(n):
            call()
        energy = rapl.microjoules_since(start) / n / 1e3
    return Timing(
        median, float(np.percentile(times, 25)), float(np.percentile(times, 75)), repeats, energy
    )


class _Program(nn.Module):
    """An op as a program with one input named `x` (what the exporters' dynamic shapes name)."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class _CallOverhead(nn.Module):
    """A program that computes almost nothing: its time is the cost of one call."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x)


CALL_OVERHEAD_SHAPE: Shape = (1, 8)


def _identity_convs(channels: int, count: int) -> nn.Module:
    """`count` 1x1 depthwise convolutions that copy their input: XNNPACK runs them in NHWC, so
    a program of them pays the NCHW <-> NHWC conversions an op program pays at its ends."""
    layers = []
    for _ in range(count):
        conv = nn.Conv2d(channels, channels, 1, groups=channels)
        nn.init.ones_(conv.weight)
        nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
        layers.append(conv)
    return nn.Sequential(*layers)


def _shape_key(shape: Shape) -> str:
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
    from .export import _replace_bn

    program = copy.deepcopy(module).eval()
    if isinstance(program, nn.BatchNorm2d):
        program = nn.Sequential(program)
    _replace_bn(program)
    return _Program(program).eval()


def lower(
    module: nn.Module, example: Tensor, backend: str, workdir: Path, threads: int
) -> Callable[[], object]:
    """`module` (`program_module`) lowered for `backend` as prp-export lowers paths; returns a
    call running it once on `example`."""
    from .export import write_onnx, write_pte

    program = program_module(module)
    if backend == "executorch":
        from executorch.runtime import Runtime

        pte = workdir / "program.pte"
        write_pte({"forward": program}, example, pte)
        loaded = Runtime.get().load_program(str(pte))
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


def measure(
    module: nn.Module,
    in_shape: Shape,
    backend: str,
    threads: int,
    warmup: int,
    repeats: int,
    rapl: RaplCounter | None = None,
    seed: int = 0,
) -> Timing:
    """Lower `module` for `backend` and time it on a random input of `in_shape`."""
    example = torch.randn(in_shape, generator=torch.Generator().manual_seed(seed))
    with tempfile.TemporaryDirectory(prefix="prp-profile-") as d, torch.no_grad():
        with warnings.catch_warnings():  # the exporters' deprecation notes, once per op
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            call = lower(module, example, backend, Path(d), threads)
        return time_calls(call, warmup, repeats, rapl)


# --------------------------------------------------------------------------- the table
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions(backend: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    out = {"python": platform.python_version(), "prp-nas": __version__}
    for pkg in ("torch", backend):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _space_json(space: SearchSpace) -> dict[str, Any]:
    return {k: v for k, v in space.describe().items() if k != "paths"}


def _space_label(data: dict[str, Any]) -> str:
    return f"{data.get('name', '?')} ({data.get('size', '?')})"


def read_profile(path: Path) -> dict[str, Any]:
    """A table (or partial table) written by prp-profile; a one-line error for anything else."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise ProfileError(
            f'{path} is not a prp-profile table (no "format": "{PROFILE_FORMAT}"); prp-profile '
            f"never overwrites other files: choose another --out"
        )
    if data.get("version") != PROFILE_VERSION:
        raise ProfileError(
            f"{path} is a prp-profile table of version {data.get('version')!r}; this version "
            f"reads {PROFILE_VERSION}: profile again into another --out"
        )
    if not isinstance(data.get("space"), dict) or not isinstance(data.get("measurements"), dict):
        raise ProfileError(f"{path} lacks 'space' or 'measurements'; the file is damaged")
    return data


def _check_same_settings(path: Path, data: dict[str, Any], want: dict[str, Any]) -> None:
    """Refuse to resume from, or add to, a table measured for another space or setting."""
    if data["space"] != want["space"]:
        raise ProfileError(
            f"{path} holds a table for space {_space_label(data['space'])}, not "
            f"{_space_label(want['space'])}; its signatures would not price this space: choose "
            f"another --out, or profile --space {data['space'].get('name')} "
            f"--size {data['space'].get('size')}"
        )
    for key in ("backend", "threads"):
        if data.get(key) != want[key]:
            raise ProfileError(
                f"{path} was measured with {key} {data.get(key)!r}, not {want[key]!r}; resume "
                f"with --{key} {data.get(key)}, or choose another --out"
            )


def partial_path(out: Path) -> Path:
    """Where an unfinished profile keeps what it has measured so far."""
    return out.with_name(out.name + ".partial")


def _fold_target(programs: dict[str, OpProgram]) -> str | None:
    """A fixed op every path runs exactly once, to carry the once-per-path call overhead."""
    once = [p.signature for p in programs.values() if p.fixed and p.uses == 1 and not p.free]
    return once[0] if once else None


def conversion_costs(
    baselines: dict[str, dict[str, Any]], overhead: dict[str, Any], field: str = "median_ms"
) -> dict[str, float]:
    """Per 4-D shape, the cost of the NCHW <-> NHWC conversions at both ends of a program:
    (one identity conv) - (two minus one: the conv itself) - the call overhead."""
    base = float(overhead[field])
    out = {}
    for key, b in baselines.items():
        one, two = float(b["one"][field]), float(b["two"][field])
        out[key] = max(one - (two - one) - base, 0.0)
    return out


def assemble_table(
    programs: dict[str, OpProgram],
    measurements: dict[str, dict[str, Any]],
    overhead: dict[str, Any],
    baselines: dict[str, dict[str, Any]] | None = None,
    network_input: Shape | None = None,
    field: str = "median_ms",
) -> tuple[dict[str, float], str | None]:
    """`ops` of the table: each op's `field` less what a whole path pays once, not per op: one
    call's overhead and half the layout conversions of its input and output shapes (one end
    each). Those are added once to a fixed op every path has (the network's input conversion;
    its 2-D output needs none). Free ops cost 0. Returns (ops, the op carrying the overhead)."""
    base = float(overhead[field])
    convert = conversion_costs(baselines or {}, overhead, field)

    def half(shape: Sequence[int]) -> float:
        return convert.get(_shape_key(tuple(shape)), 0.0) / 2

    target = _fold_target(programs)
    ops: dict[str, float] = {}
    for sig, p in programs.items():
        if p.free:
            ops[sig] = 0.0
            continue
        raw = float(measurements[sig][field])
        ops[sig] = max(raw - base - half(p.in_shape) - half(p.out_shape), 0.0)
    if target is not None:
        ops[target] += base + (half(network_input) if network_input else 0.0)
    return {k: round(v, 9) for k, v in ops.items()}, target


ProgressFn = Callable[[str, int, int], None]


def profile_space(
    space: SearchSpace,
    out: Path,
    backend: str = "executorch",
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 50,
    device: str | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
    rapl_root: Path = RAPL_ROOT,
) -> dict[str, Any]:
    """Measure every signature of `space` and write the table to `out`; returns it.

    Resumable: measurements go to `partial_path(out)` as they are made; a rerun with the same
    settings keeps them and measures only the rest. `progress(signature, done, total)` is called
    after each measurement (done counts the kept ones too).
    """
    check_backend(backend)
    if warmup < 0 or repeats < 1:
        raise ProfileError(f"--warmup must be >= 0 and --repeats >= 1, got {warmup}, {repeats}")
    if out.exists() and not out.is_file():
        raise ProfileError(f"--out {out} exists and is not a file; choose another --out")
    torch.manual_seed(seed)
    supernet = Supernet(space).eval()
    programs = op_programs(supernet)
    actual_threads = set_threads(backend, threads)
    rapl = RaplCounter.find(rapl_root)
    header: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "version": PROFILE_VERSION,
        "space": _space_json(space),
        "backend": backend,
        "threads": actual_threads,
    }
    partial = partial_path(out)
    measured: dict[str, dict[str, Any]] = {}
    overhead: dict[str, Any] | None = None
    baselines: dict[str, dict[str, Any]] = {}
    spent_s = 0.0
    for source in (out, partial):
        if source.is_file():
            data = read_profile(source)
            _check_same_settings(source, data, header)
            method = data.get("method", {})
            if (
                source == out
                and data.get("complete")
                and set(data["measurements"]) >= {s for s, p in programs.items() if not p.free}
                and set(method.get("layout_baselines") or {})
                >= {_shape_key(s) for s in layout_shapes(programs)}
            ):
                return data  # nothing left to measure; its validation stays valid
            measured.update(data["measurements"])
            overhead = method.get("call_overhead") or overhead
            baselines.update(method.get("layout_baselines") or {})
            spent_s = max(spent_s, float(data.get("profiling_s", 0.0)))
    measured = {s: m for s, m in measured.items() if s in programs}
    todo = [s for s, p in programs.items() if not p.free and s not in measured]
    total = sum(not p.free for p in programs.values())
    started = time.perf_counter()

    def snapshot(complete: bool) -> dict[str, Any]:
        return {
            **header,
            "complete": complete,
            "objective": "latency",
            "unit": "ms",
            "device": device or _cpu_name(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "profiling_s": round(spent_s + time.perf_counter() - started, 2),
            "method": {
                "warmup": warmup,
                "repeats": repeats,
                "statistic": "median of the repeats; p25/p75 in measurements",
                "call_overhead": overhead,
                "layout_baselines": baselines,
            },
            "measurements": measured,
        }

    if overhead is None:
        overhead = measure(
            _CallOverhead(), CALL_OVERHEAD_SHAPE, backend, threads, warmup, repeats, rapl, seed
        ).to_json()
    for shape in layout_shapes(programs):
        key = _shape_key(shape)
        if key not in baselines:
            baselines[key] = {
                name: measure(
                    _identity_convs(shape[1], k), shape, backend, threads, warmup, repeats, rapl
                ).to_json()
                for name, k in (("one", 1), ("two", 2))
            }
    done = total - len(todo)
    for sig in todo:
        p = programs[sig]
        measured[sig] = {
            **measure(
                p.module, p.in_shape, backend, threads, warmup, repeats, rapl, seed
            ).to_json(),
            "in_shape": list(p.in_shape),
            "uses": p.uses,
        }
        write_json(partial, snapshot(False))  # atomically: a kill loses one measurement at most
        done += 1
        if progress is not None:
            progress(sig, done, total)
    table = snapshot(True)
    network_input = (1, *space.input_shape)
    ops, target = assemble_table(programs, measured, overhead, baselines, network_input)
    table["ops"] = ops
    table["method"]["overhead_folded_into"] = target
    table["method"]["layout_conversion_ms"] = {
        k: round(v, 6) for k, v in conversion_costs(baselines, overhead).items()
    }
    table["method"]["free_ops"] = sorted(s for s, p in programs.items() if p.free)
    table["provenance"] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "versions": _versions(backend),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "seed": seed,
    }
    if rapl is None:
        table["energy"] = (
            f"not measured: no readable RAPL counter under {rapl_root}; the table is latency only"
        )
    elif any(
        "energy_mj" not in m
        for m in [
            overhead,
            *measured.values(),
            *(t for b in baselines.values() for t in b.values()),
        ]
    ):
        table["energy"] = "not measured: ops kept from an earlier run have no energy figure"
    else:
        energy_ops, _ = assemble_table(
            programs, measured, overhead, baselines, network_input, "energy_mj"
        )
        energy_out = energy_path(out)
        write_json(
            energy_out,
            {
                **{k: v for k, v in table.items() if k not in ("ops", "energy")},
                "objective": "energy",
                "unit": "mJ",
                "energy": "RAPL package energy per call (the whole package, idle share included)",
                "ops": energy_ops,
            },
        )
        table["energy"] = f"measured with RAPL, table in {energy_out.name}"
    write_json(out, table)
    partial.unlink(missing_ok=True)  # ours: written above under this name
    return table


def energy_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.energy{out.suffix or '.json'}")


# -------------------------------------------------------------------------- validation
def validation_figures(
    predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """How well the table's sums predict measured path latencies.

    Kendall tau-b (ranking, what training needs), mean absolute percentage error, the mean of
    measured minus predicted (what the table misses per path, e.g. fixed overhead) and the MAPE
    once a constant per-path offset is added, fitted on one half of the paths and scored on the
    other (2-fold, so the offset is never scored on the paths it was fitted on).
    """
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if p.shape != m.shape or p.ndim != 1 or len(p) < 2:
        raise ProfileError("validation needs predicted and measured figures for >= 2 paths")
    if (m <= 0).any():
        raise ProfileError("a measured path latency is not positive; measure again")
    folds = np.arange(len(p)) % 2
    corrected = p.copy()
    for k in (0, 1):
        corrected[folds == k] += float(np.median((m - p)[folds != k]))
    return {
        "kendall_tau_b": kendall_tau_b(p, m),
        "mape_pct": float(np.mean(np.abs(p - m) / m) * 100),
        "mean_missing_ms": float(np.mean(m - p)),
        "mape_pct_with_offset_2fold": float(np.mean(np.abs(corrected - m) / m) * 100),
    }


def space_of(data: dict[str, Any], where: Path) -> SearchSpace:
    """The search space a table was measured for, rebuilt and checked against the table."""
    info = data["space"]
    try:
        space = get_space(str(info["name"]), size=str(info["size"]))
    except (PRPError, ValueError, KeyError) as e:
        raise ProfileError(f"{where}: cannot rebuild its space {info!r} ({e})") from None
    if _space_json(space) != info:
        raise ProfileError(
            f"{where} was measured for {info!r}, but this version builds {_space_json(space)!r}; "
            f"profile again"
        )
    return space


def live_sum(module: nn.Module, in_shape: Shape, ops: dict[str, float]) -> float:
    """The table's sum over the ops of `module` (a path network) whose computation is still in
    its exported program, as prp-export lowers it. The additive table prices every op of the
    path; the exported program drops an op whose result never reaches the output (an NB201 node
    whose outgoing edges are all `none`, say). Ops are the outermost `Priced` modules."""
    from .export import _drop_zero_terms, _for_xnnpack

    example = torch.zeros(in_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        exported = torch.export.export(_for_xnnpack(module).eval(), (example,))
    program = _drop_zero_terms(exported)
    live: set[str] = set()
    for node in program.graph.nodes:
        if node.op == "call_function":
            live.update(str(name) for name, _ in node.meta.get("nn_module_stack", {}).values())
    outer: dict[str, Any] = {}  # nn.Module and Priced
    for name, m in module.named_modules():
        if isinstance(m, Priced) and not any(name.startswith(f"{o}.") for o in outer):
            outer[name] = m
    seen: dict[str, str | None] = {}
    hooks = [
        m.register_forward_hook(
            lambda m, a, o, name=name: seen.__setitem__(
                name, m.signature(tuple(a[0].shape), tuple(o.shape))
            )
        )
        for name, m in outer.items()
    ]
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in hooks:
            h.remove()
    return float(sum(ops[sig] for name, sig in seen.items() if sig is not None and name in live))


def sample_paths(supernet: Supernet, n: int, seed: int) -> list[tuple[int, ...]]:
    """`n` distinct paths drawn uniformly (all of them where the space has fewer)."""
    rng = np.random.default_rng(seed)
    n = min(n, supernet.space.num_paths)
    seen: dict[tuple[int, ...], None] = {}
    while len(seen) < n:
        seen.setdefault(supernet.sample_uniform(rng), None)
    return list(seen)


def validate_table(
    table_path: Path,
    paths: int = MIN_VALIDATION_PATHS,
    warmup: int | None = None,
    repeats: int | None = None,
    seed: int = 0,
    space: str | None = None,
    size: str | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Run `paths` random whole paths end to end on the table's backend and thread count,
    compare them with the table's sums (priced by the `lut` cost model, as prp-train prices
    them) and write the figures into the table's `validation`. Returns that section."""
    from .costs import get_cost_model, price_supernet
    from .export import path_module

    data = read_profile(table_path)
    if not data.get("complete"):
        raise ProfileError(
            f"{table_path} is not complete; rerun the prp-profile command that wrote it"
        )
    wanted = {"name": space, "size": size}
    for key, value in wanted.items():
        if value is not None and data["space"].get(key) != value:
            raise ProfileError(
                f"{table_path} is a table for space {_space_label(data['space'])}, not "
                f"--space {space or data['space'].get('name')} --size "
                f"{size or data['space'].get('size')}: profile that space first"
            )
    if paths < 2:
        raise ProfileError(f"--paths must be at least 2 (50 or more to quote), got {paths}")
    built = space_of(data, table_path)
    backend, threads = str(data["backend"]), int(data["threads"])
    if backend not in BACKENDS:  # e.g. executorch-android: the Android bridge's OpProfiler
        raise ProfileError(
            f"{table_path} was measured with backend {backend!r}, on another device; --validate "
            f"runs whole paths here, with {' or '.join(BACKENDS)} only"
        )
    check_backend(backend)
    set_threads(backend, threads)
    method = data.get("method", {})
    warmup = int(method.get("warmup", 10)) if warmup is None else warmup
    repeats = int(method.get("repeats", 50)) if repeats is None else repeats
    torch.manual_seed(seed)
    supernet = Supernet(built).eval()
    priced = price_supernet(supernet, get_cost_model("lut", "latency", path=table_path))
    chosen = sample_paths(supernet, paths, seed)
    started = time.perf_counter()
    measured, live = [], []
    shape = (1, *built.input_shape)
    for k, path in enumerate(chosen):
        module = path_module(supernet, path)
        t = measure(module, shape, backend, threads, warmup, repeats, seed=seed)
        measured.append(t.median_ms)
        live.append(live_sum(module, shape, data["ops"]))
        if progress is not None:
            progress(built.encode(path), k + 1, len(chosen))
    predicted = priced.many(chosen)
    section: dict[str, Any] = {
        **{k: round(v, 4) for k, v in validation_figures(predicted, measured).items()},
        "paths": len(chosen),
        "seed": seed,
        "warmup": warmup,
        "repeats": repeats,
        "validation_s": round(time.perf_counter() - started, 2),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        # The same figures for the sum over only the ops the exported program still runs:
        # the gap between the two is what the additive cost model over-counts, not the table.
        "live_ops_only": {k: round(v, 4) for k, v in validation_figures(live, measured).items()},
        "per_path": [
            {
                "path": list(p),
                "predicted_ms": round(float(a), 6),
                "live_ops_ms": round(c, 6),
                "measured_ms": round(b, 6),
            }
            for p, a, c, b in zip(chosen, predicted, live, measured, strict=True)
        ],
    }
    data["validation"] = section
    write_json(table_path, data)
    return section


# ---------------------------------------------------------------------------------- CLI
def _check_space_option(space: str | None, size: str | None, what: str) -> SearchSpace:
    if space is None:
        raise ProfileError(f"give --space to {what} (e.g. --space nb201)")
    if space not in SPACES.names():
        raise ProfileError(
            f"unknown search space {space!r}; spaces are: {', '.join(SPACES.names())}"
        )
    if (size or "real") not in SIZES:
        raise ProfileError(f"unknown --size {size!r}; use one of: {', '.join(SIZES)}")
    return get_space(space, size=size or "real")


profile_app = typer.Typer(
    add_completion=False,
    help="Measure a search space's per-op cost table on this device, for --cost-model lut.",
)


@profile_app.command()
def profile(
    space: str = typer.Option(None, "--space", help="Search space to profile: nb201, fbnet, ..."),
    size: str = typer.Option(None, "--size", help="Space size: real (default) or tiny."),
    backend: str = typer.Option("executorch", help="executorch (XNNPACK) or onnxruntime."),
    out: Path = typer.Option(None, "--out", help="Table to write (JSON); resumed if present."),
    threads: int = typer.Option(1, help="Threads the backend may use (recorded in the table)."),
    warmup: int = typer.Option(None, help="Untimed calls before timing (default 10)."),
    repeats: int = typer.Option(None, help="Timed calls per op or path (default 50)."),
    device_name: str = typer.Option(None, "--device-name", help="Device name (default: CPU)."),
    validate: Path = typer.Option(
        None, "--validate", help="Check this table against whole paths run end to end."
    ),
    paths: int = typer.Option(MIN_VALIDATION_PATHS, help="--validate: random paths to run."),
    seed: int = typer.Option(0, help="Seed of the weights, inputs and validation paths."),
    kit: Path = typer.Option(
        None,
        "--kit",
        help="Write a profile kit (ops.pte + kit.json) into this folder, for the Android "
        "bridge's OpProfiler to measure on a phone, instead of measuring here.",
    ),
) -> None:
    """Profile SPACE's ops into --out, check a table with --validate TABLE, or write a kit for
    a phone with --kit DIR."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .cli import _console

    console = _console()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("starting", total=None)

    def step(name: str, done: int, total: int) -> None:
        bar.update(task, description=name[:60], completed=done, total=total)

    with one_line_errors(console, PRPError):
        try:
            if sum(x is not None for x in (out, validate, kit)) > 1:
                raise ProfileError(
                    "give one of --out (profile here), --validate TABLE (check one) or --kit DIR "
                    "(a kit for a phone)"
                )
            if kit is not None:
                from .profile_kit import kit_command

                kit_command(console, kit, space, size, warmup, repeats, seed)
                return
            if validate is not None:
                if paths < MIN_VALIDATION_PATHS:
                    console.print(
                        f"[yellow]note:[/yellow] {paths} paths; quote figures from "
                        f">= {MIN_VALIDATION_PATHS}"
                    )
                with bar:
                    v = validate_table(validate, paths, warmup, repeats, seed, space, size, step)
                console.print(
                    f"{validate}: {v['paths']} paths, Kendall tau-b {v['kendall_tau_b']:.3f}, "
                    f"MAPE {v['mape_pct']:.1f} %, table misses {v['mean_missing_ms']:.4f} ms per "
                    f"path on average (MAPE {v['mape_pct_with_offset_2fold']:.1f} % with that "
                    f"offset, 2-fold); {v['validation_s']:.0f} s"
                )
                return
            if space is None or out is None:
                raise ProfileError(
                    "give --space and --out to profile (e.g. --space nb201 --out my_device.json), "
                    "--validate TABLE, or --space and --kit DIR for a phone"
                )
            sp = _check_space_option(space, size, "profile")
            with bar:
                table = profile_space(
                    sp,
                    out,
                    backend,
                    threads,
                    10 if warmup is None else warmup,
                    50 if repeats is None else repeats,
                    device_name,
                    seed,
                    step,
                )
            overhead = table["method"]["call_overhead"]["median_ms"]
            console.print(
                f"wrote {out}: {len(table['ops'])} signatures of {sp.name} ({sp.size}) on "
                f"{table['device']!r}, {table['backend']} with {table['threads']} thread(s); call "
                f"overhead {overhead:.4f} ms; profiling took {table['profiling_s']:.0f} s. "
                f"{table['energy']}. Check it with: prp-profile --validate {out}"
            )
        except KeyboardInterrupt:
            part = partial_path(out) if out is not None and validate is None else None
            kept = (
                f"; measured ops are kept in {part}, rerun the same command to resume"
                if part
                else ""
            )
            console.print(f"[red]interrupted[/red]{kept}")
            raise typer.Exit(130) from None
