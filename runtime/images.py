"""Reading images for the runtime's commands: .npy arrays (no Pillow needed) or picture files,
as uint8 NHWC batches of the bundle's input size."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np

from .model import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".npy"}


def _is_regular(f: Path) -> bool:
    try:
        return stat.S_ISREG(f.stat().st_mode)
    except OSError:
        return False


def _load_npy(f: Path) -> np.ndarray:
    try:
        loaded = np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"cannot read {f} as a .npy array: {e}") from None
    if not isinstance(loaded, np.ndarray):  # an .npz archive under a .npy name, say
        loaded.close()
        raise InputError(f"{f} is not a .npy array (an .npz archive?); save one array with np.save")
    return loaded


def _load_picture(f: Path, size: tuple[int, int]) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise InputError(
            f"reading {f.suffix} files needs Pillow (pip install pillow); or pass .npy"
        ) from None
    try:
        with Image.open(f) as im:
            return np.asarray(im.convert("RGB").resize(size[::-1]))
    # DecompressionBombError is Pillow's refusal of an image too large to decode safely;
    # SyntaxError and ValueError come from some damaged files.
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"cannot read image {f}: {e}") from None


def load_images(target: Path, size: tuple[int, int]) -> tuple[list[str], np.ndarray]:
    """uint8 (N, H, W, 3) images from a file or a folder, with one name per image; .npy arrays
    (one image HWC, or a batch NHWC) need no Pillow. Only regular files are read."""
    if not target.exists():
        raise InputError(f"{target} does not exist; give an image file or a folder of images")
    if target.is_dir():
        files = sorted(
            f for f in target.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and _is_regular(f)
        )
    elif _is_regular(target):
        files = [target]
    else:
        raise InputError(f"{target} is not a regular file or a folder; give an image file")
    if not files:
        raise InputError(f"{target} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images, names = [], []
    for f in files:
        arr = _load_npy(f) if f.suffix.lower() == ".npy" else _load_picture(f, size)
        arr = arr[None] if arr.ndim == 3 else arr
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (*size, 3):
            raise InputError(
                f"{f}: expected a uint8 {size[0]}x{size[1]}x3 array, got {arr.dtype} {arr.shape}"
            )
        if len(arr) == 0:
            raise InputError(f"{f} holds no images (shape {arr.shape})")
        images.append(arr)
        names += [str(f)] * len(arr)
    return names, np.concatenate(images)
