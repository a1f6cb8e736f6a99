"""What a source holds, before anything is decoded, and how one image is read and brought
to size: the readers (files, tar members, the .npz format's JPEG bytes, decoded arrays), a
split's `Listing`, a source's `Source`, and `fit_image` (decode, resize, center-crop)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .bad_images import refusal
from .base import CROP_FRACTION, BadImage, BadImageError, DatasetError

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

    def open(self, i: int) -> IO[bytes]:
        """Image i as an open file: a header check reads only what it needs."""
        try:
            return (self.root / self.names[i]).open("rb")
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

    def _here(self) -> Any:
        """This process's handle on the archive."""
        if self._handle is None or self._pid != os.getpid():
            self._handle = (decompressor(self.path) or open)(self.path, "rb")
            self._pid = os.getpid()
        return self._handle

    def _failed(self, i: int, e: BaseException) -> DatasetError:
        return DatasetError(
            f"cannot read {self.names[i]} from archive {self.path} ({e}); check it is a "
            f"whole .tar or .tar.gz file"
        )

    def __call__(self, i: int) -> bytes:
        offset, size = (int(v) for v in self.spans[i])
        try:
            handle = self._here()
            handle.seek(offset)
            blob: bytes = handle.read(size)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise self._failed(i, e) from None
        if len(blob) != size:
            raise DatasetError(
                f"archive {self.path} ends inside {self.names[i]}; it is truncated: copy it again"
            )
        return blob

    def open(self, i: int) -> IO[bytes]:
        """Member i as a file of its own over the archive: a header check reads only what it
        needs of it."""
        offset, size = (int(v) for v in self.spans[i])
        try:
            return io.BufferedReader(_Span(self._here(), offset, size), 16384)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise self._failed(i, e) from None


class _Span(io.RawIOBase):
    """Bytes [offset, offset + size) of an open file, read as a file of their own."""

    def __init__(self, f: Any, offset: int, size: int) -> None:
        self.f, self.offset, self.size, self.pos = f, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = (0, self.pos, self.size)[whence]
        self.pos = max(0, base + pos)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self.size - self.pos))
        if n == 0:
            return 0
        self.f.seek(self.offset + self.pos)
        data = self.f.read(n)
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


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


def reason(e: BaseException) -> str:
    """Why Pillow refused an image, in a line, without its file object's repr."""
    text = " ".join(re.sub(r"\s*<_io\.[^>]*>", "", str(e)).split())
    return text or type(e).__name__


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

    def _archive_order(self, positions: np.ndarray) -> np.ndarray:
        """Visiting order of `positions`: archive order for a tar (a compressed one never
        seeks back), else as given."""
        if isinstance(self.reader, TarReader):
            return np.argsort(self.reader.spans[np.asarray(positions, dtype=np.int64), 0])
        return np.arange(len(positions))

    def read(self, positions: np.ndarray, size: int) -> np.ndarray:
        """The images at `positions`, decoded at `size`: uint8 [N, size, size, 3]. Every image
        that cannot be decoded is named in one `BadImagesError` (`bad_images.refusal`)."""
        pixels, usable, bad = self.read_usable(positions, size)
        if bad:
            raise refusal(self.where, bad)
        return pixels

    def read_usable(
        self, positions: np.ndarray, size: int
    ) -> tuple[np.ndarray, np.ndarray, list[BadImage]]:
        """The images at `positions` that decode, at `size` (uint8 [M, size, size, 3]), which
        of `positions` they are (bool [N]), and the ones that do not."""
        out = np.empty((len(positions), size, size, 3), dtype=np.uint8)
        usable = np.ones(len(positions), dtype=bool)
        bad = []
        for k in self._archive_order(positions):
            try:
                out[k] = self.image(int(positions[k]), size)
            except BadImageError as e:
                usable[k] = False
                bad.append((int(k), BadImage(e.name, e.reason)))
        return out[usable], usable, [b for _, b in sorted(bad, key=lambda kb: kb[0])]

    def header_problem(self, i: int) -> str | None:
        """Why image i's header cannot be read, None when it can: Pillow opens it (format,
        size, mode) and `verify`s what its format allows without decoding pixels (a PNG's
        chunk checksums); a JPEG cut short past its header still passes (it is skipped when
        training meets it). Images of a data set file or in arrays were decoded when built."""
        if not isinstance(self.reader, FileReader | TarReader):
            return None
        from PIL import Image

        with self.reader.open(i) as f:
            try:
                with Image.open(f) as image:
                    image.verify()
            except Exception as e:  # noqa: BLE001 - whatever Pillow raises, the file is unusable
                return reason(e)
        return None

    def check_headers(self, positions: np.ndarray) -> list[tuple[int, BadImage]]:
        """(position in `positions`, why) of each image whose header fails `header_problem`."""
        bad = []
        for k in self._archive_order(positions):
            reason = self.header_problem(int(positions[k]))
            if reason is not None:
                bad.append((int(k), BadImage(self.names[int(positions[k])], reason)))
        return sorted(bad, key=lambda kb: kb[0])


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
        why = reason(e)
        raise BadImageError(
            f"cannot decode image {where}/{name} ({why}); replace or remove that file", name, why
        ) from None
