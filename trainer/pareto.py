"""Pareto math: ranks (paper eq. 1), hypervolume, hypervolume improvement (eq. 3), Kendall's tau-b.

Non-dominated sorting and hypervolume come from moocore (C implementations of the reference
algorithms, exact hypervolume in any dimension, and a plain NumPy interface with per-objective
maximise flags); pymoo would do too but brings a whole optimisation framework for two functions.
Kendall's tau-b comes from scipy.
"""

from __future__ import annotations

from collections.abc import Sequence

import moocore
import numpy as np
from scipy import stats

Maximize = bool | Sequence[bool]


def _points(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"points must be a 2-D array (one row per point), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("points contain NaN or infinite values; every objective must be finite")
    return arr


def _flags(maximize: Maximize, n_obj: int) -> np.ndarray:
    flags = [bool(maximize)] * n_obj if isinstance(maximize, bool) else [bool(m) for m in maximize]
    if len(flags) != n_obj:
        raise ValueError(f"{len(flags)} maximize flags for {n_obj} objectives")
    # An array, not a list: moocore 0.3.2 reads the one-element list [False] as "maximise".
    return np.asarray(flags, dtype=bool)


def pareto_ranks(points: np.ndarray | Sequence[Sequence[float]], maximize: Maximize) -> np.ndarray:
    """Pareto rank of each point, 1 = non-dominated (paper eq. 1). Equal points share a rank."""
    arr = _points(points)
    if len(arr) == 0:
        return np.zeros(0, dtype=int)
    return np.asarray(moocore.pareto_rank(arr, maximise=_flags(maximize, arr.shape[1]))) + 1


def is_nondominated(
    points: np.ndarray | Sequence[Sequence[float]], maximize: Maximize
) -> np.ndarray:
    """Boolean mask of the points no other point dominates (duplicates of such points too)."""
    arr = _points(points)
    if len(arr) == 0:
        return np.zeros(0, dtype=bool)
    flags = _flags(maximize, arr.shape[1])
    return np.asarray(moocore.is_nondominated(arr, maximise=flags, keep_weakly=True))


def hypervolume(
    points: np.ndarray | Sequence[Sequence[float]],
    ref: Sequence[float] | np.ndarray,
    maximize: Maximize,
) -> float:
    """Volume dominated by `points` and bounded by the reference point `ref`.

    Points that do not strictly improve on `ref` in every objective contribute nothing.
    """
    arr = _points(points)
    ref_arr = np.asarray(ref, dtype=float)
    if ref_arr.shape != (arr.shape[1],):
        raise ValueError(
            f"reference point {list(ref_arr)} does not match {arr.shape[1]} objectives"
        )
    if len(arr) == 0:
        return 0.0
    return float(moocore.hypervolume(arr, ref=ref_arr, maximise=_flags(maximize, arr.shape[1])))


def hypervolume_improvement(
    front: np.ndarray | Sequence[Sequence[float]],
    subset: np.ndarray | Sequence[Sequence[float]],
    ref: Sequence[float] | np.ndarray,
    maximize: Maximize,
) -> float:
    """Paper eq. 3: HV(P u S) - HV(P - S), for P = `front` and S = `subset`.

    In pruning, S is the set of sampled paths that use one op of one slot; the larger the
    improvement, the more of the front depends on that op.
    """
    p = _points(front)
    s = _points(subset) if len(subset) else np.zeros((0, p.shape[1]))
    union = np.vstack([p, s]) if len(s) else p
    if len(s):
        in_s = (p[:, None, :] == s[None, :, :]).all(axis=2).any(axis=1)
        rest = p[~in_s]
    else:
        rest = p
    return hypervolume(union, ref, maximize) - hypervolume(rest, ref, maximize)


def greedy_hypervolume_subset(
    points: np.ndarray | Sequence[Sequence[float]],
    k: int,
    ref: Sequence[float] | np.ndarray,
    maximize: Maximize,
) -> list[int]:
    """Indices of k points chosen greedily, each adding the most hypervolume to those chosen.

    Ties (points that add nothing) are broken by order. k larger than the number of points
    returns every index.
    """
    arr = _points(points)
    chosen: list[int] = []
    remaining = list(range(len(arr)))
    current = 0.0
    while remaining and len(chosen) < k:
        gains = [hypervolume(arr[chosen + [i]], ref, maximize) - current for i in remaining]
        best = int(np.argmax(gains))
        chosen.append(remaining.pop(best))
        current += gains[best]
    return chosen


def kendall_tau_b(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b (handles ties, as Pareto ranks have many) between two rankings."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"kendall_tau_b needs two 1-D sequences of one length, got {x.shape}, {y.shape}"
        )
    if len(x) < 2:
        raise ValueError("kendall_tau_b needs at least two items")
    return float(stats.kendalltau(x, y, variant="b").statistic)
