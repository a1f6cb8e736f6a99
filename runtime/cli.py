"""`prp-run`: classify images with the path the policy picks now."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .backends import BACKENDS
from .battery import BatteryError, battery_source
from .bundle import BundleError
from .cli_errors import one_line_errors
from .model import AdaptiveModel, InputError
from .policies import PolicyError, policy_from_manifest

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".npy"}

run_app = typer.Typer(add_completion=False, help="Classify images with an exported bundle.")


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


def choose_policy(policy: str | None, path: str | None) -> str | None:
    """The policy name to use: `--path` alone implies `--policy fixed` (naming a path means
    running it); `--path` with another policy is refused, since one of the two would be ignored."""
    if path is None:
        return policy
    if policy not in (None, "fixed"):
        raise PolicyError(
            f"--path {path} runs one path, which only --policy fixed does, but --policy is "
            f"{policy!r}; drop --path, or drop --policy"
        )
    return "fixed"


@run_app.command()
def run(
    bundle: Path = typer.Argument(..., help="Bundle folder (e.g. exported/default)."),
    images: Path = typer.Argument(..., help="An image file or a folder of images."),
    policy: str = typer.Option(None, help="battery, schedule, energy-budget or fixed."),
    battery: str = typer.Option("psutil", help="psutil, sysfs, or a level in percent."),
    path: str = typer.Option(None, help="Run this path (e.g. path_2); implies --policy fixed."),
    backend: str = typer.Option("auto", help=f"One of: {', '.join(BACKENDS)}."),
) -> None:
    """Print, for each image, the class, the path that ran and why."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    with one_line_errors(
        console, BundleError, InputError, PolicyError, BatteryError, ValueError, OSError
    ):
        name = choose_policy(policy, path)
        source = battery_source(battery)
        from .bundle import Bundle

        b = Bundle.load(bundle)
        chosen = policy_from_manifest(b.data, name, fixed=path) if name else None
        model = AdaptiveModel(b, policy=chosen, battery=source, backend=backend)
        c, h, w = model.input_shape
        names, x = load_images(images, (h, w))
        pred = model.predict(x)
        classes = b.classes
        level = model.battery.read()
        shown = "unknown" if level is None else f"{level:.0f} %"
        table = Table(title=Text(f"{b.directory}: {model.backend.name}, battery {shown}"))
        for col in ("image", "class", "path", "why"):
            table.add_column(col)
        for image, label in zip(names, pred.labels, strict=True):
            # Text, not markup: a file name such as "[/x].png" must print as it is.
            row = (Path(image).name, classes[int(label)], pred.path, pred.reason)
            table.add_row(*(Text(v) for v in row))
        console.print(table)
