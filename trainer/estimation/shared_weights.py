"""Accuracy estimates of paths with the shared weights (BatchNorm recalibrated per path),
sharded across processes and gathered."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch

from .. import distributed
from ..config import TrainConfig
from ..datasets import batches
from ..device_data import Tensors
from ..spaces import Path as ArchPath
from ..supernet import Supernet

Progress = Callable[[str, int, int], None]  # (task, done, total)


@torch.no_grad()
def estimate_accuracy(
    supernet: Supernet,
    path: ArchPath,
    tensors: Tensors,
    cfg: TrainConfig,
    generator: torch.Generator,
) -> float:
    """Top-1 % of `path` on the first `cfg.eval_images` held-out images, with the shared
    weights and BatchNorm recalibrated for the path on `cfg.bn_batches` training batches."""
    calib = itertools.islice(
        (
            x
            for x, _ in batches(
                tensors.train_x,
                tensors.train_y,
                cfg.batch_size,
                shuffle=True,
                augment=False,
                generator=generator,
            )
        ),
        cfg.bn_batches,
    )
    supernet.recalibrate_bn(path, calib)
    was_training = supernet.training
    supernet.eval()
    n = min(cfg.eval_images, len(tensors.val_y))
    correct = 0
    for i in range(0, n, 256):
        j = min(i + 256, n)
        pred = supernet(tensors.val_x[i:j], path).argmax(dim=1)
        correct += int((pred == tensors.val_y[i:j]).sum())
    supernet.train(was_training)
    return 100.0 * correct / n


def estimate_sharded(
    paths: list[ArchPath],
    estimate: Callable[[ArchPath], float],
    progress: Callable[[int], None],
) -> np.ndarray:
    """`estimate` of every path of `paths`. With several processes each rank estimates its
    share of them (`distributed.shard_indices`) and the shares are gathered onto every rank:
    the values are those one process computes when each estimate draws its randomness from its
    own generator, whichever rank runs it. `progress(done)` after each estimate."""
    mine = distributed.shard_indices(len(paths))
    local = np.empty(len(mine))
    for k, i in enumerate(mine):
        local[k] = estimate(paths[i])
        progress(min(i + 1, len(paths)))
    return distributed.gather_shards(local, len(paths))
