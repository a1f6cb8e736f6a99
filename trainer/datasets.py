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
  supernet's step time (bench/scaling_data.py measures both).
- `open_dataset` lists the images and decodes nothing up front (`StreamSplits` of
  `ImageDataset`s, `torch.utils.data` datasets that decode one image per item with Pillow, in
  the DataLoader's workers; see `loader.py`): for folders and archives of any size and
  resolution, memory does not grow with the data set.

The validation split is always held out of the source's train images (stratified, seeded), so the
test split is never used for search decisions.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import hashlib
import io
import lzma
import os
import pickle
import shutil
import sys
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from prp.runtime.files import atomic_path, write_atomic
from torch import Tensor
from torch.utils.data import Dataset

from .errors import PRPError

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
DEFAULT_SUBSET_PATH = Path(__file__).resolve().parent / DEFAULT_RESOURCE
CIFAR10_BATCHES = "cifar-10-batches-py"
TEST_SHARE = 6  # class-folder trees without a test split give 1/6 of each class to test

SPEC_HELP = (
    "give 'default' (the embedded CIFAR-10 subset), a cifar-10-batches-py folder, a folder of "
    "class sub-folders (<class>/<image>, or train/<class>/<image> and test/<class>/<image>), a "
    ".tar/.tar.gz of such a folder, or an .npz made by `python -m prp.trainer.datasets "
    "make-default`"
)


class DatasetError(PRPError, ValueError):
    """A data set that cannot be found, read or used as given."""


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

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# ---------------------------------------------------------------------------------------------
# Listing: what a source holds, before anything is decoded. Readers are small picklable objects
# (no closures), so a DataLoader worker can be handed one under any start method.


class _FileReader:
    """Image i of a listing is the file `root/names[i]`."""

    def __init__(self, root: Path, names: Sequence[str]) -> None:
        self.root, self.names = root, list(names)

    def __call__(self, i: int) -> bytes:
        try:
            return (self.root / self.names[i]).read_bytes()
        except OSError as e:
            raise DatasetError(f"cannot read image {self.root}/{self.names[i]}: {e}") from None


def _decompressor(path: Path) -> Callable[..., Any] | None:
    """How to open a compressed archive (gzip, bz2, xz), by its magic bytes; None: plain."""
    with path.open("rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open
    if magic.startswith(b"BZh"):
        return bz2.open
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open
    return None


class _TarReader:
    """Image i of a listing is the member at `spans[i]` = (offset of its data, size) in a tar.

    One seek and one read per image, through a handle each process opens for itself on first
    use (a DataLoader worker must not share its parent's file position). On a compressed
    archive a seek inflates from the last position (from the start when going back), so
    `open_dataset` inflates such an archive once to a plain tar (`_inflated`) and reads that.
    """

    def __init__(self, path: Path, names: Sequence[str], spans: np.ndarray) -> None:
        self.path, self.names, self.spans = path, list(names), spans
        self._handle: Any = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None, "_pid": -1}

    def __call__(self, i: int) -> bytes:
        offset, size = (int(v) for v in self.spans[i])
        try:
            if self._handle is None or self._pid != os.getpid():
                self._handle = (_decompressor(self.path) or open)(self.path, "rb")
                self._pid = os.getpid()
            self._handle.seek(offset)
            blob: bytes = self._handle.read(size)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise DatasetError(
                f"cannot read {self.names[i]} from archive {self.path} ({e}); check it is a "
                f"whole .tar or .tar.gz file"
            ) from None
        if len(blob) != size:
            raise DatasetError(
                f"archive {self.path} ends inside {self.names[i]}; it is truncated: copy it again"
            )
        return blob


class _BlobReader:
    """Image i is `blob[offsets[rows[i]]:offsets[rows[i] + 1]]` (the .npz format's JPEG bytes)."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> None:
        self.blob, self.offsets, self.rows = blob, offsets, rows

    def __call__(self, i: int) -> bytes:
        r = int(self.rows[i])
        return self.blob[self.offsets[r] : self.offsets[r + 1]].tobytes()


class _ArrayReader:
    """Image i is `images[i]`, already decoded (CIFAR-10's python batches are raw pixels)."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __call__(self, i: int) -> np.ndarray:
        return self.images[i]


_Reader = _FileReader | _TarReader | _BlobReader | _ArrayReader


@dataclass(frozen=True)
class _Listing:
    """One split of a source, listed in a fixed order; `reader(i)` gives image i's encoded bytes
    (or its pixels); `where` names the source in error messages."""

    names: list[str]
    labels: np.ndarray
    reader: _Reader
    where: str

    def image(self, i: int, size: int, train_side: int | None = None) -> np.ndarray:
        """Image i as uint8 [S, S, 3]: at `size` (see `_fit`), or for training at the square
        `train_side` the batch augmentation crops from."""
        return _fit(self.reader(i), self.names[i], self.where, size, train_side)

    def read(self, positions: np.ndarray, size: int) -> np.ndarray:
        """The images at `positions`, decoded at `size`: uint8 [N, size, size, 3]."""
        out = np.empty((len(positions), size, size, 3), dtype=np.uint8)
        order = np.arange(len(positions))
        if isinstance(self.reader, _TarReader):  # archive order: a compressed one never seeks back
            order = np.argsort(self.reader.spans[np.asarray(positions, dtype=np.int64), 0])
        for k in order:
            out[k] = self.image(int(positions[k]), size)
        return out


@dataclass(frozen=True)
class _Source:
    origin: str
    classes: tuple[str, ...]
    train: _Listing
    test: _Listing | None  # None: the source has no test split; carve one off the train listing


def _image_size(blob: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as image:
        return image.size


def _fit(
    data: bytes | np.ndarray, name: str, where: str, size: int, train_side: int | None = None
) -> np.ndarray:
    """Decodes one image (Pillow) to uint8 [S, S, 3] RGB. Evaluation (`train_side` None): an
    image already size x size is kept as it is; any other is resized to shorter side
    round(size / CROP_FRACTION) and center-cropped to size. Training: resized to shorter side
    `train_side` and center-cropped to a square of that side, for the batch augmentation."""
    from PIL import Image

    try:
        if isinstance(data, np.ndarray):
            if data.shape == (size, size, 3) and train_side in (None, size):
                return data
            image = Image.fromarray(data)
        else:
            image = Image.open(io.BytesIO(data))
        with image:
            side = train_side or round(size / CROP_FRACTION)
            crop = train_side or size
            if image.size == (size, size) and train_side in (None, size):
                side = crop = size
            # A JPEG decodes at 1/2, 1/4 or 1/8 scale when that still covers `side`: large
            # photos (ImageNet) then cost a fraction of a full decode.
            image.draft("RGB", (side, side))
            rgb = image if image.mode == "RGB" else image.convert("RGB")
            w, h = rgb.size
            if min(w, h) != side:
                scale = side / min(w, h)
                w, h = max(side, round(w * scale)), max(side, round(h * scale))
                rgb = rgb.resize((w, h), Image.Resampling.BILINEAR)
            left, top = (w - crop) // 2, (h - crop) // 2
            if (w, h) != (crop, crop):
                rgb = rgb.crop((left, top, left + crop, top + crop))
            return np.asarray(rgb, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DatasetError(
            f"cannot decode image {where}/{name} ({e}); replace or remove that file"
        ) from None


def _is_hidden(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def _image_paths(paths: Sequence[str]) -> list[PurePosixPath]:
    """The image files among relative paths, skipping hidden files and folders."""
    found = []
    for path in paths:
        p = PurePosixPath(path)
        parts = [q for q in p.parts if q not in ("", ".")]
        if not parts or any(_is_hidden(q) for q in parts):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES:
            found.append(PurePosixPath(*parts))
    return found


def _arrange(
    paths: Sequence[str], where: str
) -> tuple[tuple[str, ...], list[tuple[str, int]], list[tuple[str, int]] | None]:
    """Finds the layout of a tree of images: its classes and (name, label) of train and test,
    each sorted by class then file name. A folder wrapping the whole tree is looked through."""
    images = _image_paths(paths)
    if not images:
        raise DatasetError(
            f"no images in {where} (looked for {', '.join(IMAGE_SUFFIXES)} files in class "
            f"sub-folders); {SPEC_HELP}"
        )
    skip = 0  # leading folders that wrap the whole tree, e.g. cifar10/train/cat/0.jpg
    while all(len(p.parts) >= skip + 3 for p in images):
        heads = {p.parts[skip] for p in images}
        if len(heads) != 1 or heads & {"train", "test"}:
            break
        skip += 1
    rel = {p: p.parts[skip:] for p in images}

    split_layout = any(len(r) == 3 and r[0] in ("train", "test") for r in rel.values())
    groups: dict[str, dict[str, list[str]]] = {}  # split -> class -> names
    for p, r in rel.items():
        if split_layout:
            if len(r) != 3 or r[0] not in ("train", "test"):
                raise DatasetError(
                    f"{where}/{p} is out of place: beside train/ and test/ folders every image "
                    f"must be at train/<class>/<image> or test/<class>/<image>; move or remove it"
                )
            split, label = r[0], r[1]
        else:
            if len(r) == 1 and all(len(q) == 1 for q in rel.values()):
                raise DatasetError(
                    f"{where} has images but no class sub-folders (e.g. {p}); put each class's "
                    f"images in a sub-folder named after the class: <class>/<image>"
                )
            if len(r) == 1:
                raise DatasetError(
                    f"image {where}/{p} lies outside any class sub-folder; move it into the "
                    f"folder of its class, or remove it"
                )
            if len(r) != 2:
                raise DatasetError(
                    f"{where}/{p} is nested too deep; images must be at <class>/<image> or "
                    f"train/<class>/<image> and test/<class>/<image>"
                )
            split, label = "train", r[0]
        groups.setdefault(split, {}).setdefault(label, []).append(str(p))

    if split_layout and set(groups) != {"train", "test"}:
        missing = ({"train", "test"} - set(groups)).pop()
        raise DatasetError(
            f"{where} has {', '.join(sorted(groups))}/ but no images in {missing}/<class>/; add "
            f"the {missing} split, or put the class folders directly in {where} to have the test "
            f"split carved off"
        )
    classes = tuple(sorted(groups["train"]))
    if "test" in groups and set(groups["test"]) != set(classes):
        only_train = sorted(set(classes) - set(groups["test"])) or ["none"]
        only_test = sorted(set(groups["test"]) - set(classes)) or ["none"]
        raise DatasetError(
            f"train and test class folders differ in {where}: only in train: "
            f"{', '.join(only_train)}; only in test: {', '.join(only_test)}; give both splits the "
            f"same class sub-folders"
        )
    if len(classes) < 2:
        raise DatasetError(
            f"{where} has a single class folder ({classes[0]}); a classifier needs at least two "
            f"class sub-folders"
        )

    def listing(split: str) -> list[tuple[str, int]]:
        by_class = groups[split]
        return [(n, k) for k, c in enumerate(classes) for n in sorted(by_class[c])]

    return classes, listing("train"), (listing("test") if "test" in groups else None)


def _tree_source(
    origin: str, paths: Sequence[str], reader: Callable[[list[str]], _Reader], where: str
) -> _Source:
    """A class-folder tree's source; `reader(names)` reads those images by position."""
    classes, train, test = _arrange(paths, where)

    def make(items: list[tuple[str, int]]) -> _Listing:
        names = [n for n, _ in items]
        return _Listing(
            names, np.array([k for _, k in items], dtype=np.int64), reader(names), where
        )

    return _Source(origin, classes, make(train), make(test) if test is not None else None)


def _folder_source(root: Path) -> _Source:
    paths: list[str] = []

    def walk(folder: Path, prefix: str, depth: int) -> None:
        # Bounded depth: the deepest layout is wrapper/train/<class>/<image>.
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            raise DatasetError(f"cannot list folder {folder}: {e}") from None
        for entry in entries:
            if _is_hidden(entry.name):
                continue
            if entry.is_dir():
                if depth < 4:
                    walk(Path(entry.path), f"{prefix}{entry.name}/", depth + 1)
            elif entry.is_file():
                paths.append(prefix + entry.name)

    walk(root, "", 1)
    return _tree_source(str(root), paths, lambda names: _FileReader(root, names), str(root))


def _tar_index(path: Path) -> dict[str, tuple[int, int]]:
    """(offset of its data, size) of every image member, by normalised name, in one pass over
    the headers (an uncompressed tar is read header by header, skipping the data)."""
    spans: dict[str, tuple[int, int]] = {}
    try:
        with tarfile.open(path, mode="r:*") as archive:
            while (member := archive.next()) is not None:
                # TarFile keeps every member it has read; dropping them keeps the index's
                # memory at two integers and a name per image (ImageNet: 1.28 M members).
                archive.members.clear()  # type: ignore[attr-defined]
                if member.isfile() and PurePosixPath(member.name).suffix.lower() in IMAGE_SUFFIXES:
                    # Member names may carry a leading './'; _arrange works on the normal form.
                    parts = [q for q in PurePosixPath(member.name).parts if q != "."]
                    spans[str(PurePosixPath(*parts))] = (member.offset_data, member.size)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as e:
        raise DatasetError(
            f"cannot read archive {path} ({e}); check it is a whole .tar or .tar.gz file"
        ) from None
    return spans


def _tar_source(path: Path, data: Path) -> _Source:
    """The archive `path`, read from `data` (itself, or its inflated copy)."""
    spans = _tar_index(data)

    def reader(names: list[str]) -> _TarReader:
        table = np.array([spans[n] for n in names], dtype=np.int64).reshape(len(names), 2)
        return _TarReader(data, names, table)

    return _tree_source(str(path), list(spans), reader, str(path))


def _cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prp-nas"


def _inflated(path: Path) -> Path:
    """A compressed archive inflated once to a plain tar in the cache folder (`$PRP_DATA_CACHE`,
    else ~/.cache/prp-nas), keyed by the archive's path, size and modification time; `path`
    itself when it is not compressed. Streamed through in 1 MB pieces, written atomically."""
    opener = _decompressor(path)
    if opener is None:
        return path
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    out = _cache_dir() / f"{path.name.split('.')[0]}-{key.hexdigest()[:16]}.tar"
    if not out.is_file():
        try:
            with opener(path) as src, atomic_path(out) as tmp, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise DatasetError(
                f"cannot inflate archive {path} into {out.parent} ({e}); check the archive is "
                f"whole and the folder writable (set {CACHE_ENV} to another folder)"
            ) from None
    return out


_NPZ_KEYS = ("jpeg", "offsets", "labels", "split", "names", "classes")


def _npz_source(path: Path | None) -> _Source:
    """The embedded subset (path None) or another file written by `build_default_subset`."""
    ref: Traversable
    if path is None:
        origin = f"prp.trainer/{DEFAULT_RESOURCE}"
        ref = resources.files("prp.trainer").joinpath(DEFAULT_RESOURCE)
        if not ref.is_file():
            raise DatasetError(
                f"the embedded data set {origin} is missing from this installation; reinstall "
                f"prp-nas, or rebuild it with `python -m prp.trainer.datasets make-default --tar "
                f"cifar10_jpg.tar.gz`"
            )
    else:
        origin, ref = str(path), path
    try:
        with ref.open("rb") as f:
            npz = np.load(f, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DatasetError(f"{origin} is a single .npy array, not a data set file")
            with npz:
                missing = [k for k in _NPZ_KEYS if k not in npz.files]
                if missing:
                    raise DatasetError(
                        f"{origin} is not a data set file made by `make-default` (it lacks "
                        f"{', '.join(missing)}); {SPEC_HELP}"
                    )
                arrays = {k: npz[k] for k in _NPZ_KEYS}
    except (OSError, ValueError, zlib.error, zipfile.BadZipFile) as e:
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(f"cannot read data set file {origin} ({e}); rebuild it") from None

    jpeg, offsets = arrays["jpeg"], arrays["offsets"].astype(np.int64)
    names = [str(n) for n in arrays["names"]]
    labels = arrays["labels"].astype(np.int64)

    def make(in_split: np.ndarray) -> _Listing:
        rows = np.flatnonzero(in_split)
        split_names = [names[r] for r in rows]
        return _Listing(split_names, labels[rows], _BlobReader(jpeg, offsets, rows), origin)

    classes = tuple(str(c) for c in arrays["classes"])
    return _Source(origin, classes, make(arrays["split"] == 0), make(arrays["split"] == 1))


class _ArrayUnpickler(pickle.Unpickler):
    """Admits numpy arrays and plain containers only: a CIFAR batch needs no more, and a pickle
    from elsewhere could otherwise run arbitrary code while loading."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            # encoding="bytes": the official batches were pickled by Python 2.
            loaded = _ArrayUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DatasetError(
            f"{path.parent} looks like CIFAR-10's python format but lacks {path.name}; "
            f"extract the whole cifar-10-python.tar.gz again"
        ) from None
    except Exception as e:  # a damaged pickle can fail in many ways; all mean the same here
        raise DatasetError(
            f"cannot read CIFAR-10 batch {path} ({type(e).__name__}: {e}); extract the whole "
            f"cifar-10-python.tar.gz again"
        ) from None
    if not isinstance(loaded, dict):
        raise DatasetError(f"{path} holds a {type(loaded).__name__}, not a CIFAR-10 batch dict")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in loaded.items()}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _cifar_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    batch = _unpickle(path)
    if "data" not in batch or "labels" not in batch:
        hint = " (CIFAR-100 is not supported)" if "fine_labels" in batch else ""
        raise DatasetError(
            f"{path} is not a CIFAR-10 batch{hint}: it lacks 'data' or 'labels'; keys are "
            f"{', '.join(sorted(batch))}"
        )
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    n = len(labels)
    if data.dtype != np.uint8 or data.shape != (n, 3 * IMAGE_SIZE * IMAGE_SIZE):
        raise DatasetError(
            f"{path}: 'data' is {data.dtype} {list(data.shape)} but CIFAR-10 batches hold uint8 "
            f"[{n}, {3 * IMAGE_SIZE * IMAGE_SIZE}] (one 32x32 RGB image per row, channels first)"
        )
    if n and not 0 <= labels.min() <= labels.max() < num_classes:
        raise DatasetError(f"{path}: labels outside [0, {num_classes}) of batches.meta")
    images = data.reshape(n, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    names = [_text(x) for x in batch.get("filenames", [])]
    if len(names) != n:
        names = [f"{path.name}[{i}]" for i in range(n)]
    return np.ascontiguousarray(images), labels, names


def _cifar_source(folder: Path) -> _Source:
    meta = _unpickle(folder / "batches.meta")
    classes = tuple(_text(c) for c in meta.get("label_names", []))
    if len(classes) < 2:
        raise DatasetError(f"{folder}/batches.meta lists no 'label_names'; extract it again")

    def make(files: list[str]) -> _Listing:
        # The batches are raw pixels in a pickle, with no per-image offsets to seek to: they
        # are read whole (150 MB for the 50,000 train images), then served image by image.
        parts = [_cifar_batch(folder / f, len(classes)) for f in files]
        return _Listing(
            [n for p in parts for n in p[2]],
            np.concatenate([p[1] for p in parts]),
            _ArrayReader(np.concatenate([p[0] for p in parts])),
            str(folder),
        )

    train = make([f"data_batch_{i}" for i in range(1, 6)])
    return _Source(str(folder), classes, train, make(["test_batch"]))


def _resolve(spec: str | Path | None, inflate: bool = False) -> _Source:
    """The source `spec` names; `inflate`: read a compressed archive through `_inflated`."""
    if spec is None or (isinstance(spec, str) and spec == DEFAULT_NAME):
        return _npz_source(None)
    path = Path(spec).expanduser()
    if not path.exists():
        text = str(spec)
        if isinstance(spec, str) and "/" not in text and os.sep not in text and not path.suffix:
            raise DatasetError(
                f"unknown data set {text!r} (no file or folder of that name exists either); "
                f"{SPEC_HELP}"
            )
        raise DatasetError(f"data set path {path} does not exist; {SPEC_HELP}")
    if path.is_dir():
        if (path / "batches.meta").is_file():
            return _cifar_source(path)
        if (path / CIFAR10_BATCHES / "batches.meta").is_file():
            return _cifar_source(path / CIFAR10_BATCHES)
        return _folder_source(path)
    if path.suffix.lower() == ".npz":
        return _npz_source(path)
    if tarfile.is_tarfile(path):
        return _tar_source(path, _inflated(path) if inflate else path)
    raise DatasetError(f"{path} is a file but neither a tar archive nor an .npz; {SPEC_HELP}")


# ---------------------------------------------------------------------------------------------
# Splitting


def _first_per_class(labels: np.ndarray, limit: int | None) -> np.ndarray:
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
class _Plan:
    """Rows of each split in its listing: train and val in the source's train listing (val in
    class round-robin order), test in `test_listing`."""

    source: _Source
    train_rows: np.ndarray
    val_rows: np.ndarray
    test_listing: _Listing
    test_rows: np.ndarray


def _plan(source: _Source, val_fraction: float, seed: int, limit_per_class: int | None) -> _Plan:
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if limit_per_class is not None and limit_per_class < 1:
        raise DatasetError(f"limit_per_class must be at least 1 (or None), got {limit_per_class}")
    chosen = _first_per_class(source.train.labels, limit_per_class)
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
        test_rows = _first_per_class(source.test.labels, limit_per_class)

    rng = np.random.default_rng(seed)
    train_pos, val_pos = _hold_out(
        source.train.labels[chosen], val_fraction, lambda p, n: np.sort(rng.permutation(p)[:n])
    )
    val_pos = val_pos[_round_robin(source.train.labels[chosen[val_pos]])]
    return _Plan(source, chosen[train_pos], chosen[val_pos], test_listing, test_rows)


def _check_size(image_size: int) -> int:
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
) -> DataSplits:
    """Reads a data set (see the module docstring for `spec`) into train/val/test splits, every
    image decoded once at `image_size` x `image_size` into memory.

    `val_fraction` of each class of the source's train images is held out as the validation
    split, chosen by `seed`. `limit_per_class` reads at most that many images of each class from
    each of the source's splits (the first by file name or batch order), before the validation
    split is held out, so every split holds at most that many per class: for quick runs and tests.
    """
    size = _check_size(image_size)
    plan = _plan(_resolve(spec), val_fraction, seed, limit_per_class)
    source = plan.source

    def image_set(listing: _Listing, rows: np.ndarray, split: str) -> ImageSet:
        return ImageSet(
            images=listing.read(rows, size),
            labels=listing.labels[rows].copy(),
            classes=source.classes,
            source=f"{source.origin} [{split}]",
            names=tuple(listing.names[r] for r in rows),
            index=rows.astype(np.int64),
        )

    train = image_set(source.train, plan.train_rows, "train")
    val = image_set(source.train, plan.val_rows, "val")
    test = image_set(plan.test_listing, plan.test_rows, "test")
    mean, std = channel_stats(train.images)
    return DataSplits(
        train=train,
        val=val,
        test=test,
        classes=source.classes,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        source=source.origin,
    )


class ImageDataset(Dataset[tuple[Tensor, int]]):
    """One split read image by image, a `torch.utils.data.Dataset`: item i is (uint8 tensor
    [3, S, S], label). Nothing is decoded until an item is asked for (in a DataLoader worker
    when there are workers); the object pickles small (a listing and its rows).

    `train_side` None: each item at `image_size` (the evaluation transform, `_fit`). Otherwise
    each item is the square of that side the batch augmentation crops from (`loader.Augment`).
    `labels`, `names` and `index` mean what they mean on `ImageSet`.
    """

    def __init__(
        self,
        listing: _Listing,
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

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        pixels = self._listing.image(int(self.index[i]), self.image_size, self.train_side)
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))), int(
            self.labels[i]
        )

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
) -> StreamSplits:
    """The splits `load_dataset` gives (the same images, labels and order), as `ImageDataset`s
    that decode on demand at `image_size`. A compressed archive is inflated once to the cache
    folder (`_inflated`): shuffled reads need random access, which gzip lacks."""
    size = _check_size(image_size)
    plan = _plan(_resolve(spec, inflate=True), val_fraction, seed, limit_per_class)
    source = plan.source

    def split(listing: _Listing, rows: np.ndarray, name: str) -> ImageDataset:
        return ImageDataset(listing, rows, source.classes, f"{source.origin} [{name}]", size)

    train = split(source.train, plan.train_rows, "train")
    sample = np.unique(np.linspace(0, len(train) - 1, min(len(train), STATS_IMAGES)).round())
    mean, std = channel_stats(train.decode(sample.astype(np.int64)))
    return StreamSplits(
        train=train,
        val=split(source.train, plan.val_rows, "val"),
        test=split(plan.test_listing, plan.test_rows, "test"),
        classes=source.classes,
        mean=(mean[0], mean[1], mean[2]),
        std=(std[0], std[1], std[2]),
        source=source.origin,
        image_size=size,
    )


def streams_by_default(spec: str | Path | None) -> bool:
    """Whether the trainer reads `spec` through the DataLoader (`open_dataset`) rather than
    decoding it into memory: folder trees and archives, whose size and resolution are open,
    stream; the embedded subset, .npz files and CIFAR-10 batches (small, 32 px) stay in memory,
    where whole-tensor batching is faster (bench/scaling_data.py)."""
    if spec is None or (isinstance(spec, str) and spec == DEFAULT_NAME):
        return False
    path = Path(spec).expanduser()
    if path.is_dir():
        return not (
            (path / "batches.meta").is_file() or (path / CIFAR10_BATCHES / "batches.meta").is_file()
        )
    return path.is_file() and path.suffix.lower() != ".npz"


# ---------------------------------------------------------------------------------------------
# The embedded default subset


def build_default_subset(
    tar_path: str | Path,
    out_path: str | Path,
    train_per_class: int = 500,
    test_per_class: int = 100,
    train_skip_per_class: int = 0,
) -> Path:
    """Writes the default data set file from a .tar.gz of train/<class>/ and test/<class>/ JPEGs.

    Takes the first `train_per_class` and `test_per_class` images of each class by file name and
    stores their original bytes (no re-encoding) with labels, split (0 train, 1 test), names and
    classes in one compressed .npz. `train_skip_per_class` skips the first that many train
    images of each class first: with 500, a set disjoint from the embedded default subset (for
    training a supernet to ship, whose estimates the default run then reads on its own images).
    Every image is decoded once as a check. The file is written to
    a temporary name and renamed into place, so a failure leaves no partial file.
    """
    tar_path, out_path = Path(tar_path), Path(out_path)
    if not tar_path.is_file():
        raise DatasetError(f"archive {tar_path} does not exist; give the CIFAR-10 JPEG .tar.gz")
    spans = _tar_index(tar_path)
    classes, train, test = _arrange(list(spans), str(tar_path))
    if test is None:
        raise DatasetError(f"{tar_path} has no test/<class>/ folders; the default set needs both")

    if train_skip_per_class < 0:
        raise DatasetError(f"train_skip_per_class must be >= 0, got {train_skip_per_class}")
    rows: list[tuple[str, int, int]] = []  # (name, label, split)
    for split, items, per_class, skip in (
        (0, train, train_per_class, train_skip_per_class),
        (1, test, test_per_class, 0),
    ):
        labels = np.array([k for _, k in items], dtype=np.int64)
        for k, c in enumerate(classes):
            have = int((labels == k).sum())
            if have < skip + per_class:
                raise DatasetError(
                    f"{tar_path}: class {c} has {have} {('train', 'test')[split]} images, fewer "
                    f"than the {per_class} asked for" + (f" after skipping {skip}" if skip else "")
                )
        taken = _first_per_class(labels, skip + per_class)
        skipped = set(_first_per_class(labels, skip).tolist()) if skip else set()
        for p in taken:
            if int(p) not in skipped:
                rows.append((items[p][0], int(labels[p]), split))

    names = [n for n, _, _ in rows]
    reader = _TarReader(tar_path, names, np.array([spans[n] for n in names], dtype=np.int64))
    blobs: list[bytes] = [b""] * len(names)
    for i in np.argsort(reader.spans[:, 0]):  # archive order: the .tar.gz is inflated once
        blobs[i] = reader(int(i))
        _fit(blobs[i], names[i], str(tar_path), IMAGE_SIZE)  # decodes it: a check
        if _image_size(blobs[i]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise DatasetError(
                f"image {tar_path}/{names[i]} is not {IMAGE_SIZE}x{IMAGE_SIZE} pixels; the "
                f"default set stores CIFAR-10's own {IMAGE_SIZE}x{IMAGE_SIZE} JPEGs"
            )
    lengths = np.array([len(b) for b in blobs], dtype=np.int64)
    digest = hashlib.sha256(tar_path.read_bytes()).hexdigest()
    arrays: dict[str, Any] = {
        "jpeg": np.frombuffer(b"".join(blobs), dtype=np.uint8),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "labels": np.array([k for _, k, _ in rows], dtype=np.int64),
        "split": np.array([s for _, _, s in rows], dtype=np.uint8),
        "names": np.array(names),
        "classes": np.array(classes),
        "provenance": np.array(
            (
                f"train images {train_skip_per_class + 1}-"
                f"{train_skip_per_class + train_per_class} of each class"
                if train_skip_per_class
                else f"first {train_per_class} train"
            )
            + f" and {test_per_class} test images per class, by file name, of {tar_path.name} "
            f"(sha256 {digest}); original JPEG bytes"
        ),
    }
    write_atomic(out_path, lambda f: np.savez_compressed(f, **arrays), binary=True)
    return out_path


# ---------------------------------------------------------------------------------------------
# Tensors and batches


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


# ---------------------------------------------------------------------------------------------
# Command line: python -m prp.trainer.datasets {make-default, show}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prp.trainer.datasets", description="Build or inspect data sets."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-default", help="write the embedded CIFAR-10 subset")
    make.add_argument("--tar", required=True, type=Path, help="CIFAR-10 JPEG .tar.gz")
    make.add_argument("--out", type=Path, default=DEFAULT_SUBSET_PATH, help="the .npz to write")
    make.add_argument("--train-per-class", type=int, default=500)
    make.add_argument("--test-per-class", type=int, default=100)
    make.add_argument(
        "--train-skip-per-class",
        type=int,
        default=0,
        help="skip the first N train images of each class (500: disjoint from the default set)",
    )
    show = commands.add_parser("show", help="load a data set and print its splits")
    show.add_argument("spec", nargs="?", default=DEFAULT_NAME)
    show.add_argument("--limit-per-class", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "make-default":
            out = build_default_subset(
                args.tar,
                args.out,
                args.train_per_class,
                args.test_per_class,
                args.train_skip_per_class,
            )
            print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
        else:
            start = time.perf_counter()
            splits = load_dataset(args.spec, limit_per_class=args.limit_per_class)
            seconds = time.perf_counter() - start
            print(f"{splits.source}: {len(splits.classes)} classes, loaded in {seconds:.2f} s")
            for s in (splits.train, splits.val, splits.test):
                print(f"  {s.source}: {len(s)} images")
            print(f"  mean {tuple(round(v, 4) for v in splits.mean)}")
            print(f"  std  {tuple(round(v, 4) for v in splits.std)}")
    except PRPError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
