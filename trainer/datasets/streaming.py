"""Splits read image by image through `torch.utils.data` (`open_dataset`): nothing is
decoded up front, so memory does not grow with the data set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .bad_images import refusal
from .base import CIFAR10_BATCHES, DEFAULT_NAME, IMAGE_SIZE, STATS_IMAGES, BadImage, BadImageError
from .listing import Listing
from .sources import resolve_source
from .splits import channel_stats, check_image_size, plan_split

# The label of an item that would not decode: `loader.TrainLoader` leaves it out of its batch.
UNDECODED = -1


class ImageDataset(Dataset[tuple[Tensor, int]]):
    """One split read image by image, a `torch.utils.data.Dataset`: item i is (uint8 tensor
    [3, S, S], label). Nothing is decoded until an item is asked for (in a DataLoader worker
    when there are workers); the object pickles small (a listing and its rows).

    `train_side` None: each item at `image_size` (the evaluation transform, `fit_image`). Otherwise
    each item is the square of that side the batch augmentation crops from (`loader.Augment`).
    `labels`, `names` and `index` mean what they mean on `ImageSet`.
    """

    def __init__(
        self,
        listing: Listing,
        rows: np.ndarray,
        classes: tuple[str, ...],
        source: str,
        image_size: int,
        train_side: int | None = None,
    ) -> None:
        self._listing = listing
        self.index = np.asarray(rows, dtype=np.int64)
        self.labels = listing.labels[self.index].copy()
        self.classes, self.source = classes, source
        self.image_size, self.train_side = image_size, train_side
        for array in (self.index, self.labels):
            array.flags.writeable = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._listing.names[r] for r in self.index)

    def names_at(self, positions: Sequence[int]) -> list[str]:
        """The names of the items at `positions` (without listing every name)."""
        return [self._listing.names[int(self.index[i])] for i in positions]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        """Item i; an image that does not decode (though its header passed the check) comes
        as blank pixels labelled `UNDECODED`, so a DataLoader worker never ends the run."""
        try:
            pixels = self._listing.image(int(self.index[i]), self.image_size, self.train_side)
        except BadImageError:
            side = self.train_side or self.image_size
            return torch.zeros((3, side, side), dtype=torch.uint8), UNDECODED
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))), int(
            self.labels[i]
        )

    def bad_image(self, i: int) -> BadImage | None:
        """Why item i does not decode, None when it does (decoded again to find out)."""
        try:
            self._listing.image(int(self.index[i]), self.image_size, self.train_side)
        except BadImageError as e:
            return BadImage(e.name, e.reason)
        return None

    def with_train_side(self, side: int | None) -> ImageDataset:
        """The same images, delivered at `side` for training (None: evaluation transform)."""
        return ImageDataset(
            self._listing, self.index, self.classes, self.source, self.image_size, side
        )

    def decode(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """Items at `positions`, evaluation transform, as uint8 [N, S, S, 3] (for small pools:
        statistics, calibration and evaluation images)."""
        return self._listing.read(
            self.index[np.asarray(positions, dtype=np.int64)], self.image_size
        )

    def decode_usable(
        self, positions: Sequence[int] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[BadImage]]:
        """`decode` of the items at `positions` that decode ([M, S, S, 3]), which of
        `positions` they are (bool [N]), and the ones that do not."""
        rows = self.index[np.asarray(positions, dtype=np.int64)]
        return self._listing.read_usable(rows, self.image_size)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))


@dataclass(frozen=True, eq=False)
class StreamSplits:
    """Train, validation and test splits of a source, listed but not decoded (`open_dataset`).

    `mean` and `std` are per RGB channel on the [0, 1] scale, measured on up to `STATS_IMAGES`
    train images spread evenly over the split (a full pass would read the whole data set).
    """

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str
    image_size: int
    # Images whose header failed the check, left out of the splits (`skip_bad_images`).
    left_out: tuple[BadImage, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def open_dataset(
    spec: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    limit_per_class: int | None = None,
    image_size: int = IMAGE_SIZE,
    skip_bad_images: bool = False,
) -> StreamSplits:
    """The splits `load_dataset` gives (the same images, labels and order), as `ImageDataset`s
    that decode on demand at `image_size`. A compressed archive is inflated once to the cache
    folder (`inflated_tar`): shuffled reads need random access, which gzip lacks.

    Every image of the splits has its header checked first (`Listing.check_headers`: no pixel
    is decoded); those that fail are all named in one `BadImagesError`, or with
    `skip_bad_images` left out of the splits and listed in `StreamSplits.left_out`."""
    size = check_image_size(image_size)
    plan = plan_split(resolve_source(spec, inflate=True), val_fraction, seed, limit_per_class)
    source = plan.source
    bad: list[BadImage] = []

    def checked(listing: Listing, rows: np.ndarray) -> np.ndarray:
        failed = listing.check_headers(rows)
        bad.extend(b for _, b in failed)
        return np.delete(rows, [k for k, _ in failed])

    rows = [
        checked(source.train, plan.train_rows),
        checked(source.train, plan.val_rows),
        checked(plan.test_listing, plan.test_rows),
    ]
    if bad and not skip_bad_images:
        raise refusal(source.origin, bad)

    def split(listing: Listing, rows: np.ndarray, name: str) -> ImageDataset:
        return ImageDataset(listing, rows, source.classes, f"{source.origin} [{name}]", size)

    train = split(source.train, rows[0], "train")
    sample = np.unique(np.linspace(0, len(train) - 1, min(len(train), STATS_IMAGES)).round())
    # An image that fails to decode here is left out of the statistics (and skipped, and
    # recorded, when training meets it).
    pixels, _, _ = train.decode_usable(sample.astype(np.int64))
    mean, std = channel_stats(pixels)
    return StreamSplits(
        train=train,
        val=split(source.train, rows[1], "val"),
        test=split(plan.test_listing, rows[2], "test"),
        classes=source.classes,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        source=source.origin,
        image_size=size,
        left_out=tuple(bad),
    )


def streams_by_default(spec: str | Path | None) -> bool:
    """Whether the trainer reads `spec` through the DataLoader (`open_dataset`) rather than
    decoding it into memory: folder trees and archives, whose size and resolution are open,
    stream; the embedded subset, .npz files and CIFAR-10 batches (small, 32 px) stay in memory,
    where whole-tensor batching is faster (`bench/scaling.py --only loader`)."""
    if spec is None or (isinstance(spec, str) and spec == DEFAULT_NAME):
        return False
    path = Path(spec).expanduser()
    if path.is_dir():
        return not (
            (path / "batches.meta").is_file() or (path / CIFAR10_BATCHES / "batches.meta").is_file()
        )
    return path.is_file() and path.suffix.lower() != ".npz"
