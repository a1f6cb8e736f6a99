"""Train, validation and test splits: the class-balanced, seeded held-out validation split
(and the test split carved off a tree that has none), channel statistics, and `load_dataset`,
which decodes every image of the splits into memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bad_images import refusal
from .base import IMAGE_SIZE, TEST_SHARE, BadImage, DatasetError
from .listing import Listing, Source
from .sources import resolve_source


@dataclass(frozen=True, eq=False)
class ImageSet:
    """One split in memory: `images` uint8 [N, S, S, 3] (HWC, RGB; S = 32 unless another
    `image_size` was asked for), `labels` int64 [N] into `classes`.

    `names` identify each image in its source (a file's relative path, or a CIFAR batch's file
    name); `index` is its position in the source split it was read from (the source's train
    listing for both train and val), so two splits overlap exactly when their indices do.
    The arrays are read-only.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str
    names: tuple[str, ...]
    index: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        shape = self.images.shape
        if (
            self.images.dtype != np.uint8
            or len(shape) != 4
            or shape[0] != n
            or shape[1] != shape[2]
            or shape[3] != 3
        ):
            raise ValueError(
                f"images must be uint8 [{n}, S, S, 3], got {self.images.dtype} {list(shape)}"
            )
        if self.labels.dtype != np.int64 or len(self.names) != n or self.index.shape != (n,):
            raise ValueError("labels (int64), names and index must have one entry per image")
        if n and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < len(self.classes):
            raise ValueError(f"labels must lie in [0, {len(self.classes)})")
        for array in (self.images, self.labels, self.index):
            array.flags.writeable = False

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> np.ndarray:
        """Number of images of each class, in `classes` order."""
        return np.bincount(self.labels, minlength=len(self.classes))


@dataclass(frozen=True, eq=False)
class DataSplits:
    """Train, validation and test splits, with per-channel statistics of the train split.

    `mean` and `std` are per RGB channel on the [0, 1] scale (population std over all pixels).
    """

    train: ImageSet
    val: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str
    # Images that would not decode, left out of the splits (`skip_bad_images`).
    left_out: tuple[BadImage, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def first_per_class(labels: np.ndarray, limit: int | None) -> np.ndarray:
    """Positions of the first `limit` images of each class (all when None), in listing order."""
    if limit is None:
        return np.arange(len(labels))
    keep = [np.flatnonzero(labels == k)[:limit] for k in np.unique(labels)]
    return np.sort(np.concatenate(keep)) if keep else np.arange(0)


def _hold_out(
    labels: np.ndarray, fraction: float, pick: Callable[[np.ndarray, int], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Splits positions per class: `pick(positions, n)` chooses n to hold out, where n is the
    rounded fraction of the class, at least one when the class has two or more images."""
    held = []
    for k in np.unique(labels):
        positions = np.flatnonzero(labels == k)
        n = round(len(positions) * fraction)
        if fraction > 0 and len(positions) >= 2:
            n = min(max(n, 1), len(positions) - 1)
        if n:
            held.append(pick(positions, n))
    out = np.sort(np.concatenate(held)) if held else np.arange(0)
    return np.setdiff1d(np.arange(len(labels)), out), out


def _round_robin(labels: np.ndarray) -> np.ndarray:
    """An order of `labels` that takes one image of each class in turn (listing order within a
    class), so every prefix is class-balanced: accuracy estimates read the first `eval_images`
    validation images, which in class order would cover only the first classes."""
    within = np.empty(len(labels), dtype=np.int64)
    for k in np.unique(labels):
        positions = np.flatnonzero(labels == k)
        within[positions] = np.arange(len(positions))
    return np.lexsort((labels, within))


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of uint8 HWC images, on the [0, 1] scale."""
    if len(images) == 0:
        raise DatasetError("cannot compute channel statistics of an empty split")
    total = np.zeros(3, dtype=np.int64)
    squares = np.zeros(3, dtype=np.int64)
    for start in range(0, len(images), 4096):  # chunks: an int64 copy of all CIFAR is 1.2 GB
        chunk = images[start : start + 4096].reshape(-1, 3).astype(np.int64)
        total += chunk.sum(axis=0)
        squares += (chunk * chunk).sum(axis=0)
    count = images.shape[0] * images.shape[1] * images.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return tuple(float(m) for m in mean / 255.0), tuple(float(s) for s in std / 255.0)


@dataclass(frozen=True)
class SplitPlan:
    """Rows of each split in its listing: train and val in the source's train listing (val in
    class round-robin order), test in `test_listing`."""

    source: Source
    train_rows: np.ndarray
    val_rows: np.ndarray
    test_listing: Listing
    test_rows: np.ndarray


def plan_split(
    source: Source, val_fraction: float, seed: int, limit_per_class: int | None
) -> SplitPlan:
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if limit_per_class is not None and limit_per_class < 1:
        raise DatasetError(f"limit_per_class must be at least 1 (or None), got {limit_per_class}")
    chosen = first_per_class(source.train.labels, limit_per_class)
    if source.test is None:
        # The last sixth of each class by file name: deterministic, and the same files whatever
        # the seed, so test scores stay comparable across runs.
        rest, test_pos = _hold_out(
            source.train.labels[chosen], 1.0 / TEST_SHARE, lambda p, n: p[len(p) - n :]
        )
        test_listing, test_rows = source.train, chosen[test_pos]
        chosen = chosen[rest]
    else:
        test_listing = source.test
        test_rows = first_per_class(source.test.labels, limit_per_class)

    rng = np.random.default_rng(seed)
    train_pos, val_pos = _hold_out(
        source.train.labels[chosen], val_fraction, lambda p, n: np.sort(rng.permutation(p)[:n])
    )
    val_pos = val_pos[_round_robin(source.train.labels[chosen[val_pos]])]
    return SplitPlan(source, chosen[train_pos], chosen[val_pos], test_listing, test_rows)


def check_image_size(image_size: int) -> int:
    if not isinstance(image_size, int) or image_size < 8:
        raise DatasetError(f"image_size must be a whole number of pixels >= 8, got {image_size}")
    return image_size


def load_dataset(
    spec: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    limit_per_class: int | None = None,
    image_size: int = IMAGE_SIZE,
    skip_bad_images: bool = False,
) -> DataSplits:
    """Reads a data set (see the module docstring for `spec`) into train/val/test splits, every
    image decoded once at `image_size` x `image_size` into memory.

    `val_fraction` of each class of the source's train images is held out as the validation
    split, chosen by `seed`. `limit_per_class` reads at most that many images of each class from
    each of the source's splits (the first by file name or batch order), before the validation
    split is held out, so every split holds at most that many per class: for quick runs and tests.

    Images that do not decode and whose header fails the check (`Listing.header_problem`) are
    all named in one `BadImagesError`, or with `skip_bad_images` left out of their split; those
    whose header passes (a JPEG cut short) are left out either way, as training skips them when
    it streams the same source. Both are listed in `DataSplits.left_out`.
    """
    size = check_image_size(image_size)
    plan = plan_split(resolve_source(spec), val_fraction, seed, limit_per_class)
    source = plan.source
    bad: list[BadImage] = []  # whose header fails too: refused unless skip_bad_images
    undecoded: list[BadImage] = []  # whose header passes: left out, as training skips them

    def image_set(listing: Listing, rows: np.ndarray, split: str) -> ImageSet:
        pixels, usable, failed = listing.read_usable(rows, size)
        for row, image in zip(rows[~usable], failed, strict=True):
            (undecoded if listing.header_problem(int(row)) is None else bad).append(image)
        rows = rows[usable]
        return ImageSet(
            images=pixels,
            labels=listing.labels[rows].copy(),
            classes=source.classes,
            source=f"{source.origin} [{split}]",
            names=tuple(listing.names[r] for r in rows),
            index=rows.astype(np.int64),
        )

    train = image_set(source.train, plan.train_rows, "train")
    val = image_set(source.train, plan.val_rows, "val")
    test = image_set(plan.test_listing, plan.test_rows, "test")
    if bad and not skip_bad_images:
        raise refusal(source.origin, bad)
    mean, std = channel_stats(train.images)
    return DataSplits(
        train=train,
        val=val,
        test=test,
        classes=source.classes,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        source=source.origin,
        left_out=tuple(bad + undecoded),
    )
