"""The weight step: one update of the shared weights W on one batch, with the gradients of one
or several paths accumulated (FairNAS), and across processes the split of a global batch, the
one gradient all-reduce per update and the per-epoch broadcast of rank 0's alpha and buffers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from . import distributed
from .profiling import PathTable, trace_ops
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
    path_weights: Sequence[float] | None = None,
) -> float:
    """One W update on this rank's images `x`, `y`, `share` of the global batch's images;
    returns the mean over `paths` of the whole batch's loss. `path_weights` scale each path's
    loss in the update (`ComplexityLR`), not in what is returned.

    With several processes every rank runs the same paths on its part of the batch; each
    rank's loss is weighted by its share of the images, so the sum over the ranks, made by one
    all-reduce of the flattened gradients (and the losses) per update, is the gradient of the
    whole batch's mean loss. BatchNorm keeps per-rank batch statistics, as the SPOS and FairNAS
    implementations do: SyncBatchNorm needs a GPU, and with weight sharing it would add one
    collective per BN layer per path. `check_finite` sees each path's whole-batch loss."""
    opt_w.zero_grad(set_to_none=True)
    losses = []
    for k, path in enumerate(paths):
        loss = nn.functional.cross_entropy(supernet(x, path), y)
        scale = share * (1.0 if path_weights is None else path_weights[k])
        (loss if scale == 1.0 else loss * scale).backward()
        losses.append(loss.detach() * share)
    totals = all_reduce_gradients(supernet, torch.stack(losses))
    for loss in totals:  # the whole batch's losses, the same on every rank
        check_finite(loss)
    nn.utils.clip_grad_norm_(supernet.weight_parameters(), grad_clip)
    opt_w.step()
    return sum(totals.tolist()) / len(paths)  # one host sync per update, not per path


@dataclass(frozen=True)
class ComplexityLR:
    """A per-path learning rate by complexity: our reading of DYNAS's complexity-aware lr
    schedule (CaLR; Jeon et al., CVPR 2025, "Subnet-Aware Dynamic Supernet Training"), which
    decays the lr less for more complex subnets, because weight-sharing training favours the
    simple ones. The run's cosine factor `decay` (1 -> 0) applies in full to the least complex
    paths; the most complex decay only to `strength` x the starting lr; a path's complexity
    is its live parameter count, spanning 0 to 1 between the 5th and 95th percentiles of 2,048
    uniform paths of the space (the same for every seed). Applied as a weight on each path's
    loss in the W step: with plain SGD exactly that path's own lr; with momentum the paths
    share the buffers (DYNAS's separate momentum per group of subnets is not done)."""

    sizes: PathTable
    low: float
    high: float
    strength: float

    @classmethod
    def of(cls, supernet: Supernet, strength: float) -> ComplexityLR:
        sizes = trace_ops(supernet).live_sizes()[0]
        rng = np.random.default_rng(0)
        spread = sizes.many([supernet.sample_uniform(rng) for _ in range(2048)])
        low, high = np.quantile(spread, [0.05, 0.95])
        return cls(sizes, float(low), float(high), strength)

    def weights(self, paths: Sequence[ArchPath], decay: float) -> list[float]:
        """Each path's lr over the run's, at cosine factor `decay` (> 0) of the run's lr."""
        r = np.clip((self.sizes.many(paths) - self.low) / max(self.high - self.low, 1e-12), 0, 1)
        floor = self.strength * r
        return [float(w) for w in (floor + (1 - floor) * decay) / decay]


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
