"""In-memory images as tensors: normalisation, batch augmentation on the compute device,
and batching of whole tensors."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import DatasetError


def to_tensor(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 [N, H, W, 3] images -> float32 [N, 3, H, W], scaled to [0, 1] and normalised per
    channel with `mean` and `std` (on the [0, 1] scale, as `DataSplits` gives them)."""
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise DatasetError(
            f"to_tensor takes uint8 [N, H, W, 3] images, got {images.dtype} {list(images.shape)}"
        )
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise DatasetError(f"mean and std need 3 values with std > 0, got {mean} and {std}")
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32))
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.div_(255.0).sub_(m).div_(s)


def _random_device(x: Tensor, generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else x.device


def augment_batch(x: Tensor, generator: torch.Generator | None = None, padding: int = 4) -> Tensor:
    """Standard CIFAR augmentation on a whole [B, C, H, W] batch: a random HxW crop of the image
    padded by `padding` zeros on every side (zero is the mean colour once normalised), then a
    horizontal flip with probability 1/2; one gather, no per-image loop."""
    b, _, h, w = x.shape
    device = _random_device(x, generator)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=device).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=device).to(x.device)
    flip = (torch.rand(b, generator=generator, device=device) < 0.5).to(x.device)
    across = torch.arange(w, device=x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = dx[:, None] + torch.where(flip[:, None], across.flip(0), across)  # [B, W]
    padded = F.pad(x, (padding, padding, padding, padding))
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices around a slice put the indexed dims first: [B, H, W, C].
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    augment: bool,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yields (x, y) batches of `batch_size` (the last one smaller unless `drop_last`), in a
    random order drawn from `generator` when `shuffle`, augmented with `augment_batch` when
    `augment`. Without either, the batches are exact slices of `x` and `y`."""
    n = x.shape[0]
    if y.shape[0] != n:
        raise DatasetError(f"x has {n} images but y has {y.shape[0]} labels")
    if batch_size < 1:
        raise DatasetError(f"batch_size must be at least 1, got {batch_size}")
    order = None
    if shuffle:
        order = torch.randperm(n, generator=generator, device=_random_device(x, generator))
        order = order.to(x.device)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        if drop_last and stop - start < batch_size:
            break
        if order is None:
            xb, yb = x[start:stop], y[start:stop]
        else:
            idx = order[start:stop]
            xb, yb = x[idx], y[idx.to(y.device)]
        if augment:
            xb = augment_batch(xb, generator)
        yield xb, yb
