"""Training batches streamed through `torch.utils.data`: a seeded sampler, a DataLoader, and
batch augmentation on the compute device.

Images are decoded one by one with Pillow in the DataLoader's workers (`datasets.ImageDataset`);
each batch is then moved to the compute device (from pinned memory on CUDA), normalised and
augmented there as one tensor with kornia:

- CIFAR recipe (image side <= `CIFAR_RECIPE_MAX_SIDE`): a random crop of the image padded by 4
  pixels, then a horizontal flip with probability 1/2;
- ImageNet recipe (larger): RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3) of the image
  resized to side round(S / 0.875) and center-cropped square by the worker, then a flip;
- evaluation: resize + center crop (`datasets.listing._fit`), no augmentation.

Why kornia: it is pure PyTorch (no compiled extension tied to one torch build), batched, and runs
on the GPU beside the model. torchvision, the usual choice, does not import beside the pinned CPU
build of torch 2.13.0 here (PyPI's matching torch 2.14.1 + torchvision 0.29.1 pair is a 5.5 GB
CUDA build, and executorch 1.5.1 is pinned to its torch).

Reproducibility: the sampler's order comes from (seed, epoch) and each batch's augmentation
from (seed, epoch, step), never from worker processes or the global RNG, so a run gives the same
batches whatever the number of workers, and a run resumed at epoch k does what the whole run did.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Sampler

from .datasets import CROP_FRACTION, UNDECODED, BadImage, DatasetError, ImageDataset

CIFAR_RECIPE_MAX_SIDE = 64  # pixels: up to this, pad-crop + flip; above, RandomResizedCrop + flip
CIFAR_PADDING = 4


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def recipe(image_size: int) -> str:
    """`cifar` (pad-crop + flip) or `imagenet` (RandomResizedCrop + flip), by image side."""
    return "cifar" if image_size <= CIFAR_RECIPE_MAX_SIDE else "imagenet"


def train_side(image_size: int) -> int | None:
    """Side of the square a worker delivers a training image at: the ImageNet recipe crops
    from round(S / 0.875) (256 for 224); None for the CIFAR one (the evaluation transform)."""
    return round(image_size / CROP_FRACTION) if recipe(image_size) == "imagenet" else None


def default_workers(device: torch.device) -> int:
    """DataLoader worker processes when none are asked for. CPU: 0, decoding in the training
    process: there the step and the decode share the same cores (2 here), so a worker only adds
    a process, a copy of the listing and a queue; the CIFAR-sized images of the CPU runs decode
    in tens of microseconds. CUDA: the host cores are free while the GPU steps, so up to 8
    workers, leaving one core to the training process."""
    if device.type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


class EpochSampler(Sampler[int]):
    """Indices of a data set in an order drawn from (seed, epoch): call `set_epoch` before each
    epoch. Unlike DistributedSampler, whose order comes from seed + epoch, (seed 0, epoch 1) and
    (seed 1, epoch 0) do not give the same order."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(_seed(self.seed, self.epoch, 0))
        return iter(torch.randperm(self.n, generator=g).tolist())


class RankBatches(Sampler[list[int]]):
    """One rank's part of each global batch of an epoch: the epoch's order (`EpochSampler`) cut
    into global batches of `batch_size`, of which rank r takes the images at positions r,
    r + world_size, ... (the split `weight_step.shard` makes of a whole batch), so each rank reads
    and decodes only its own images. A global batch that cannot give every rank the two images
    BatchNorm needs in training mode (a short last batch) is left out on every rank alike."""

    def __init__(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        self.order = EpochSampler(n, seed)
        self.n, self.batch_size, self.rank, self.world_size = n, batch_size, rank, world_size
        sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
        # Only the last batch can be short, so the batches kept are the first ones.
        self.global_sizes = tuple(b for b in sizes if b >= 2 * world_size)

    def set_epoch(self, epoch: int) -> None:
        self.order.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.global_sizes)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.order)
        for i in range(0, self.n, self.batch_size):
            batch = order[i : i + self.batch_size]
            if len(batch) >= 2 * self.world_size:
                yield batch[self.rank :: self.world_size]


class Augment:
    """uint8 [B, 3, H, W] batch on the compute device -> float32 [B, 3, S, S], scaled to [0, 1],
    normalised by `mean` and `std`, then augmented with the recipe of `image_size` when
    `augment` (normalising first makes the CIFAR padding the mean colour, as `augment_batch`)."""

    def __init__(
        self,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = True,
    ) -> None:
        import kornia.augmentation as K

        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1)
        size = (image_size, image_size)
        self.ops: nn.Sequential | None = None
        if augment and recipe(image_size) == "cifar":
            self.ops = nn.Sequential(
                K.RandomCrop(size, padding=CIFAR_PADDING), K.RandomHorizontalFlip()
            )
        elif augment:
            self.ops = nn.Sequential(
                K.RandomResizedCrop(size, scale=(0.08, 1.0)), K.RandomHorizontalFlip()
            )

    def __call__(self, x: Tensor, seed: int, of: tuple[int, slice] | None = None) -> Tensor:
        """`x` augmented as the batch drawn from `seed`. `of` (n, positions): `x` holds only
        the images at `positions` of a batch of n (one rank's share), and each of them gets
        the crop and flip it gets when the whole batch is augmented."""
        out = x.float().div_(255.0)
        out = out.sub_(self.mean.to(out.device)).div_(self.std.to(out.device))
        if self.ops is None:
            return out
        # kornia draws its parameters from torch's global generator (on the CPU): fork it,
        # so the batch's crops depend on `seed` alone and nothing else's randomness moves.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if of is None:
                result: Tensor = self.ops(out)
            else:
                # The whole batch's parameters, drawn in the order the ops draw them, then
                # this share's rows: the same draws as augmenting the whole batch.
                n, positions = of
                result = out
                for op in self.ops:  # kornia augmentations: forward_parameters(batch shape)
                    draw = cast(Any, op).forward_parameters
                    params = draw(torch.Size((n, *result.shape[1:])))
                    result = op(result, params=_rows(params, n, positions, result.shape))
        return result.contiguous()


def _rows(
    params: dict[str, Tensor], n: int, positions: slice, shape: torch.Size
) -> dict[str, Tensor]:
    """kornia parameters drawn for a batch of n, cut to the images at `positions`: per-image
    tensors keep those rows; the recorded input shape becomes the share's."""
    out = {}
    for key, value in params.items():
        if key == "forward_input_shape":
            value = value.clone()
            value[0] = shape[0]
        elif isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == n:
            value = value[positions]
        out[key] = value
    return out


def _one_line(e: DatasetError) -> DatasetError:
    """A DataLoader worker's error, re-raised by the DataLoader with the worker's traceback in
    its message, back to the one line the worker raised."""
    text = str(e).strip().splitlines()
    last = text[-1] if text else ""
    return DatasetError(last.split("DatasetError: ", 1)[-1])


class TrainLoader:
    """The training split as batches, one epoch at a time: `epoch(k)` yields (x, y) on
    `device`, x float32 [B, 3, S, S] normalised and augmented, y int64 [B].

    `dataset` is the split at its evaluation transform; the loader asks it for the training
    transform of the recipe. With `world_size` > 1 each epoch's global batches of `batch_size`
    are shared across processes (`RankBatches`): rank `rank` reads, decodes and augments only
    its own images of each, `global_size(step)` is the whole batch's size. `workers` None:
    `default_workers(device)`. Memory is a few batches in flight (prefetch), whatever the size
    of the data set.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = True,
        workers: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        size = dataset.image_size
        self.dataset = dataset.with_train_side(train_side(size) if augment else None)
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.augment = Augment(size, mean, std, augment)
        self.batches = RankBatches(len(dataset), batch_size, seed, rank, world_size)
        self.workers = default_workers(device) if workers is None else workers
        self.skipped: list[BadImage] = []  # images of the last epoch that did not decode
        self.loader = DataLoader(
            self.dataset,
            batch_sampler=self.batches,
            num_workers=self.workers,
            pin_memory=device.type == "cuda",
            # Workers live for the whole run: forking them (and reopening an archive) each
            # epoch would cost more than a small epoch.
            persistent_workers=self.workers > 0,
        )

    @property
    def world_size(self) -> int:
        return self.batches.world_size

    def __len__(self) -> int:
        """Batches per epoch (a last batch that cannot give each process the two images
        BatchNorm needs is left out)."""
        return len(self.batches)

    def global_size(self, step: int) -> int:
        """Images of the whole global batch `step` of an epoch, over all processes."""
        return self.batches.global_sizes[step]

    def epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """This process's part of each batch of `epoch`, on the device, augmented.

        An image that does not decode is left out of its batch (after the batch is augmented,
        so every other image gets the crop and flip it gets anyway) and named in `skipped`,
        which lists this epoch's. The same images fail the same way on every pass, so a
        resumed run still does exactly what the whole run did. A process's part left with
        fewer than the two images BatchNorm needs keeps its blank images under several
        processes (every rank must step), and is yielded short for one (the trainer skips it).
        """
        self.batches.set_epoch(epoch)
        self.skipped = []
        rank, world = self.batches.rank, self.batches.world_size
        batches = iter(self.loader)
        positions = iter(self.batches)  # the same order the DataLoader's sampler gives
        step = 0
        while True:
            try:
                x, y = next(batches)
            except StopIteration:
                return
            except DatasetError as e:
                raise _one_line(e) from None
            rows = next(positions)
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            seed = _seed(self.seed, epoch, 0, step)
            of = None if world == 1 else (self.global_size(step), slice(rank, None, world))
            x = self.augment(x, seed, of)
            undecoded = (y == UNDECODED).cpu()
            if bool(undecoded.any()):
                x, y = self._without(x, y, undecoded, rows)
            yield x, y
            step += 1

    def _without(
        self, x: Tensor, y: Tensor, undecoded: Tensor, rows: list[int]
    ) -> tuple[Tensor, Tensor]:
        """The batch without its undecoded images, which join `skipped`."""
        for k in torch.nonzero(undecoded).flatten().tolist():
            bad = self.dataset.bad_image(rows[k])
            name = self.dataset.names_at([rows[k]])[0]
            self.skipped.append(bad or BadImage(name, "did not decode in a worker"))
        keep = ~undecoded
        if self.world_size == 1 or int(keep.sum()) >= 2:
            index = torch.nonzero(keep).flatten().to(x.device)
            return x.index_select(0, index), y.index_select(0, index)
        labels = torch.as_tensor(self.dataset.labels[np.asarray(rows)], device=y.device)
        return x, labels


def load_tensor(
    dataset: ImageDataset,
    positions: Sequence[int] | np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
) -> tuple[Tensor, np.ndarray, list[BadImage]]:
    """Items at `positions` of `dataset` at the evaluation transform, normalised: float32
    [M, 3, S, S] on the CPU (a bounded pool: estimate and calibration images), the positions
    they are, and the images left out because they do not decode."""
    positions = np.asarray(positions, dtype=np.int64)
    pixels, usable, bad = dataset.decode_usable(positions)
    x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))
    return Augment(dataset.image_size, mean, std, augment=False)(x, 0), positions[usable], bad
