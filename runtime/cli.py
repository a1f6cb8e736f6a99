"""`prp-run`: classify images with the path the policy picks now."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from .backends import BACKENDS
from .battery import battery_source
from .bundle import BundleError
from .model import AdaptiveModel, InputError
from .policies import PolicyError, policy_from_manifest

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".npy"}

run_app = typer.Typer(add_completion=False, help="Classify images with an exported bundle.")


def load_images(target: Path, size: tuple[int, int]) -> tuple[list[str], np.ndarray]:
    """uint8 (N, H, W, 3) images from a file or a folder, with one name per image; .npy arrays
    (one image HWC, or a batch NHWC) need no Pillow."""
    files = (
        sorted(f for f in target.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if target.is_dir()
        else [target]
    )
    if not target.exists():
        raise InputError(f"{target} does not exist; give an image file or a folder of images")
    if not files:
        raise InputError(f"{target} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    images, names = [], []
    for f in files:
        if f.suffix.lower() == ".npy":
            arr = np.load(f)
        else:
            try:
                from PIL import Image
            except ImportError:
                raise InputError(
                    f"reading {f.suffix} files needs Pillow (pip install pillow); or pass .npy"
                ) from None
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("RGB").resize(size[::-1]))
            except OSError as e:
                raise InputError(f"cannot read image {f}: {e}") from None
        arr = arr[None] if arr.ndim == 3 else arr
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (*size, 3):
            raise InputError(
                f"{f}: expected a uint8 {size[0]}x{size[1]}x3 array, got {arr.dtype} {arr.shape}"
            )
        images.append(arr)
        names += [str(f)] * len(arr)
    return names, np.concatenate(images)


@run_app.command()
def run(
    bundle: Path = typer.Argument(..., help="Bundle folder (e.g. exported/default)."),
    images: Path = typer.Argument(..., help="An image file or a folder of images."),
    policy: str = typer.Option(None, help="battery, schedule, energy-budget or fixed."),
    battery: str = typer.Option("psutil", help="psutil, sysfs, or a level in percent."),
    path: str = typer.Option(None, help="The path for --policy fixed (e.g. path_2)."),
    backend: str = typer.Option("auto", help=f"One of: {', '.join(BACKENDS)}."),
) -> None:
    """Print, for each image, the class, the path that ran and why."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        source = battery_source(battery)
        from .bundle import Bundle

        b = Bundle.load(bundle)
        chosen = policy_from_manifest(b.data, policy, fixed=path) if policy or path else None
        model = AdaptiveModel(b, policy=chosen, battery=source, backend=backend)
        c, h, w = model.input_shape
        names, x = load_images(images, (h, w))
        pred = model.predict(x)
        classes = b.classes
        level = source.read()
        shown = "unknown" if level is None else f"{level:.0f} %"
        table = Table(title=f"{b.directory}: {model.backend.name}, battery {shown}")
        for col in ("image", "class", "path", "why"):
            table.add_column(col)
        for name, label in zip(names, pred.labels, strict=True):
            table.add_row(Path(name).name, classes[int(label)], pred.path, pred.reason)
        console.print(table)
    except (BundleError, InputError, PolicyError, ValueError) as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
