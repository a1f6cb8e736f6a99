"""`prp-calibrate`: measure what every path of a bundle costs on this device, write the
calibration the runtime then plans with, and show it beside the manifest's costs."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .backends import BACKENDS
from .battery import PushedBattery
from .bundle import Bundle, BundleError
from .calibration import (
    Calibration,
    CalibrationError,
    default_calibration_file,
    rank_agreement,
    save_calibration,
)
from .cli_errors import one_line_errors
from .energy import EnergyMeter, find_meter
from .measured_costs import measured_manifest
from .measuring import Recorder
from .model import AdaptiveModel
from .policies import COST_FIELDS, FixedPolicy
from .profiles import PIXEL3
from .quiet import third_party_log, user_log

# Without a meter, latency needs no more than this many calls of each path (the recorder keeps
# its last `keep` anyway); the measuring stops there, well inside the budget.
LATENCY_CALLS = 200
MIN_MEASURING_S = 2.0  # below this a path gets too few calls after warm-up
IDLE = "idle"


def calibrate_model(
    model: AdaptiveModel, seconds: float = 45.0, window_s: float | None = None
) -> Calibration:
    """Measure every path of `model` within `seconds` (from now) and return the calibration.

    Paths run in turns of `window_s` seconds each (one image per call), every path warmed up
    first. With an energy meter every round also holds an idle turn, so that the regression
    can tell the device's own draw from each path's; the whole budget is used. Without one,
    it stops once every path has `LATENCY_CALLS` timed calls."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise CalibrationError(f"--seconds must be a number > 0, got {seconds}")
    recorder = model.recorder
    if recorder is None:
        raise CalibrationError("the model does not measure (measure=False)")
    start = time.monotonic()
    deadline = start + seconds
    meter = recorder.meter
    turn_s = window_s if window_s is not None else (recorder.window_s if meter else 0.05)
    ids = model.bundle.ids
    c, h, w = model.input_shape
    x = np.random.default_rng(0).integers(0, 256, (1, h, w, c), dtype=np.uint8)
    for pid in ids:
        for _ in range(recorder.warmup_calls + 1):
            model.run_path(pid, x)
    turns = ([IDLE] if meter else []) + list(ids)
    while time.monotonic() < deadline:
        for turn in turns:
            end = min(time.monotonic() + turn_s, deadline)
            if turn == IDLE:
                while time.monotonic() < end:
                    time.sleep(min(recorder.sample_s, max(end - time.monotonic(), 0.0)))
                    recorder.tick()
                continue
            while time.monotonic() < end:
                model.run_path(turn, x)
        if meter is None and all(_calls(recorder, pid) >= LATENCY_CALLS for pid in ids):
            break
    return model.measured()


def _calls(recorder: Recorder, pid: str) -> int:
    lat = recorder.latency(pid)
    return 0 if lat is None else lat.calls


calibrate_app = typer.Typer(
    add_completion=False, help="Measure every path of a bundle on this device."
)


@calibrate_app.command()
def main(
    bundle: Path = typer.Argument(..., help="Bundle folder (e.g. exported/smoke)."),
    backend: str = typer.Option("auto", help=f"One of: {', '.join(BACKENDS)}."),
    seconds: float = typer.Option(
        55.0,
        help="Time budget in all, loading the bundle included, s (the measuring gets what "
        "loading leaves).",
    ),
    power_w: float = typer.Option(
        PIXEL3.inference_power_w,
        help="Where no energy reading separates the paths: energy = latency x this power, W "
        "(a stated assumption: the pixel3 profile's processor power).",
    ),
    out: Path | None = typer.Option(
        None,
        help="Calibration file (default: this device's, in $PRP_DATA_DIR/calibrations or "
        "~/.local/share/prp-nas/calibrations, where the runtime finds it).",
    ),
    meter: str = typer.Option("auto", help="Energy meter: auto (RAPL or battery) or none."),
    verbose: bool = typer.Option(
        False, "--verbose", help="Show third-party warnings and logs here."
    ),
) -> None:
    """Measure latency (and energy where the platform reports it) of every path, write the
    calibration and print it against the manifest's costs with their rank agreement."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    log = None if verbose else user_log("prp-calibrate")
    with (
        one_line_errors(console, BundleError, CalibrationError, ValueError, OSError),
        third_party_log(log, "prp-calibrate", append=False),
    ):
        if meter not in ("auto", "none"):
            raise CalibrationError(f"--meter must be auto or none, got {meter!r}")
        if not (math.isfinite(power_w) and power_w > 0):
            raise CalibrationError(f"--power-w must be a number > 0 W, got {power_w}")
        if not (math.isfinite(seconds) and seconds > 0):
            raise CalibrationError(f"--seconds must be a number > 0, got {seconds}")
        start = time.monotonic()
        b = Bundle.load(bundle)
        energy: EnergyMeter | None = find_meter() if meter == "auto" else None
        window = " (an idle turn each round for the baseline)" if energy else ""
        console.print(
            f"measuring {len(b.ids)} paths within {seconds:g} s; energy meter: "
            f"{energy.source if energy else 'none'}{window}"
        )
        model = AdaptiveModel(
            b,
            policy=FixedPolicy(b.ids[0]),
            battery=PushedBattery(None),
            backend=backend,
            calibration=None,
            energy_meter=energy,
            power_w=power_w,
        )
        left = seconds - (time.monotonic() - start)
        if left < MIN_MEASURING_S:
            raise CalibrationError(
                f"loading took {seconds - left:.1f} s of the {seconds:g} s budget, which leaves "
                f"too little to measure; give --seconds at least {seconds - left + 10:.0f}"
            )
        cal = calibrate_model(model, left)
        target = out or default_calibration_file(b, model.backend.name, model.manifest_sha256)
        save_calibration(cal, target)
        show(console, cal, b)
        console.print(f"wrote {target}")
    if log is not None and log.exists():
        console.print(f"third-party warnings and logs: {log} (--verbose shows them)")


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def show(console: Console, cal: Calibration, bundle: Bundle) -> None:
    """The measured costs beside the manifest's, the rank agreement and the ladder."""
    table = Table(title=Text(f"{bundle.directory} on {cal.backend}, {cal.device.get('host')}"))
    for col in ("path", "accuracy %", "latency ms", "(manifest)", "energy mJ", "(manifest)"):
        table.add_column(col, justify="right")
    for p in bundle.paths:
        c = cal.paths[p["id"]]
        ci = "" if c.energy_ci95_mj is None else f" +- {c.energy_ci95_mj:.2g}"
        table.add_row(
            p["id"],
            f"{p['accuracy']:g}",
            f"{c.latency_ms:.4g} ({c.p25_ms:.3g}-{c.p75_ms:.3g})",
            _fmt(p.get("latency_ms")),
            f"{c.energy_mj:.4g}{ci}",
            _fmt(p.get("energy_mj")),
        )
    console.print(table)
    tau = rank_agreement(cal, bundle.data)
    console.print(
        "rank agreement, measured vs manifest (Kendall tau-b): "
        + ", ".join(
            f"{key} {'no manifest figures' if t is None else f'{t:+.2f}'}" for key, t in tau.items()
        )
    )
    console.print(Text(f"energy: {cal.energy_note}"))
    measured = measured_manifest(bundle.data, cal)
    field = COST_FIELDS[str(bundle.data["objective"])][0]
    same = "the manifest's" if measured.ladder == measured.manifest_ladder else "changed"
    console.print(Text(f"ladder on measured {field}: {', '.join(measured.ladder)} ({same})"))
    for why in [*measured.left.values(), *measured.joined.values()]:
        console.print(Text(f"  {why}"))
