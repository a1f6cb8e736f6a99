"""Statistics over a set of ranked architectures: rank aggregation and the paired bootstrap."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats


def log_rank_aggregate(members: Sequence[np.ndarray | Sequence[float]]) -> np.ndarray:
    """Combine several scores of the same N architectures (each higher = better) into one:
    sum over members of log(rank / N), where rank is the architecture's ascending rank under
    that member (N = its best, 1 = its worst; ties share their average rank). Higher = better.

    The rank aggregation of AZ-NAS (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for
    Network Architecture Search", CVPR 2024; its NB201 code sums `np.log(stats.rankdata(score) / N)`
    over proxies) and of VKDNW_agg (Tybl & Neumann, CVPR 2025). The log makes it a consensus:
    an architecture one member ranks near the bottom loses far more than it gains from being
    near the top of another. Scale-free, so members in any unit combine; -inf scores rank last.
    """
    arrays = [np.asarray(m, dtype=float) for m in members]
    if not arrays:
        raise ValueError("log_rank_aggregate needs at least one member")
    n = len(arrays[0])
    if n == 0 or any(a.shape != (n,) for a in arrays):
        raise ValueError(
            f"log_rank_aggregate needs members of one non-zero length, got "
            f"{[a.shape for a in arrays]}"
        )
    if any(np.isnan(a).any() for a in arrays):
        raise ValueError("log_rank_aggregate got a NaN score; every member must score every item")
    return np.sum([np.log(stats.rankdata(a) / n) for a in arrays], axis=0)


def paired_bootstrap(
    statistics: Callable[[np.ndarray], dict[str, float]],
    k: int,
    pairs: Mapping[str, str] | Sequence[tuple[str, str]],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """How much of a difference between estimators is the draw of the k items they were scored
    on. `statistics(idx)` scores every estimator on the items `idx`; it is called once on all k
    and once per resample (k items drawn with replacement, the same draw for every estimator, so
    differences are paired). Returns the point values, each statistic's 95 % percentile interval,
    and for each `pairs` entry (statistic, its baseline) the difference, its 95 % interval and
    the share of resamples in which the statistic is not above its baseline.

    A resample on which a statistic is undefined (NaN: e.g. a ranking constant on the drawn
    items) is left out of that statistic's interval; an interval with no defined resample is
    NaN."""
    point = statistics(np.arange(k))
    rng = np.random.default_rng(seed)
    boot = [statistics(rng.integers(0, k, k)) for _ in range(resamples)]
    draws = {name: np.array([b[name] for b in boot], dtype=float) for name in point}

    def interval(values: np.ndarray) -> list[float]:
        ok = values[~np.isnan(values)]
        if len(ok) == 0:
            return [float("nan"), float("nan")]
        return [float(v) for v in np.percentile(ok, [2.5, 97.5])]

    def not_better(a: np.ndarray, b: np.ndarray) -> float:
        ok = ~(np.isnan(a) | np.isnan(b))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no defined resample: NaN
            return float(np.mean(a[ok] <= b[ok])) if ok.any() else float("nan")

    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return {
        "point": point,
        "ci95": {name: interval(v) for name, v in draws.items()},
        "against": {
            f"{name} - {base}": {
                "difference": point[name] - point[base],
                "ci95": interval(draws[name] - draws[base]),
                "p_not_better": not_better(draws[name], draws[base]),
            }
            for name, base in items
        },
    }
