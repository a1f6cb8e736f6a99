"""Image data for the trainer: where images come from, how they split, and how they are read.

Sources (`load_dataset(spec)` / `open_dataset(spec)`):

- `"default"` or `None`: a CIFAR-10 subset shipped in the package (`data/cifar10_subset.npz`,
  5,000 train + 1,000 test images, the original JPEG bytes), so training works with no download;
- CIFAR-10's python format: a `cifar-10-batches-py` folder, or the folder that holds one;
- a folder of class sub-folders in the ImageNet layout: `root/<class>/*` (then the last sixth of
  each class, by file name, is the test split), or `root/train/<class>/*` + `root/test/<class>/*`;
- a `.tar`/`.tar.gz` of such a folder: its members are indexed once (name, offset, size) and an
  image's bytes are read on demand, never the whole archive into memory;
- an `.npz` written by `python -m prp.trainer.datasets make-default`.

Images of any size are brought to the requested square resolution (`image_size`, the search
space's input size): an image already that size is kept as it is, any other is resized so its
shorter side is `image_size / 0.875` and center-cropped (the usual evaluation transform).

Two ways to read a source, behind the same split logic:

- `load_dataset` decodes every image once into uint8 arrays (`DataSplits` of `ImageSet`s). It is
  what small 32 px data wants: the embedded subset decodes in a second, and batching whole
  tensors (`to_tensor`, `batches`) avoids a per-image Python step that would dominate a small
  supernet's step time (`bench/scaling.py --only loader` measures both).
- `open_dataset` lists the images and decodes nothing up front (`StreamSplits` of
  `ImageDataset`s, `torch.utils.data` datasets that decode one image per item with Pillow, in
  the DataLoader's workers; see `loader.py`): for folders and archives of any size and
  resolution, memory does not grow with the data set.

Bad images: a streamed source has every image's header checked when it is opened (Pillow
opens it without decoding pixels), an in-memory one is decoded whole; either way all the images
that fail are named in one `BadImagesError` (a file lists them when there are many), or with
`skip_bad_images` left out of the splits (`left_out`). An image that passes the check but does
not decode when training reads it is skipped and counted there (`loader.TrainLoader`).

The validation split is always held out of the source's train images (stratified, seeded), so the
test split is never used for search decisions.

Modules, one concern each: `base` (shared names and `DatasetError`), `bad_images` (the
refusal naming them all, a run's record of those skipped), `listing` (readers, a split's
listing, decoding one image, header checks), `trees` (class-folder trees as folders or tar
archives), `sources` (what a spec names: the embedded subset, .npz files, CIFAR-10 batches, trees),
`splits` (held-out splits, `load_dataset`), `streaming` (`open_dataset`, `ImageDataset`),
`batching` (normalisation, augmentation, batches) and `subset` (`build_default_subset` and the
command line).
"""

from .bad_images import BadImagesError
from .base import (
    CACHE_ENV,
    CIFAR10_BATCHES,
    CROP_FRACTION,
    DEFAULT_NAME,
    DEFAULT_RESOURCE,
    DEFAULT_SUBSET_PATH,
    IMAGE_SIZE,
    IMAGE_SUFFIXES,
    SPEC_HELP,
    STATS_IMAGES,
    TEST_SHARE,
    BadImage,
    BadImageError,
    DatasetError,
)
from .batching import augment_batch, batches, to_tensor
from .splits import DataSplits, ImageSet, channel_stats, load_dataset
from .streaming import UNDECODED, ImageDataset, StreamSplits, open_dataset, streams_by_default
from .subset import build_default_subset, main

__all__ = [
    "CACHE_ENV",
    "CIFAR10_BATCHES",
    "CROP_FRACTION",
    "DEFAULT_NAME",
    "DEFAULT_RESOURCE",
    "DEFAULT_SUBSET_PATH",
    "IMAGE_SIZE",
    "IMAGE_SUFFIXES",
    "SPEC_HELP",
    "STATS_IMAGES",
    "TEST_SHARE",
    "UNDECODED",
    "BadImage",
    "BadImageError",
    "BadImagesError",
    "DataSplits",
    "DatasetError",
    "ImageDataset",
    "ImageSet",
    "StreamSplits",
    "augment_batch",
    "batches",
    "build_default_subset",
    "channel_stats",
    "load_dataset",
    "main",
    "open_dataset",
    "streams_by_default",
    "to_tensor",
]
