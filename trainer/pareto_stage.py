"""Stages 2 and 3 of the paper on explicit values: the target accuracies that define the Pareto
ranks, the paths each alpha update ranks, the alpha-fitting loop (listwise ranking loss plus
hinge loss) and the pruning of the ops the best paths do not use. The `Trainer` calls them once
per epoch with its state."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from .losses import alpha_loss
from .nb201_table import NB201Table
from .pruning import PruneResult, prune_by_pareto
from .spaces import Path as ArchPath
from .spaces import SearchSpace
from .supernet import Supernet

# Accuracy a run ranks paths by, given their shared-weight estimates (the run's estimator).
RankBy = Callable[[list[ArchPath], np.ndarray], np.ndarray]


def sample_paths(supernet: Supernet, rng: np.random.Generator, n: int) -> list[ArchPath]:
    """n distinct paths of the (possibly pruned) supernet; all of them if there are fewer."""
    if supernet.count_paths() <= n:
        return supernet.space.all_paths(supernet.live())
    seen: dict[ArchPath, None] = {}
    while len(seen) < n:
        seen[supernet.sample_uniform(rng)] = None
    return list(seen)


def target_accuracy(
    paths: list[ArchPath],
    estimates: np.ndarray,
    targets: Mapping[ArchPath, float],
    truth: NB201Table | None,
    truth_column: str,
    rank_by: RankBy,
    space: SearchSpace,
) -> np.ndarray:
    """Accuracies that define the target Pareto ranks: the benchmark table's if one was given,
    else the post-stage-1 `targets` of the target pool, else the run's estimator over `paths`
    (`rank_by` of `estimates`)."""
    if truth is not None:
        return truth.lookup(space, paths, truth_column)
    if all(p in targets for p in paths):
        return np.array([targets[p] for p in paths])
    base = rank_by(paths, estimates)
    return np.array([targets.get(p, e) for p, e in zip(paths, base, strict=True)])


def sample_targets(
    supernet: Supernet, targets: Mapping[ArchPath, float], rng: np.random.Generator, n: int
) -> list[ArchPath]:
    """n paths for an alpha update: from the live part of the target pool when it has at least
    two, else fresh samples of the supernet."""
    live = [p for p in targets if supernet.is_live(p)]
    if len(live) >= 2:
        take = rng.choice(len(live), min(n, len(live)), replace=False)
        return [live[int(k)] for k in sorted(take)]
    return sample_paths(supernet, rng, n)


def known_targets(
    supernet: Supernet,
    fresh: list[ArchPath],
    targets: Mapping[ArchPath, float],
    evaluated: Mapping[ArchPath, float],
) -> list[ArchPath]:
    """`fresh` and every earlier live path whose target is known: the whole live target pool,
    or (with a benchmark table) every path sampled so far. Ranking them together gives alpha a
    listwise target over many paths instead of a new small list each epoch."""
    earlier = targets if targets else evaluated
    seen = dict.fromkeys(fresh)
    seen |= dict.fromkeys(p for p in earlier if supernet.is_live(p))
    return list(seen)


def predicted_front(
    supernet: Supernet,
    targets: Mapping[ArchPath, float],
    evaluated: Mapping[ArchPath, float],
    top_n: int,
) -> list[ArchPath]:
    """alpha's predicted front: the `top_n` live paths with a known target by P_s, the paths
    stage 2 trains with `pareto_w_paths="front"`; empty if none is known."""
    paths = known_targets(supernet, [], targets, evaluated)
    if not paths:
        return []
    scores = supernet.path_score_array(paths)
    order = np.argsort(-scores, kind="stable")[: min(top_n, len(paths))]
    return [paths[int(k)] for k in order]


def fit_alpha(
    supernet: Supernet,
    optimizer: torch.optim.Optimizer,
    paths: list[ArchPath],
    ranks: np.ndarray,
    steps: int,
    temperature: float,
    hinge_weight: float,
    top_n: int,
    check_finite: Callable[[torch.Tensor, int], None],
) -> tuple[list[float], list[float]]:
    """`steps` steps of `optimizer` on alpha, each on the listwise ranking loss of `paths` at
    Pareto `ranks` plus the hinge loss over their `top_n`; returns the ranking and hinge losses
    of each step. `check_finite(loss, step)` raises for a loss that is not finite."""
    top_n = min(top_n, len(paths))
    rank_losses, hinge_losses = [], []
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss, l_rank, l_hinge = alpha_loss(supernet, paths, ranks, temperature, hinge_weight, top_n)
        check_finite(loss, step)
        loss.backward()
        optimizer.step()
        with torch.no_grad():  # pruned ops and padding keep alpha 0 (masked anyway)
            supernet.alpha.masked_fill_(~supernet.op_mask, 0.0)
        rank_losses.append(l_rank.item())
        hinge_losses.append(l_hinge.item())
    return rank_losses, hinge_losses


def prune(
    supernet: Supernet, paths: list[ArchPath], points: np.ndarray, keep: int
) -> tuple[PruneResult, dict[str, int]]:
    """Stage 3: ops none of the best `keep` of `paths` (at `points`: accuracy, cost) uses go.
    Returns the result and the epoch record's fields."""
    params_before = sum(p.numel() for p in supernet.weight_parameters())
    result = prune_by_pareto(supernet, paths, points, keep)
    return result, {
        "pruned_ops": len(result.pruned),
        "freed_bytes": result.freed_bytes,
        "params_before": params_before,
        "params_after": sum(p.numel() for p in supernet.weight_parameters()),
        "kept_paths": len(result.kept),
    }
