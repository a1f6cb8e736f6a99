"""`--validate`: how well a table's sums predict whole paths run end to end."""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import PRPError
from ..pareto import kendall_tau_b
from ..runs import write_json
from ..spaces import Priced, SearchSpace, Shape, get_space
from ..supernet import Supernet
from .base import BACKENDS, MIN_VALIDATION_PATHS, ProfileError, ProgressFn
from .programs import check_backend, set_threads
from .table import _space_json, _space_label, read_profile
from .timing import lower_quietly, time_calls


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
    from ..export import _drop_zero_terms, _for_xnnpack

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
    from ..costs import get_cost_model, price_supernet
    from ..export import path_module

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
    measured, live, calls = [], [], []
    shape = (1, *built.input_shape)
    example = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    with contextlib.ExitStack() as programs:
        for k, path in enumerate(chosen):
            module = path_module(supernet, path)
            workdir = programs.enter_context(tempfile.TemporaryDirectory(prefix="prp-validate-"))
            calls.append(lower_quietly(module, example, backend, Path(workdir), threads))
            measured.append(time_calls(calls[-1], warmup, repeats).median_ms)
            live.append(live_sum(module, shape, data["ops"]))
            if progress is not None:
                progress(built.encode(path), k + 1, len(chosen))
        # Every path timed once more, after all of them and in reverse order: how far the
        # measurements agree with themselves, about the most a table can agree with them.
        again = [time_calls(c, warmup, repeats).median_ms for c in reversed(calls)][::-1]
    predicted = priced.many(chosen)
    section: dict[str, Any] = {
        **{k: round(v, 4) for k, v in validation_figures(predicted, measured).items()},
        "paths": len(chosen),
        "seed": seed,
        "warmup": warmup,
        "repeats": repeats,
        "validation_s": round(time.perf_counter() - started, 2),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        # The same figures for the table's sum over the ops found in each exported program: a
        # cross-check of the pricing, equal to it where the cost model prices exactly those.
        "live_ops_only": {k: round(v, 4) for k, v in validation_figures(live, measured).items()},
        # The second timing of every path against the first (the first is `measured_ms`).
        "repeat": {
            k: round(v, 4)
            for k, v in validation_figures(again, measured).items()
            if k in ("kendall_tau_b", "mape_pct")
        },
        "per_path": [
            {
                "path": list(p),
                "predicted_ms": round(float(a), 6),
                "live_ops_ms": round(c, 6),
                "measured_ms": round(b, 6),
                "remeasured_ms": round(r, 6),
            }
            for p, a, c, b, r in zip(chosen, predicted, live, measured, again, strict=True)
        ],
    }
    data["validation"] = section
    write_json(table_path, data)
    return section
