"""`--validate`: how well a table's sums predict whole paths run end to end."""

from __future__ import annotations

import contextlib
import dataclasses
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
from .base import BACKENDS, MIN_VALIDATION_PATHS, VALIDATION_ROUNDS, ProfileError, ProgressFn
from .programs import check_backend, set_threads
from .table import read_profile, space_json, space_label
from .timing import lower_quietly, time_calls


def affine_fit(
    predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Least-squares (scale, offset) taking the table's sums to the measured latencies; only
    an offset (scale 1) where the sums do not differ. What an additive table misses grows with
    the path in some spaces (NB201 here: cache effects, the additions joining a cell's edges)
    and is a fixed amount per path in others (FBNet); the two terms cover both."""
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if np.ptp(p) == 0:
        return 1.0, float(np.median(m - p))
    scale, offset = np.polyfit(p, m, 1)
    return float(scale), float(offset)


def validation_figures(
    predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """How well the table's sums predict measured path latencies.

    Kendall tau-b (ranking, what training needs), mean absolute percentage error, the mean of
    measured minus predicted (what the table misses per path, e.g. fixed overhead), and the
    MAPE once a constant per-path offset, or a scale and an offset (`affine_fit`), is applied:
    each fitted on one half of the paths and scored on the other (2-fold, so a correction is
    never scored on the paths it was fitted on).
    """
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if p.shape != m.shape or p.ndim != 1 or len(p) < 2:
        raise ProfileError("validation needs predicted and measured figures for >= 2 paths")
    if (m <= 0).any():
        raise ProfileError("a measured path latency is not positive; measure again")
    folds = np.arange(len(p)) % 2
    shifted, affine = p.copy(), p.copy()
    for k in (0, 1):
        fit, score = folds != k, folds == k
        shifted[score] += float(np.median((m - p)[fit]))
        scale, offset = affine_fit(p[fit], m[fit])
        affine[score] = scale * p[score] + offset
    return {
        "kendall_tau_b": kendall_tau_b(p, m),
        "mape_pct": float(np.mean(np.abs(p - m) / m) * 100),
        "mean_missing_ms": float(np.mean(m - p)),
        "mape_pct_with_offset_2fold": float(np.mean(np.abs(shifted - m) / m) * 100),
        "mape_pct_affine_2fold": float(np.mean(np.abs(affine - m) / m) * 100),
    }


def space_of(data: dict[str, Any], where: Path) -> SearchSpace:
    """The search space a table was measured for, rebuilt and checked against the table."""
    info = data["space"]
    try:
        space = get_space(str(info["name"]), size=str(info["size"]))
    except (PRPError, ValueError, KeyError) as e:
        raise ProfileError(f"{where}: cannot rebuild its space {info!r} ({e})") from None
    if space_json(space) != info:
        raise ProfileError(
            f"{where} was measured for {info!r}, but this version builds {space_json(space)!r}; "
            f"profile again"
        )
    return space


def live_sum(module: nn.Module, in_shape: Shape, ops: dict[str, float]) -> float:
    """The table's sum over the ops of `module` (a path network) whose computation is still in
    its exported program, as prp-export lowers it. The additive table prices every op of the
    path; the exported program drops an op whose result never reaches the output (an NB201 node
    whose outgoing edges are all `none`, say). Ops are the outermost `Priced` modules."""
    from ..lowering import drop_zero_terms, for_xnnpack

    example = torch.zeros(in_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        exported = torch.export.export(for_xnnpack(module).eval(), (example,))
    program = drop_zero_terms(exported)
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
    rounds: int = VALIDATION_ROUNDS,
) -> dict[str, Any]:
    """Run `paths` random whole paths end to end on the table's backend and thread count,
    `rounds` times each, compare the mean of the rounds with the table's sums (priced by the
    `lut` cost model, as prp-train prices them) and write the figures into the table's
    `validation`. Returns that section."""
    from ..costs import LUTCostModel, get_cost_model, price_supernet

    data, built = table_to_validate(table_path, space, size, paths, rounds)
    backend, threads = str(data["backend"]), int(data["threads"])
    check_backend(backend)
    set_threads(backend, threads)
    method = data.get("method", {})
    warmup = int(method.get("warmup", 10)) if warmup is None else warmup
    repeats = int(method.get("repeats", 50)) if repeats is None else repeats
    torch.manual_seed(seed)
    supernet = Supernet(built).eval()
    # The table's own sums: without the correction an earlier validation fitted.
    lut = get_cost_model("lut", "latency", path=table_path)
    assert isinstance(lut, LUTCostModel)
    priced = price_supernet(supernet, dataclasses.replace(lut, correction=None))
    chosen = sample_paths(supernet, paths, seed)
    started = time.perf_counter()
    timed, live = time_paths(
        supernet, chosen, data["ops"], (backend, threads, warmup, repeats), rounds, seed, progress
    )
    how = {
        "seed": seed,
        "warmup": warmup,
        "repeats": repeats,
        "rounds": rounds,
        "validation_s": round(time.perf_counter() - started, 2),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    section = validation_section(chosen, priced.many(chosen), live, timed, how)
    data["validation"] = section
    write_json(table_path, data)
    return section


def table_to_validate(
    table_path: Path, space: str | None, size: str | None, paths: int, rounds: int
) -> tuple[dict[str, Any], SearchSpace]:
    """The table at `table_path` and the space it prices, refused when it is incomplete, for
    another space than `--space`/`--size`, measured on another device, or `paths` or `rounds`
    are too few."""
    data = read_profile(table_path)
    if not data.get("complete"):
        raise ProfileError(
            f"{table_path} is not complete; rerun the prp-profile command that wrote it"
        )
    wanted = {"name": space, "size": size}
    for key, value in wanted.items():
        if value is not None and data["space"].get(key) != value:
            raise ProfileError(
                f"{table_path} is a table for space {space_label(data['space'])}, not "
                f"--space {space or data['space'].get('name')} --size "
                f"{size or data['space'].get('size')}: profile that space first"
            )
    if paths < 2:
        raise ProfileError(f"--paths must be at least 2 (50 or more to quote), got {paths}")
    if rounds < 2:
        raise ProfileError(
            f"--rounds must be at least 2 (two halves to compare; {VALIDATION_ROUNDS} by "
            f"default), got {rounds}"
        )
    built = space_of(data, table_path)
    backend = str(data["backend"])
    if backend not in BACKENDS:  # e.g. executorch-android: the Android bridge's OpProfiler
        raise ProfileError(
            f"{table_path} was measured with backend {backend!r}, on another device; --validate "
            f"runs whole paths here, with {' or '.join(BACKENDS)} only"
        )
    return data, built


def time_paths(
    supernet: Supernet,
    chosen: list[tuple[int, ...]],
    ops: dict[str, float],
    settings: tuple[str, int, int, int],
    rounds: int,
    seed: int,
    progress: ProgressFn | None,
) -> tuple[np.ndarray, list[float]]:
    """Each of `chosen` lowered as prp-export lowers it and timed `rounds` times (`settings`:
    backend, threads, warm-up calls, timed repeats): the median of each round per path
    (rounds x paths), and the table's sum over the ops left in each exported program."""
    from ..lowering import path_module

    backend, threads, warmup, repeats = settings
    live, calls = [], []
    shape = (1, *supernet.space.input_shape)
    example = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    with contextlib.ExitStack() as programs:
        for k, path in enumerate(chosen):
            module = path_module(supernet, path)
            workdir = programs.enter_context(tempfile.TemporaryDirectory(prefix="prp-validate-"))
            calls.append(lower_quietly(module, example, backend, Path(workdir), threads))
            live.append(live_sum(module, shape, ops))
            if progress is not None:
                progress(f"lowering {supernet.space.encode(path)}", k + 1, len(chosen))
        # Timed only once every path is lowered, in rounds that alternate between forward and
        # reverse order: a slow spell of the machine (another process, a clock change) is then
        # spread over all paths instead of landing on the few timed during it, and the mean of
        # the rounds is steadier than any one of them.
        timed = np.empty((rounds, len(calls)))
        for r in range(rounds):
            order = range(len(calls)) if r % 2 == 0 else reversed(range(len(calls)))
            for i in order:
                timed[r, i] = time_calls(calls[i], warmup, repeats).median_ms
            if progress is not None:
                progress(f"timing: round {r + 1} of {rounds}", r + 1, rounds)
    return timed, live


def validation_section(
    chosen: list[tuple[int, ...]],
    predicted: np.ndarray,
    live: list[float],
    timed: np.ndarray,
    how: dict[str, Any],
) -> dict[str, Any]:
    """The figures of a validation: the table's sums (`predicted`) against the mean of the
    timed rounds, the live-op sums likewise, the two halves of the rounds against each other,
    the fitted correction and every path's figures; `how` (seed, counts, date) after the
    number of paths."""
    measured = timed.mean(axis=0)
    # Two halves of the rounds (even against odd) against each other: how far the
    # measurements agree with themselves, about the most a table can agree with half of them.
    halves = timed[0::2].mean(axis=0), timed[1::2].mean(axis=0)
    figures = validation_figures(predicted, measured)
    scale, offset = affine_fit(predicted, measured)
    return {
        **{k: round(v, 4) for k, v in figures.items()},
        "paths": len(chosen),
        **how,
        # The same figures for the table's sum over the ops found in each exported program: a
        # cross-check of the pricing, equal to it where the cost model prices exactly those.
        "live_ops_only": {k: round(v, 4) for k, v in validation_figures(live, measured).items()},
        # The mean of the odd rounds against that of the even ones.
        "repeat": {
            k: round(v, 4)
            for k, v in validation_figures(halves[1], halves[0]).items()
            if k in ("kendall_tau_b", "mape_pct")
        },
        # What the table misses, modelled: `--cost-model lut` prices a path as
        # scale x (the table's sum) + offset where that lowers the error on paths it was not
        # fitted on (`applied`). A positive scale and a shared offset keep every ranking.
        "correction": {
            "scale": round(scale, 6),
            "offset_ms": round(offset, 6),
            "applied": bool(scale > 0 and figures["mape_pct_affine_2fold"] < figures["mape_pct"]),
        },
        "per_path": [
            {
                "path": list(p),
                "predicted_ms": round(float(a), 6),
                "live_ops_ms": round(c, 6),
                "measured_ms": round(float(b), 6),
                "rounds_ms": [round(float(x), 6) for x in r],
            }
            for p, a, c, b, r in zip(chosen, predicted, live, measured, timed.T, strict=True)
        ],
    }
