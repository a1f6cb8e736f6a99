"""Stages 2 and 3 of the paper: the Pareto-rank update of alpha (target pool, target ranks,
listwise ranking loss plus hinge loss) and the pruning of the ops the best paths do not use.
Functions of the `Trainer` they act on, called once per epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .costs import price_supernet
from .losses import alpha_loss
from .pareto import pareto_ranks
from .pruning import MAXIMIZE, prune_by_pareto
from .spaces import Path as ArchPath

if TYPE_CHECKING:
    from .train import Trainer


def target_accuracy(t: Trainer, paths: list[ArchPath], estimates: np.ndarray) -> np.ndarray:
    """Accuracies that define the target Pareto ranks: the benchmark table's if one was given,
    else the post-stage-1 targets of the target pool, else the run's estimator over `paths`
    (`Trainer.estimator_accuracy` of `estimates`)."""
    if t.truth is not None:
        return t.truth.lookup(t.space, paths, t.cfg.truth_column)
    if all(p in t.targets for p in paths):
        return np.array([t.targets[p] for p in paths])
    base = t.estimator_accuracy(paths, estimates)
    return np.array([t.targets.get(p, e) for p, e in zip(paths, base, strict=True)])


def ensure_target_pool(t: Trainer, epoch: int) -> None:
    """Estimate the target pool once, with the weights stage 1 left (DESIGN: target ranks come
    from the supernet's own estimates after strict fairness, which trains every path alike;
    later estimates favour the paths stage 2 trains and would feed back into alpha)."""
    if t.truth is not None or t.targets or not t.cfg.target_pool:
        return
    rng, _ = t._rng(epoch, 4)
    pool = t.sample_paths(rng, t.cfg.target_pool)
    acc = t.evaluate(pool, epoch, f"target pool: estimating {len(pool)} paths")
    target = t.estimator_accuracy(pool, acc)
    t.targets = {p: float(a) for p, a in zip(pool, target, strict=True)}
    t.log.append(
        {
            "event": "target_pool",
            "epoch": epoch,
            "paths": len(pool),
            "acc_mean": float(acc.mean()),
            "acc_max": float(acc.max()),
            **t._proxy_record(),
        }
    )


def sample_targets(t: Trainer, rng: np.random.Generator) -> list[ArchPath]:
    """n paths for an alpha update: from the live part of the target pool when it has at least
    two, else fresh samples of the supernet."""
    live = [p for p in t.targets if t._is_live(p)]
    if len(live) >= 2:
        take = rng.choice(len(live), min(t.cfg.samples, len(live)), replace=False)
        return [live[int(k)] for k in sorted(take)]
    return t.sample_paths(rng, t.cfg.samples)


def known_targets(t: Trainer, fresh: list[ArchPath]) -> list[ArchPath]:
    """`fresh` and every earlier live path whose target is known: the whole live target pool,
    or (with a benchmark table) every path sampled so far. Ranking them together gives alpha a
    listwise target over many paths instead of a new small list each epoch."""
    earlier = t.targets if t.targets else t.evaluated
    seen = dict.fromkeys(fresh)
    seen |= dict.fromkeys(p for p in earlier if t._is_live(p))
    return list(seen)


def predicted_front(t: Trainer) -> list[ArchPath]:
    """alpha's predicted front: the top-N (`top_n`) live paths with a known target by P_s, the
    paths stage 2 trains with `pareto_w_paths="front"`; empty if none is known."""
    paths = known_targets(t, [])
    if not paths:
        return []
    with torch.no_grad():
        scores = t.supernet.path_scores(paths).cpu().numpy()
    order = np.argsort(-scores, kind="stable")[: min(t.cfg.top_n, len(paths))]
    return [paths[int(k)] for k in order]


def update_alpha(t: Trainer, epoch: int) -> dict[str, Any]:
    """One Pareto-rank update of alpha: estimate the sampled paths, rank them (with the known
    targets when `alpha_history`) by target accuracy and cost, and take `alpha_steps` steps of
    the ranking loss plus the hinge loss. Returns the epoch record's fields."""
    ensure_target_pool(t, epoch)
    rng, _ = t._rng(epoch, 3)
    paths = sample_targets(t, rng)
    est = t.evaluate(paths, epoch, f"epoch {epoch + 1}: estimating {len(paths)} paths")
    sampled = len(paths)
    if t.cfg.alpha_history:
        paths = known_targets(t, paths)
        est = np.array([t.evaluated.get(p, t.targets.get(p, 0.0)) for p in paths])
    cost = t.cost.many(paths)
    ranks = pareto_ranks(np.column_stack([target_accuracy(t, paths, est), cost]), MAXIMIZE)
    top_n = min(t.cfg.top_n, len(paths))
    rank_losses, hinge_losses = [], []
    for step in range(t.cfg.alpha_steps):
        t.opt_a.zero_grad(set_to_none=True)
        loss, l_rank, l_hinge = alpha_loss(
            t.supernet,
            paths,
            ranks,
            t.cfg.rank_temperature,
            t.cfg.hinge_weight,
            top_n,
        )
        t._check_finite(loss, epoch, step, "the alpha loss")
        loss.backward()
        t.opt_a.step()
        with torch.no_grad():  # pruned ops and padding keep alpha 0 (masked anyway)
            t.supernet.alpha.masked_fill_(~t.supernet.op_mask, 0.0)
        rank_losses.append(l_rank.item())
        hinge_losses.append(l_hinge.item())
    return {
        "rank_loss": rank_losses[-1],
        "rank_loss_first": rank_losses[0],
        "hinge_loss": hinge_losses[-1],
        "sampled": sampled,
        "ranked": len(paths),
        "acc_mean": float(est.mean()),
        "acc_max": float(est.max()),
        "front_size": int((ranks == 1).sum()),
        **t._proxy_record(),
    }


def prune(t: Trainer, epoch: int) -> dict[str, Any]:
    """Stage 3 on the paths estimated so far that are still live: ops none of the best paths
    uses go, the weight optimizer is rebuilt over what is left and the supernet priced again."""
    paths = [p for p in (t.targets or t.evaluated) if t._is_live(p)]
    est = np.array([t.evaluated[p] for p in paths])
    points = np.column_stack([target_accuracy(t, paths, est), t.cost.many(paths)])
    params_before = sum(p.numel() for p in t.supernet.weight_parameters())
    result = prune_by_pareto(t.supernet, paths, points, t.cfg.samples)
    t._rebuild_weight_optimizer()
    t.cost = price_supernet(t.supernet, t.cost_model)
    for r in result.pruned:
        t.log.append(
            {
                "event": "pruned",
                "epoch": epoch,
                "slot": r.slot,
                "op": r.op,
                "op_name": r.op_name,
                "hvi": r.hvi,
                "reason": r.reason,
            }
        )
    return {
        "pruned_ops": len(result.pruned),
        "freed_bytes": result.freed_bytes,
        "params_before": params_before,
        "params_after": sum(p.numel() for p in t.supernet.weight_parameters()),
        "kept_paths": len(result.kept),
    }
