"""`prp-run`: classify images with the path the policy picks now."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .backends import BACKENDS
from .battery import BatteryError, battery_source
from .bundle import BundleError
from .cli_errors import one_line_errors
from .images import load_images
from .model import AdaptiveModel, InputError
from .policies import PolicyError, policy_from_manifest
from .quiet import third_party_log, user_log

run_app = typer.Typer(add_completion=False, help="Classify images with an exported bundle.")


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
    bundle: Path = typer.Argument(..., help="Bundle folder (e.g. exported/smoke)."),
    images: Path = typer.Argument(..., help="An image file or a folder of images."),
    policy: str = typer.Option(None, help="battery, schedule, energy-budget or fixed."),
    battery: str = typer.Option("psutil", help="psutil, sysfs, or a level in percent."),
    path: str = typer.Option(None, help="Run this path (e.g. path_2); implies --policy fixed."),
    backend: str = typer.Option("auto", help=f"One of: {', '.join(BACKENDS)}."),
    calibration: str = typer.Option(
        "auto",
        help="Costs the policy plans with: auto (this device's prp-calibrate file for the "
        "bundle, where there is one), none (the manifest's) or a calibration file.",
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="Show third-party warnings and logs here (by default the last call's go to "
        "~/.cache/prp-nas/logs/prp-run.log, or $PRP_LOG_DIR).",
    ),
) -> None:
    """Print, for each image, the class, the path that ran and why."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    log = None if verbose else user_log("prp-run")
    with (
        one_line_errors(
            console, BundleError, InputError, PolicyError, BatteryError, ValueError, OSError
        ),
        # ExecuTorch's Python runtime imports torch and torchao, which print warnings and
        # cpuinfo probes while it loads.
        third_party_log(log, "prp-run", append=False),
    ):
        name = choose_policy(policy, path)
        source = battery_source(battery)
        from .bundle import Bundle

        b = Bundle.load(bundle)
        # --path names a path: a fixed policy, which no calibration changes.
        chosen = policy_from_manifest(b.data, name, fixed=path) if name == "fixed" else name
        measured = None if calibration == "none" else calibration
        model = AdaptiveModel(
            b, policy=chosen, battery=source, backend=backend, calibration=measured
        )
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
        if model.calibration is not None or calibration not in ("auto", "none"):
            console.print(Text(f"costs: {model.calibration_note}"), soft_wrap=True)
    if log is not None and log.exists():
        console.print(f"third-party warnings and logs: {log} (--verbose shows them)")
