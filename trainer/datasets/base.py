"""Names every part of the data package shares: sizes, the default subset's place, what a
data set spec may be, and the error a data set that cannot be used raises."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import PRPError

IMAGE_SIZE = 32  # pixels, height and width, when none is asked for: the CIFAR-sized spaces'
# An image of another size is resized to image_size / CROP_FRACTION on its shorter side, then
# center-cropped: the standard ImageNet evaluation transform (256 -> 224).
CROP_FRACTION = 0.875
STATS_IMAGES = 512  # train images a streamed source's mean and std are measured on
# Where a compressed archive is inflated once for random access (gzip has none): disk, not memory.
CACHE_ENV = "PRP_DATA_CACHE"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".webp", ".tif", ".tiff")
DEFAULT_NAME = "default"
DEFAULT_RESOURCE = "data/cifar10_subset.npz"
# The package's folder is trainer/datasets/; the subset lies in trainer/data/.
DEFAULT_SUBSET_PATH = Path(__file__).resolve().parent.parent / DEFAULT_RESOURCE
CIFAR10_BATCHES = "cifar-10-batches-py"
TEST_SHARE = 6  # class-folder trees without a test split give 1/6 of each class to test

SPEC_HELP = (
    "give 'default' (the embedded CIFAR-10 subset), a cifar-10-batches-py folder, a folder of "
    "class sub-folders (<class>/<image>, or train/<class>/<image> and test/<class>/<image>), a "
    ".tar/.tar.gz of such a folder, or an .npz made by `python -m prp.trainer.datasets "
    "make-default`"
)


def cache_dir() -> Path:
    """Where the data package writes what it derives from a source: `$PRP_DATA_CACHE`, else
    ~/.cache/prp-nas (never the source's own folder)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prp-nas"


class DatasetError(PRPError, ValueError):
    """A data set that cannot be found, read or used as given."""


@dataclass(frozen=True)
class BadImage:
    """An image of a source that cannot be used: its `name` there and why (`reason`)."""

    name: str
    reason: str


class BadImageError(DatasetError):
    """One image that cannot be decoded: `name` in its source, and why (`reason`)."""

    def __init__(self, message: str, name: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.name, self.reason = name, reason
