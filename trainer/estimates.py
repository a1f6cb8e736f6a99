"""Accuracy estimates of paths with the shared weights (BatchNorm recalibrated per path),
sharded across processes and gathered, and the free proxy scores of the "weights+free"
estimator, each path's computed once."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import distributed
from .config import TrainConfig
from .datasets import DataSplits, StreamSplits, batches
from .estimators import FREE_COMBINATION
from .proxies import free_scores, proxy_images
from .spaces import Path as ArchPath
from .spaces import SearchSpace
from .supernet import Supernet
from .tensors import Tensors

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


class FreeProxies:
    """The free proxies of `FREE_COMBINATION` of each path scored so far (`scores`: path ->
    name -> score), computed once per path on a fresh supernet seeded with `seed`. Not
    checkpointed: the same seed and data give the same scores, whatever the batch of paths
    they were scored in."""

    def __init__(
        self,
        space: SearchSpace,
        data: DataSplits | StreamSplits,
        seed: int,
        device: torch.device,
        progress: Progress,
    ) -> None:
        self.space, self.data, self.seed, self.device = space, data, seed, device
        self.progress = progress
        self.scores: dict[ArchPath, dict[str, float]] = {}
        self._images: Tensor | None = None
        self._seconds, self._paths = 0.0, 0  # since `take_record` last read them

    def of(self, paths: list[ArchPath]) -> dict[str, np.ndarray]:
        """Name -> one score per path of `paths`, computing only those of paths not scored
        before, in one batch."""
        missing = list(dict.fromkeys(p for p in paths if p not in self.scores))
        if missing:
            start = time.perf_counter()
            if self._images is None:
                self._images = proxy_images(self.data, self.seed)
            # Sharded over the ranks like the estimates: a path's scores do not depend on the
            # other paths scored with it.
            mine = [missing[i] for i in distributed.shard_indices(len(missing))]
            scores: dict[str, np.ndarray] = {m: np.empty(0) for m in FREE_COMBINATION}
            if mine:
                scores, _ = free_scores(
                    self.space,
                    mine,
                    self._images,
                    self.seed,
                    self.device,
                    lambda name, done, total: self.progress(
                        f"free proxies: {name} of {total} paths", done, total
                    ),
                )
            if distributed.world_size() > 1:
                scores = {
                    m: distributed.gather_shards(scores[m], len(missing)) for m in FREE_COMBINATION
                }
            for j, p in enumerate(missing):
                self.scores[p] = {m: float(scores[m][j]) for m in FREE_COMBINATION}
            self._seconds += time.perf_counter() - start
            self._paths += len(missing)
        return {m: np.array([self.scores[p][m] for p in paths]) for m in FREE_COMBINATION}

    def take_record(self) -> dict[str, Any]:
        """Seconds spent scoring (and paths scored) since the last call, for the log."""
        out = {"proxy_seconds": self._seconds, "proxy_paths": self._paths}
        self._seconds, self._paths = 0.0, 0
        return out
