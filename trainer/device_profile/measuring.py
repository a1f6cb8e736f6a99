"""`profile_space`: measure every op signature of a space into a table, resumably."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..runs import write_json
from ..spaces import SearchSpace
from ..supernet import Supernet
from .base import PROFILE_FORMAT, PROFILE_VERSION, RAPL_ROOT, ProfileError, ProgressFn
from .programs import (
    CALL_OVERHEAD_SHAPE,
    CallOverhead,
    OpProgram,
    check_backend,
    identity_convs,
    layout_shapes,
    op_programs,
    set_threads,
    shape_key,
)
from .table import (
    assemble_table,
    backend_versions,
    check_same_settings,
    conversion_costs,
    cpu_name,
    energy_path,
    partial_path,
    read_profile,
    space_json,
)
from .timing import RaplCounter, measure


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
    rapl = RaplCounter.find(rapl_root)
    header: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "version": PROFILE_VERSION,
        "space": space_json(space),
        "backend": backend,
        "threads": set_threads(backend, threads),
    }
    partial = partial_path(out)
    kept = kept_measurements(out, partial, header, programs)
    if isinstance(kept, dict):
        return kept  # nothing left to measure; its validation stays valid
    todo = [s for s, p in programs.items() if not p.free and s not in kept.measured]
    total = sum(not p.free for p in programs.values())
    started = time.perf_counter()

    def snapshot(complete: bool) -> dict[str, Any]:
        return {
            **header,
            "complete": complete,
            "objective": "latency",
            "unit": "ms",
            "device": device or cpu_name(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "profiling_s": round(kept.spent_s + time.perf_counter() - started, 2),
            "method": {
                "warmup": warmup,
                "repeats": repeats,
                "statistic": "median of the repeats; p25/p75 in measurements",
                "call_overhead": kept.overhead,
                "layout_baselines": kept.baselines,
            },
            "measurements": kept.measured,
        }

    settings: Settings = (backend, threads, warmup, repeats, rapl)
    measure_corrections(kept, programs, settings, seed)
    done = total - len(todo)
    for sig in todo:
        p = programs[sig]
        kept.measured[sig] = {
            **measure(p.module, p.in_shape, *settings, seed).to_json(),
            "in_shape": list(p.in_shape),
            "uses": p.uses,
        }
        write_json(partial, snapshot(False))  # atomically: a kill loses one measurement at most
        done += 1
        if progress is not None:
            progress(sig, done, total)
    table = finish_table(snapshot(True), programs, kept, space, backend, seed)
    table["energy"] = write_energy_table(table, programs, kept, space, out, rapl, rapl_root)
    write_json(out, table)
    partial.unlink(missing_ok=True)  # ours: written above under this name
    return table


# How `measure` runs: backend, threads, warm-up calls, timed repeats, the RAPL counter.
Settings = tuple[str, int, int, int, RaplCounter | None]


def measure_corrections(
    kept: Kept, programs: dict[str, OpProgram], settings: Settings, seed: int
) -> None:
    """The call overhead and, per 4-D shape, the layout-conversion baselines a table corrects
    its ops with, where `kept` lacks them (`settings`: backend, threads, warmup, repeats,
    RAPL counter, as `measure` takes them)."""
    if kept.overhead is None:
        kept.overhead = measure(CallOverhead(), CALL_OVERHEAD_SHAPE, *settings, seed).to_json()
    for shape in layout_shapes(programs):
        if shape_key(shape) not in kept.baselines:
            kept.baselines[shape_key(shape)] = {
                name: measure(identity_convs(shape[1], k), shape, *settings).to_json()
                for name, k in (("one", 1), ("two", 2))
            }


@dataclass
class Kept:
    """What earlier runs of the same profile measured: kept, so a rerun measures the rest."""

    measured: dict[str, dict[str, Any]]
    overhead: dict[str, Any] | None
    baselines: dict[str, dict[str, Any]]
    spent_s: float


def kept_measurements(
    out: Path, partial: Path, header: dict[str, Any], programs: dict[str, OpProgram]
) -> Kept | dict[str, Any]:
    """The measurements of `out` and its partial file (refused when made with other settings),
    or `out` itself when it is complete for these programs."""
    kept = Kept({}, None, {}, 0.0)
    for source in (out, partial):
        if source.is_file():
            data = read_profile(source)
            check_same_settings(source, data, header)
            method = data.get("method", {})
            if (
                source == out
                and data.get("complete")
                and set(data["measurements"]) >= {s for s, p in programs.items() if not p.free}
                and set(method.get("layout_baselines") or {})
                >= {shape_key(s) for s in layout_shapes(programs)}
            ):
                return data
            kept.measured.update(data["measurements"])
            kept.overhead = method.get("call_overhead") or kept.overhead
            kept.baselines.update(method.get("layout_baselines") or {})
            kept.spent_s = max(kept.spent_s, float(data.get("profiling_s", 0.0)))
    kept.measured = {s: m for s, m in kept.measured.items() if s in programs}
    return kept


def finish_table(
    table: dict[str, Any],
    programs: dict[str, OpProgram],
    kept: Kept,
    space: SearchSpace,
    backend: str,
    seed: int,
) -> dict[str, Any]:
    """The complete table: its ops assembled from the measurements, and its provenance."""
    assert kept.overhead is not None
    network_input = (1, *space.input_shape)
    ops, target = assemble_table(
        programs, kept.measured, kept.overhead, kept.baselines, network_input
    )
    table["ops"] = ops
    table["method"]["overhead_folded_into"] = target
    table["method"]["layout_conversion_ms"] = {
        k: round(v, 6) for k, v in conversion_costs(kept.baselines, kept.overhead).items()
    }
    table["method"]["free_ops"] = sorted(s for s, p in programs.items() if p.free)
    table["provenance"] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "versions": backend_versions(backend),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "seed": seed,
    }
    return table


def write_energy_table(
    table: dict[str, Any],
    programs: dict[str, OpProgram],
    kept: Kept,
    space: SearchSpace,
    out: Path,
    rapl: RaplCounter | None,
    rapl_root: Path,
) -> str:
    """The energy table beside `out` where every figure has a RAPL reading; returns what the
    latency table's `energy` field says about it."""
    assert kept.overhead is not None
    if rapl is None:
        return (
            f"not measured: no readable RAPL counter under {rapl_root}; the table is latency only"
        )
    figures = [
        kept.overhead,
        *kept.measured.values(),
        *(t for b in kept.baselines.values() for t in b.values()),
    ]
    if any("energy_mj" not in m for m in figures):
        return "not measured: ops kept from an earlier run have no energy figure"
    energy_ops, _ = assemble_table(
        programs, kept.measured, kept.overhead, kept.baselines, (1, *space.input_shape), "energy_mj"
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
    return f"measured with RAPL, table in {energy_out.name}"
