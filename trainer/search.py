"""Search result: the Pareto front of evaluated paths and the named picks along it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from .pareto import greedy_hypervolume_subset, hypervolume, pareto_ranks
from .pruning import MAXIMIZE, reference_point
from .spaces import Path, SearchSpace


@dataclass(frozen=True)
class PathMetrics:
    """One evaluated path: what it is, how accurate, how costly."""

    path: Path
    ops: tuple[str, ...]
    key: str  # the space's encoding (NB201 arch_str for nb201)
    accuracy: float  # estimated top-1 % the ranking used (`TrainConfig.estimator`)
    cost: float
    pareto_rank: int
    # The raw shared-weight estimate (top-1 %, BN recalibrated, held-out split); equal to
    # `accuracy` with estimator "weights", its source value with a calibrated estimator.
    weights_accuracy: float | None = None

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["path"] = list(self.path)
        d["ops"] = list(self.ops)
        if self.weights_accuracy is None:
            del d["weights_accuracy"]
        return d


def knee_index(points: np.ndarray) -> int:
    """The front point farthest from the line joining its two extremes (objectives normalised).

    `points` are (accuracy, cost) of non-dominated paths. This is the "optimal" pick: the best
    trade-off where accuracy stops being cheap to buy.
    """
    pts = np.asarray(points, dtype=float)
    if len(pts) <= 2:
        return int(np.argmax(pts[:, 0]))
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    norm = (pts - lo) / np.where(hi > lo, hi - lo, 1.0)
    norm[:, 1] = 1.0 - norm[:, 1]  # both objectives "higher is better" in [0, 1]
    a, b = norm[np.argmax(pts[:, 0])], norm[np.argmin(pts[:, 1])]
    direction = (b - a) / (np.linalg.norm(b - a) or 1.0)
    rel = norm - a
    dist = np.abs(rel[:, 0] * direction[1] - rel[:, 1] * direction[0])
    return int(np.argmax(dist))


def build_front(
    space: SearchSpace,
    paths: Sequence[Path],
    accuracy: np.ndarray,
    cost: np.ndarray,
    weights_accuracy: np.ndarray | None = None,
) -> list[PathMetrics]:
    """Every evaluated path with its Pareto rank over (`accuracy`, `cost`), sorted by rank then
    accuracy (descending); `weights_accuracy`, when given, is kept beside each (the raw
    shared-weight estimate behind a calibrated `accuracy`)."""
    pts = np.column_stack([accuracy, cost])
    ranks = pareto_ranks(pts, MAXIMIZE)
    raw: list[float | None] = (
        [None] * len(paths) if weights_accuracy is None else [float(w) for w in weights_accuracy]
    )
    items = [
        PathMetrics(tuple(p), space.op_names(p), space.encode(p), float(a), float(c), int(r), w)
        for p, a, c, r, w in zip(paths, accuracy, cost, ranks, raw, strict=True)
    ]
    return sorted(items, key=lambda m: (m.pareto_rank, -m.accuracy, m.cost))


def select_along_front(
    front: Sequence[PathMetrics], s: int, min_accuracy: float | None = None
) -> list[tuple[str, PathMetrics]]:
    """Up to `s` paths: from the front (rank 1) best accuracy, best cost, the knee ("optimal"),
    then by hypervolume gain; where rank 1 has fewer than `s` paths, the next ranks fill in,
    each by hypervolume gain, labelled `rank-k`. Paths at or below `min_accuracy` (chance level,
    say: an NB201 cell whose output edges are all `none`) are never picked; ranks are recomputed
    without them."""
    if min_accuracy is not None:
        kept = [m for m in front if m.accuracy > min_accuracy]
        if kept:
            pts = np.array([[m.accuracy, m.cost] for m in kept])
            new_ranks = pareto_ranks(pts, MAXIMIZE)
            front = [replace(m, pareto_rank=int(r)) for m, r in zip(kept, new_ranks, strict=True)]
    picks: list[tuple[str, PathMetrics]] = []
    ranks = sorted({m.pareto_rank for m in front})
    for rank in ranks:
        members = [m for m in front if m.pareto_rank == rank]
        pts = np.array([[m.accuracy, m.cost] for m in members])
        order: list[tuple[str, int]] = []
        if rank == ranks[0]:
            order += [
                ("best-accuracy", int(np.argmax(pts[:, 0]))),
                ("best-cost", int(np.argmin(pts[:, 1]))),
                ("optimal", knee_index(pts)),
            ]
        label = "hv" if rank == ranks[0] else f"rank-{rank}"
        ref = reference_point(np.array([[m.accuracy, m.cost] for m in front]))
        order += [(label, i) for i in greedy_hypervolume_subset(pts, len(pts), ref, MAXIMIZE)]
        for label_i, i in order:
            if len(picks) >= s:
                return picks
            if all(members[i].path != m.path for _, m in picks):
                picks.append((label_i, members[i]))
    return picks


def chance_accuracy(num_classes: int) -> float:
    """Accuracy (%) a path must beat to be worth picking: chance plus one point."""
    return 100.0 / num_classes + 1.0


def front_hypervolume(front: Sequence[PathMetrics], ref: Sequence[float] | np.ndarray) -> float:
    pts = np.array([[m.accuracy, m.cost] for m in front if m.pareto_rank == 1])
    return hypervolume(pts, ref, MAXIMIZE) if len(pts) else 0.0
