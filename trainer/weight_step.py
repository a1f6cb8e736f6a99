"""The weight step: one update of the shared weights W on one batch, with the gradients of one
or several paths accumulated (FairNAS), and across processes the split of a global batch, the
one gradient all-reduce per update and the per-epoch broadcast of rank 0's alpha and buffers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from . import distributed
from .spaces import Path as ArchPath
from .supernet import Supernet


def step_paths(
    supernet: Supernet, mode: str, front: Sequence[ArchPath], rng: np.random.Generator
) -> list[ArchPath]:
    """The paths one W step trains: a strict-fair group of m paths (`mode` "fair"), one uniform
    path ("uniform"), one drawn from alpha's predicted `front` where there is one, else the
    highest-alpha path."""
    if mode == "fair":
        return supernet.sample_fair(rng)
    if mode == "uniform":
        return [supernet.sample_uniform(rng)]
    if front:
        return [front[int(rng.integers(len(front)))]]
    return [supernet.argmax_path()]


def shard(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float] | None:
    """This rank's part of a global batch, images rank, rank + world, ... (the split of
    DistributedSampler, and of `loader.RankBatches` for streamed data), and its share of the
    batch's images; the whole batch for one process. None, on every rank alike, when the batch
    is too small to give each rank the two images BatchNorm needs in training mode (a short
    last batch)."""
    world = distributed.world_size()
    if world == 1:
        return x, y, 1.0
    n = len(y)
    if n < 2 * world:
        return None
    mine = distributed.shard_indices(n)
    return x[mine.start :: world], y[mine.start :: world], len(mine) / n


def weight_step(
    supernet: Supernet,
    opt_w: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    paths: list[ArchPath],
    share: float,
    grad_clip: float,
    check_finite: Callable[[Tensor], None],
) -> float:
    """One W update on this rank's images `x`, `y`, `share` of the global batch's images;
    returns the mean over `paths` of the whole batch's loss.

    With several processes every rank runs the same paths on its part of the batch; each
    rank's loss is weighted by its share of the images, so the sum over the ranks, made by one
    all-reduce of the flattened gradients (and the losses) per update, is the gradient of the
    whole batch's mean loss. BatchNorm keeps per-rank batch statistics, as the SPOS and FairNAS
    implementations do: SyncBatchNorm needs a GPU, and with weight sharing it would add one
    collective per BN layer per path. `check_finite` sees each path's whole-batch loss."""
    opt_w.zero_grad(set_to_none=True)
    losses = []
    for path in paths:
        loss = nn.functional.cross_entropy(supernet(x, path), y)
        (loss if share == 1.0 else loss * share).backward()
        losses.append(loss.detach() * share)
    totals = all_reduce_gradients(supernet, torch.stack(losses))
    for loss in totals:  # the whole batch's losses, the same on every rank
        check_finite(loss)
    nn.utils.clip_grad_norm_(supernet.weight_parameters(), grad_clip)
    opt_w.step()
    return sum(totals.tolist()) / len(paths)  # one host sync per update, not per path


def all_reduce_gradients(supernet: Supernet, losses: Tensor) -> Tensor:
    """The weight gradients and `losses` summed over the ranks in one all-reduce."""
    if distributed.world_size() == 1:
        return losses
    grads = [p.grad for p in supernet.weight_parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads] + [losses.to(grads[0].dtype)])
    distributed.all_reduce_sum(flat)
    k = 0
    for g in grads:
        g.copy_(flat[k : k + g.numel()].view_as(g))
        k += g.numel()
    return flat[k:]


def sync_state(supernet: Supernet) -> None:
    """Rank 0's alpha and BatchNorm buffers on every rank, before a checkpoint. The weights are
    equal already (same all-reduced gradients); alpha is computed alike on every rank from the
    same gathered estimates (tested), and the broadcast keeps it so where GPU kernels are not
    deterministic; BN running statistics differ per rank (per-rank BN)."""
    if distributed.world_size() == 1:
        return
    buffers = [b for name, b in supernet.named_buffers() if name != "op_mask"]
    distributed.broadcast([supernet.alpha, *buffers])


def weight_optimizer(
    supernet: Supernet,
    lr: float,
    momentum: float,
    weight_decay: float,
    carry_from: torch.optim.Optimizer | None = None,
) -> torch.optim.SGD:
    """SGD (Nesterov) over the supernet's live weights. With `carry_from`, the optimizer these
    weights trained with before a pruning: the surviving weights keep their momentum."""
    opt = torch.optim.SGD(
        supernet.weight_parameters(),
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=True,
    )
    if carry_from is not None:
        for p in opt.param_groups[0]["params"]:
            if p in carry_from.state:
                opt.state[p] = carry_from.state[p]
    return opt
