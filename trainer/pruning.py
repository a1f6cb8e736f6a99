"""Stage 3 of the paper: prune the supernet by Pareto rank and hypervolume improvement (eq. 3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .pareto import greedy_hypervolume_subset, hypervolume_improvement, pareto_ranks
from .spaces import Path
from .supernet import Supernet

# Objectives of a path: (accuracy, cost); accuracy maximised, cost minimised.
MAXIMIZE = (True, False)


def reference_point(
    points: np.ndarray, maximize: Sequence[bool] = MAXIMIZE, margin: float = 0.1
) -> np.ndarray:
    """A reference point just beyond the worst value of each objective.

    Worst value minus (maximised) or plus (minimised) `margin` x the objective's range (1 where
    the range is 0), so every point, the worst included, adds some hypervolume.
    """
    pts = np.asarray(points, dtype=float)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.where(maximize, lo - margin * span, hi + margin * span)


@dataclass(frozen=True)
class PrunedOpRecord:
    slot: int
    op: int
    op_name: str
    hvi: float  # eq. 3 for the sampled paths that use this op, against the kept set
    reason: str


@dataclass(frozen=True)
class PruneResult:
    kept: list[Path]
    pruned: list[PrunedOpRecord]
    freed_bytes: int
    reference: list[float]


def prune_by_pareto(
    supernet: Supernet, paths: Sequence[Path], points: np.ndarray, keep: int
) -> PruneResult:
    """Keep `keep` paths, best Pareto ranks first, by hypervolume; prune ops none of them uses.

    `points[k]` = (estimated accuracy, cost) of `paths[k]`. The paper selects n paths from the
    first two Pareto ranks by hypervolume improvement; where those two ranks hold fewer than
    `keep` paths, the next ranks fill in, rank by rank and each by hypervolume gain within its
    rank, so `keep` paths (all of them if fewer) decide what stays. With few noisy estimates the
    first two ranks can be a handful of paths, and pruning to what they use removed ops the true
    front needs (bench/ranking). Every slot keeps at least the ops the kept paths use, so at
    least one. Each pruned op is recorded with its hypervolume improvement (eq. 3) over the kept
    set: the hypervolume the kept front would gain from the sampled paths that use it, zero or
    small for an op that only appears off the front.
    """
    pts = np.asarray(points, dtype=float)
    if len(paths) != len(pts) or pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(
            f"need one (accuracy, cost) row per path; got {pts.shape} for {len(paths)}"
        )
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    ranks = pareto_ranks(pts, MAXIMIZE)
    ref = reference_point(pts)
    kept_idx: list[int] = []
    for rank in sorted(set(int(r) for r in ranks)):
        if len(kept_idx) >= keep and rank > 2:
            break
        level = [k for k in range(len(paths)) if ranks[k] == rank]
        if rank <= 2:  # the paper's candidates: chosen together by hypervolume below
            kept_idx += level
            continue
        order = greedy_hypervolume_subset(pts[level], keep - len(kept_idx), ref, MAXIMIZE)
        kept_idx += [level[i] for i in order]
    if len(kept_idx) > keep:  # ranks 1-2 alone hold more than `keep`: select by hypervolume
        chosen = greedy_hypervolume_subset(pts[kept_idx], keep, ref, MAXIMIZE)
        kept_idx = [kept_idx[c] for c in chosen]
    kept = [tuple(paths[k]) for k in kept_idx]
    used = {(s, p[s]) for p in kept for s in range(supernet.space.num_slots)}
    pruned: list[PrunedOpRecord] = []
    freed = 0
    for s in range(supernet.space.num_slots):
        for op in supernet.live_ops(s):
            if (s, op) in used:
                continue
            users = [k for k in range(len(paths)) if paths[k][s] == op]
            hvi = (
                hypervolume_improvement(pts[kept_idx], pts[users], ref, MAXIMIZE) if users else 0.0
            )
            reason = (
                f"unused by the {len(kept)} kept paths (Pareto ranks "
                f"{min(ranks[kept_idx])}-{max(ranks[kept_idx])}); "
                f"{len(users)} sampled paths used it, HVI {hvi:.4g}"
            )
            freed += supernet.prune(s, op)
            pruned.append(PrunedOpRecord(s, op, supernet.space.slots[s].ops[op], hvi, reason))
    return PruneResult(kept, pruned, freed, [float(v) for v in ref])
