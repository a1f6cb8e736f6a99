"""What a source holds, before anything is decoded, and how one image is read and brought
to size: the readers (files, tar members, the .npz format's JPEG bytes, decoded arrays), a
split's `Listing`, a source's `Source`, and `fit_image` (decode, resize, center-crop)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .base import CROP_FRACTION, DatasetError

# Listing: what a source holds, before anything is decoded. Readers are small picklable objects
# (no closures), so a DataLoader worker can be handed one under any start method.


class FileReader:
    """Image i of a listing is the file `root/names[i]`."""

    def __init__(self, root: Path, names: Sequence[str]) -> None:
        self.root, self.names = root, list(names)

    def __call__(self, i: int) -> bytes:
        try:
            return (self.root / self.names[i]).read_bytes()
        except OSError as e:
            raise DatasetError(f"cannot read image {self.root}/{self.names[i]}: {e}") from None


def decompressor(path: Path) -> Callable[..., Any] | None:
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


class TarReader:
    """Image i of a listing is the member at `spans[i]` = (offset of its data, size) in a tar.

    One seek and one read per image, through a handle each process opens for itself on first
    use (a DataLoader worker must not share its parent's file position). On a compressed
    archive a seek inflates from the last position (from the start when going back), so
    `open_dataset` inflates such an archive once to a plain tar (`inflated_tar`) and reads that.
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
                self._handle = (decompressor(self.path) or open)(self.path, "rb")
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


class BlobReader:
    """Image i is `blob[offsets[rows[i]]:offsets[rows[i] + 1]]` (the .npz format's JPEG bytes)."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> None:
        self.blob, self.offsets, self.rows = blob, offsets, rows

    def __call__(self, i: int) -> bytes:
        r = int(self.rows[i])
        return self.blob[self.offsets[r] : self.offsets[r + 1]].tobytes()


class ArrayReader:
    """Image i is `images[i]`, already decoded (CIFAR-10's python batches are raw pixels)."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __call__(self, i: int) -> np.ndarray:
        return self.images[i]


Reader = FileReader | TarReader | BlobReader | ArrayReader


@dataclass(frozen=True)
class Listing:
    """One split of a source, listed in a fixed order; `reader(i)` gives image i's encoded bytes
    (or its pixels); `where` names the source in error messages."""

    names: list[str]
    labels: np.ndarray
    reader: Reader
    where: str

    def image(self, i: int, size: int, train_side: int | None = None) -> np.ndarray:
        """Image i as uint8 [S, S, 3]: at `size` (see `fit_image`), or for training at the square
        `train_side` the batch augmentation crops from."""
        return fit_image(self.reader(i), self.names[i], self.where, size, train_side)

    def read(self, positions: np.ndarray, size: int) -> np.ndarray:
        """The images at `positions`, decoded at `size`: uint8 [N, size, size, 3]."""
        out = np.empty((len(positions), size, size, 3), dtype=np.uint8)
        order = np.arange(len(positions))
        if isinstance(self.reader, TarReader):  # archive order: a compressed one never seeks back
            order = np.argsort(self.reader.spans[np.asarray(positions, dtype=np.int64), 0])
        for k in order:
            out[k] = self.image(int(positions[k]), size)
        return out


@dataclass(frozen=True)
class Source:
    origin: str
    classes: tuple[str, ...]
    train: Listing
    test: Listing | None  # None: the source has no test split; carve one off the train listing


def blob_image_size(blob: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as image:
        return image.size


def fit_image(
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
