"""Accuracy estimators of a run: what the trainer ranks paths by (`TrainConfig.estimator`),
each registered once in `ESTIMATORS` under the name `prp-train --estimator`, the run's config
and the bench use.

- `weights`: the shared-weight estimate (top-1 % on the held-out split, BN recalibrated).
- `weights+free`: the shared-weight estimate combined with free proxies (params, synflow and
  NASWOT on freshly initialised weights, `proxies.free_scores`) by rank aggregation, then mapped
  back onto the supernet's own accuracy values (`calibrated_accuracy`).
- `weights+all-free`: the same with every free proxy (`FREE_COMBINATIONS["all-free"]`: size,
  synflow, NASWOT, AZ-NAS's four scores, ZiCo, jacov) in place of the three.
- `weights+alpha+all-free`: `weights+all-free` with one more member, `alpha`: each path's score
  P_s under the run's op scores alpha (`Supernet.path_scores`), which the Pareto-rank stage's
  listwise loss trains to order paths by Pareto rank. PRP runs only (alpha is theirs).

`prp-eval` and the bench report each estimator under the same name (`evaluate.estimator_scores`
builds the `weights+free` row with `combined_members`), so the ranking a run trains and searches
with is the ranking the evaluation measures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..registry import Registry
from ..stats import log_rank_aggregate

# The free proxies the combinations aggregate: AZ-NAS-style, one size proxy (params), one
# gradient proxy (synflow), one activation proxy (NASWOT); each computed at initialisation.
# The estimator `weights+free` adds the shared weights to these.
FREE_COMBINATION = ("params", "synflow", "naswot")
# AZ-NAS as its paper defines it: expressivity, progressivity, trainability and complexity
# (FLOPs; here the MACs of the op tracing).
AZ_NAS_COMBINATION = ("expressivity", "progressivity", "trainability", "macs")
# Free combinations prp-eval and the bench report (log-rank sums, `stats.log_rank_aggregate`):
# `free` (the run's members), `az-nas`, and `all-free`, every free baseline of
# `proxies.FREE_BASELINES` (size, synflow, NASWOT, AZ-NAS's four, ZiCo, jacov).
FREE_COMBINATIONS: dict[str, tuple[str, ...]] = {
    "free": FREE_COMBINATION,
    "az-nas": AZ_NAS_COMBINATION,
    "all-free": (
        "params",
        "macs",
        "synflow",
        "naswot",
        "expressivity",
        "progressivity",
        "trainability",
        "zico",
        "jacov",
    ),
}


# The shared weights aggregated with a free combination: estimator name -> its free members.
# prp-eval pairs each with its free part alone (`FREE_PART`) to ask whether the weights add
# information to it.
# A member that is not a free proxy: the path score P_s of the run's alpha (higher = better
# Pareto rank), which only a PRP run has.
ALPHA = "alpha"
WEIGHTS_AND_FREE = "weights+free"
WEIGHTS_AND_ALL_FREE = "weights+all-free"
WEIGHTS_ALPHA_AND_ALL_FREE = "weights+alpha+all-free"
WEIGHTED_COMBINATIONS: dict[str, tuple[str, ...]] = {
    WEIGHTS_AND_FREE: FREE_COMBINATION,
    WEIGHTS_AND_ALL_FREE: FREE_COMBINATIONS["all-free"],
    WEIGHTS_ALPHA_AND_ALL_FREE: (ALPHA, *FREE_COMBINATIONS["all-free"]),
}
FREE_PART = {
    WEIGHTS_AND_FREE: "free",
    WEIGHTS_AND_ALL_FREE: "all-free",
    WEIGHTS_ALPHA_AND_ALL_FREE: "all-free",
}
# ... and each with alpha among its members with the same combination without alpha, to ask
# whether the Pareto-rank stage's alpha adds information to it (issue 31, point 4).
WITHOUT_ALPHA_PART = {WEIGHTS_ALPHA_AND_ALL_FREE: WEIGHTS_AND_ALL_FREE}


# How an evaluation names a combination it computed without the members of a proxy that
# cannot score the space (`evaluate.estimator_scores`): `all-free w/o az-nas`.
WITHOUT = " w/o "


def combination_of(row: str) -> str:
    """The registered combination an evaluation row is (`all-free` for `all-free w/o az-nas`)."""
    return row.split(WITHOUT)[0]


def combined_members(
    weights_acc: np.ndarray | Sequence[float],
    free: Mapping[str, np.ndarray | Sequence[float]],
    members: Sequence[str] = FREE_COMBINATION,
) -> list[np.ndarray]:
    """The scores a weighted combination aggregates, in order: the shared-weight estimate, then
    each of its free `members` (default: `weights+free`'s) taken from `free`."""
    return [np.asarray(weights_acc, dtype=float)] + [
        np.asarray(free[m], dtype=float) for m in members
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


@dataclass(frozen=True)
class Estimator:
    """One way a run ranks paths."""

    name: str
    meaning: str  # what a front entry's `accuracy` is under this estimator (front.json)
    members: tuple[str, ...] = ()  # what it aggregates with the shared weights

    @property
    def free_members(self) -> tuple[str, ...]:
        """Its free proxies (the members other than `alpha`)."""
        return tuple(m for m in self.members if m != ALPHA)

    @property
    def uses_free(self) -> bool:
        return bool(self.free_members)

    @property
    def uses_alpha(self) -> bool:
        return ALPHA in self.members

    def accuracy(
        self, estimates: np.ndarray, members: Callable[[], Mapping[str, np.ndarray]]
    ) -> np.ndarray:
        """The accuracy paths are ranked by, from their shared-weight `estimates` and, where
        this estimator aggregates more, the scores of its `members` (free proxies, alpha's
        P_s) that `members()` returns for the same paths."""
        if not self.members:
            return np.asarray(estimates, dtype=float)
        return calibrated_accuracy(estimates, combined_members(estimates, members(), self.members))


ESTIMATORS: Registry[Estimator] = Registry("estimator")
WEIGHTS_MEANING = "top-1 % on the held-out validation split, shared weights, BN recalibrated"


@ESTIMATORS.register("weights", doc="shared-weight estimates")
def _weights() -> Estimator:
    return Estimator("weights", WEIGHTS_MEANING)


@ESTIMATORS.register(
    WEIGHTS_AND_FREE, doc="their log-rank aggregate with params, synflow and NASWOT"
)
def _weights_and_free() -> Estimator:
    return Estimator(
        WEIGHTS_AND_FREE,
        "the shared-weight estimates (weights_accuracy) reassigned by rank: the k-th best path "
        "by the log-rank aggregate of shared weights, params, synflow and NASWOT gets the k-th "
        "highest shared-weight estimate of the paths evaluated",
        WEIGHTED_COMBINATIONS[WEIGHTS_AND_FREE],
    )


@ESTIMATORS.register(
    WEIGHTS_AND_ALL_FREE,
    doc="their log-rank aggregate with every free proxy (size, synflow, NASWOT, AZ-NAS's four "
    "scores, ZiCo, jacov)",
)
def _weights_and_all_free() -> Estimator:
    return Estimator(
        WEIGHTS_AND_ALL_FREE,
        "the shared-weight estimates (weights_accuracy) reassigned by rank: the k-th best path "
        "by the log-rank aggregate of shared weights and every free proxy gets the k-th highest "
        "shared-weight estimate of the paths evaluated",
        WEIGHTED_COMBINATIONS[WEIGHTS_AND_ALL_FREE],
    )


@ESTIMATORS.register(
    WEIGHTS_ALPHA_AND_ALL_FREE,
    doc="weights+all-free with alpha's path score P_s as one more member (PRP runs)",
)
def _weights_alpha_and_all_free() -> Estimator:
    return Estimator(
        WEIGHTS_ALPHA_AND_ALL_FREE,
        "the shared-weight estimates (weights_accuracy) reassigned by rank: the k-th best path "
        "by the log-rank aggregate of shared weights, alpha's path score P_s and every free "
        "proxy gets the k-th highest shared-weight estimate of the paths evaluated",
        WEIGHTED_COMBINATIONS[WEIGHTS_ALPHA_AND_ALL_FREE],
    )


def get_estimator(name: str) -> Estimator:
    """The registered estimator `name` (an unknown name lists the registered ones)."""
    return ESTIMATORS.create(name)
