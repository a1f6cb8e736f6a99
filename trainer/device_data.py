"""What training reads, on the compute device: the in-memory splits as tensors, or a streamed
training split (a DataLoader) beside bounded pools of calibration and estimate images."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from . import distributed
from .config import TrainConfig
from .datasets import BadImage, DataSplits, StreamSplits, batches, to_tensor
from .errors import PRPError
from .loader import TrainLoader, load_tensor


@dataclass
class Tensors:
    """What training and estimates read, normalised, on the compute device.

    In memory (`DataSplits`): the whole train and val splits; training batches are slices of
    train_x (`batches`). Streamed (`StreamSplits`): training batches come from `loader` (a
    DataLoader; under torchrun each process reads only its part of every batch); train_x is a
    fixed pool of `bn_batches * batch_size` train images drawn by the seed, for BatchNorm
    recalibration, and val_x the first `eval_images` validation images, the ones an estimate
    reads: memory grows with those settings, not with the data set. An image of those pools
    that does not decode is left out of its pool and listed in `left_out`.
    """

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    loader: TrainLoader | None = None
    left_out: list[BadImage] = field(default_factory=list)

    @classmethod
    def of(
        cls, data: DataSplits | StreamSplits, device: torch.device, cfg: TrainConfig | None = None
    ) -> Tensors:
        """`data`'s splits, normalised by its mean and std, on `device` (`cfg` is needed, and
        only read, for streamed data)."""
        if isinstance(data, DataSplits):
            return cls(
                to_tensor(data.train.images, data.mean, data.std).to(device),
                torch.tensor(data.train.labels).to(device),
                to_tensor(data.val.images, data.mean, data.std).to(device),
                torch.tensor(data.val.labels).to(device),
            )
        if cfg is None:
            raise ValueError("Tensors.of needs the TrainConfig for streamed data")
        n = len(data.train)
        pool = np.sort(
            np.random.default_rng([cfg.seed, 5]).permutation(n)[: cfg.bn_batches * cfg.batch_size]
        )
        val = np.arange(min(cfg.eval_images, len(data.val)))
        train_x, pool, train_bad = load_tensor(data.train, pool, data.mean, data.std)
        val_x, val, val_bad = load_tensor(data.val, val, data.mean, data.std)
        return cls(
            train_x.to(device),
            torch.from_numpy(data.train.labels[pool].copy()).to(device),
            val_x.to(device),
            torch.from_numpy(data.val.labels[val].copy()).to(device),
            TrainLoader(
                data.train,
                batch_size=cfg.batch_size,
                seed=cfg.seed,
                device=device,
                mean=data.mean,
                std=data.std,
                augment=cfg.augment,
                rank=distributed.rank(),
                world_size=distributed.world_size(),
            ),
            train_bad + val_bad,
        )

    def epoch_batches(
        self, epoch: int, batch_size: int, augment: bool, generator: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The training batches of `epoch`: the streamed loader's (seeded by the run's seed and
        `epoch`), or the in-memory images in the order and augmentation `generator` draws."""
        if self.loader is not None:
            return self.loader.epoch(epoch)
        return batches(
            self.train_x,
            self.train_y,
            batch_size,
            shuffle=True,
            augment=augment,
            generator=generator,
        )

    def batches_per_epoch(self, batch_size: int) -> int:
        if self.loader is not None:
            return len(self.loader)
        return math.ceil(len(self.train_y) / batch_size)


def torch_device(name: str) -> torch.device:
    """The torch device `name` (cpu or cuda), refused when it asks for a GPU this machine lacks."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PRPError("--compute-device cuda was asked for but no CUDA GPU is available")
    return distributed.local_device(device)  # under torchrun: this rank's GPU
