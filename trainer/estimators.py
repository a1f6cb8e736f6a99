"""Accuracy estimators of a run: what the trainer ranks paths by (`TrainConfig.estimator`).

- `weights`: the shared-weight estimate (top-1 % on the held-out split, BN recalibrated).
- `weights+free`: the shared-weight estimate combined with free proxies (params, synflow and
  NASWOT on freshly initialised weights, `proxies.free_scores`) by rank aggregation, then mapped
  back onto the supernet's own accuracy values (`calibrated_accuracy`).

The combination is the `supernet+free` row of `prp-eval` (`evaluate.estimator_scores` builds
it with `combined_members`), so the ranking a run trains and searches with is the ranking the
evaluation measures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .stats import log_rank_aggregate

# The free proxies the combinations aggregate: AZ-NAS-style, one size proxy (params), one
# gradient proxy (synflow), one activation proxy (NASWOT); each computed at initialisation.
FREE_COMBINATION = ("params", "synflow", "naswot")


def combined_members(
    weights_acc: np.ndarray | Sequence[float], free: Mapping[str, np.ndarray | Sequence[float]]
) -> list[np.ndarray]:
    """The scores `weights+free` (prp-eval's `supernet+free`) aggregates, in order: the
    shared-weight estimate, then each of `FREE_COMBINATION` taken from `free`."""
    return [np.asarray(weights_acc, dtype=float)] + [
        np.asarray(free[m], dtype=float) for m in FREE_COMBINATION
    ]


def calibrated_accuracy(
    raw_acc: np.ndarray | Sequence[float], members: Sequence[np.ndarray | Sequence[float]]
) -> np.ndarray:
    """Rank-calibrated accuracy: the k-th best path by the log-rank aggregate of `members`
    (`stats.log_rank_aggregate`; each member higher = better, one score per path) gets the
    k-th highest value of `raw_acc` (the shared-weight estimates of the same paths).

    Why: rank aggregation of the supernet's estimate with free proxies (AZ-NAS, Lee & Ham,
    CVPR 2024; VKDNW_agg, Tybl & Neumann, CVPR 2025) ranks architectures better than any member
    alone (../shared/notes/ranking-at-small-scale.md, sections 1 and 4), but its score is a sum
    of log ranks, in no unit. Everything downstream reads an accuracy in percent: Pareto ranks,
    pruning's hypervolume, alpha's targets, front.json, the export's manifest and the battery
    ladder. A monotone map of the combined score onto the supernet's own values gives each of
    them the combined ranking while keeping percentage units and the supernet's accuracy
    distribution (the same multiset of values, so the mean, the best and chance-level cut-offs
    stay meaningful).

    Ties in the combined score are broken by the raw estimate (higher first), then by position
    (earlier first): stable and deterministic for the same inputs in the same order.
    """
    raw = np.asarray(raw_acc, dtype=float)
    if raw.ndim != 1 or len(raw) == 0:
        raise ValueError(f"calibrated_accuracy needs a non-empty 1-D raw_acc, got {raw.shape}")
    score = log_rank_aggregate(members)
    if score.shape != raw.shape:
        raise ValueError(
            f"calibrated_accuracy: members score {score.shape[0]} paths, raw_acc {raw.shape[0]}"
        )
    # lexsort sorts by its last key first: best combined score, then best raw, then position.
    best_first = np.lexsort((np.arange(len(raw)), -raw, -score))
    out = np.empty_like(raw)
    out[best_first] = np.sort(raw)[::-1]
    return out
