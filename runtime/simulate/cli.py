"""`prp-simulate`: a simulated day of battery drain for a bundle, scenario by scenario."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import typer
from rich.console import Console

from ..backends import BACKENDS, Backend
from ..bundle import Bundle, BundleError
from ..calibration import CalibrationError, load_calibration, manifest_latency_calibration
from ..cli_errors import one_line_errors
from ..images import load_images as read_images
from ..measured_costs import measured_manifest
from ..model import InputError
from ..policies import PolicyError
from ..profiles import ProfileError, get_profile
from ..quiet import third_party_log
from .config import ENERGY_SOURCES, SimConfig, SimulationError
from .engine import Simulation, simulate
from .real import measure_energies, simulate_real
from .report import print_summary, write_outputs

SIM_LOG = "simulate.log"  # third-party output of the last call, beside its results


def load_images(folder: Path, shape_chw: Sequence[int]) -> np.ndarray:
    """uint8 NHWC images from a folder (prp-run's reader: .npy arrays, or image files)."""
    if not folder.is_dir():
        raise InputError(f"--images {folder} is not a folder")
    _, h, w = (int(v) for v in shape_chw)
    return read_images(folder, (h, w))[1]


simulate_app = typer.Typer(
    add_completion=False, help="Simulate a day of battery drain, scenario by scenario."
)


@simulate_app.command()
def main(
    bundle: Path = typer.Argument(..., help="Bundle folder (e.g. exported/smoke)."),
    hours: float = typer.Option(24.0, help="Horizon in hours."),
    profile: str = typer.Option("pixel3", help="Device profile (battery, baseline, workload)."),
    rate: float | None = typer.Option(
        None, help="Inferences per second (profile: 30, camera frames)."
    ),
    baseline_w: float | None = typer.Option(
        None, help="Device power besides inference, W (profile: 1.0)."
    ),
    capacity_mah: float | None = typer.Option(None, help="Battery capacity (from the profile)."),
    voltage_v: float | None = typer.Option(None, help="Battery voltage (from the profile)."),
    energy: str = typer.Option(
        "manifest",
        help="Energy per inference: manifest (energy_mj); latency (the manifest's latency_ms, "
        "e.g. HW-NAS-Bench's Pixel 3, x --power-w, ladders derived on it); or measured here.",
    ),
    calibration: Path | None = typer.Option(
        None,
        help="A prp-calibrate file: per-path energy measured on a device, ladders re-derived "
        "on its measured costs.",
    ),
    power_w: float | None = typer.Option(
        None,
        help="Processor power while inferring, for --energy latency or measured (profile: 1.5).",
    ),
    step_s: float = typer.Option(1.0, help="Simulation step, seconds."),
    timeline_step_s: float = typer.Option(60.0, help="Row spacing of timeline.csv, seconds."),
    start_pct: float = typer.Option(100.0, help="Battery level at the start, %."),
    real: bool = typer.Option(False, "--real", help="Also drive AdaptiveModel on real inputs."),
    real_step_s: float = typer.Option(60.0, help="Real mode: one prediction per this many s."),
    backend: str = typer.Option(
        "auto", help=f"Backend for --real/measured: {', '.join(BACKENDS)}."
    ),
    images: Path | None = typer.Option(None, help="Real mode: folder of images (.npy or files)."),
    out: Path | None = typer.Option(
        None, help="Output folder (default: runs/simulation-<bundle name>)."
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help=f"Show third-party warnings and logs here (by default they go to OUT/{SIM_LOG}).",
    ),
) -> None:
    """Battery over the horizon for worst, best, schedule, battery and energy-budget scenarios:
    battery.png, timeline.csv, summary.json and a table.

    \f
    Over 80 lines only for its typer options and their checks; the work is `run_simulation`,
    `simulate_real` and `write_outputs`."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    target = out or Path("runs") / f"simulation-{Path(bundle).resolve().name}"
    log = None if verbose else target / SIM_LOG
    with (
        one_line_errors(console, OSError, prefix="cannot write the outputs: "),
        one_line_errors(
            console,
            BundleError,
            ProfileError,
            SimulationError,
            PolicyError,
            InputError,
            CalibrationError,
        ),
        # The ExecuTorch backend (--energy measured, --real) imports torch and torchao, which
        # print warnings and cpuinfo probes while it loads.
        third_party_log(log, "prp-simulate", append=False),
    ):
        if energy not in ENERGY_SOURCES:
            raise SimulationError(f"--energy must be {', '.join(ENERGY_SOURCES)}, got {energy!r}")
        if backend not in BACKENDS:
            raise SimulationError(f"unknown backend {backend!r}; backends: {', '.join(BACKENDS)}")
        dev = get_profile(profile)
        config = SimConfig.from_profile(
            dev,
            capacity_mah=capacity_mah,
            voltage_v=voltage_v,
            baseline_w=baseline_w,
            inferences_per_s=rate,
            horizon_h=hours,
            step_s=step_s,
            start_pct=start_pct,
        )
        if real:
            try:  # check the real-mode step before any work
                replace(config, step_s=real_step_s)
            except SimulationError as e:
                raise SimulationError(f"--real-step-s: {e}") from None
        if not (math.isfinite(timeline_step_s) and timeline_step_s > 0):
            raise SimulationError(f"--timeline-step-s must be > 0, got {timeline_step_s}")
        if calibration is not None and energy != "manifest":
            raise SimulationError(
                f"--calibration gives the energies; drop --energy {energy}, or drop --calibration"
            )
        b = Bundle.load(bundle)
        watts = dev.inference_power_w if power_w is None else power_w
        sim, engine, extra = run_simulation(b, config, energy, calibration, watts, backend, console)
        real_runs = None
        if real:
            x = None if images is None else load_images(images, b.data["input"]["shape"][1:])
            console.print("real mode: driving AdaptiveModel through every scenario...")
            real_runs = simulate_real(b, sim, engine, x, real_step_s)
        summary = write_outputs(
            sim,
            target,
            timeline_step_s,
            real_runs,
            extra={
                "bundle": str(b.directory),
                "profile": dev.name,
                "profile_sources": dev.sources,
                **extra,
            },
        )
        print_summary(console, summary)
    if log is not None and log.exists():
        console.print(f"third-party warnings and logs: {log} (--verbose shows them)")


def run_simulation(
    b: Bundle,
    config: SimConfig,
    energy: str,
    calibration: Path | None,
    watts: float,
    backend: str,
    console: Console,
) -> tuple[Simulation, Backend | str, dict[str, object]]:
    """The simulation `prp-simulate` asked for, with the backend real mode then drives and what
    the summary records about the costs: the manifest's energies; a calibration's, from a file
    or from the manifest's latency x `watts` (`--energy latency`), with the ladders derived
    again on them; or latencies measured here x `watts`."""
    engine: Backend | str = backend
    extra: dict[str, object] = {}
    cal = None
    if calibration is not None:
        cal = load_calibration(calibration, b)
    elif energy == "latency":
        cal = manifest_latency_calibration(b, watts)
    if cal is not None:
        sim = simulate(
            b.data,
            config,
            energy_source=cal.energy_note if calibration is None else None,
            calibration=cal,
        )
        costs = measured_manifest(b.data, cal)
        extra["calibration"] = {
            "file": str(calibration) if calibration is not None else None,
            "backend": cal.backend,
            "device": cal.device,
            "energy_source": cal.energy_source,
            "energy_note": cal.energy_note,
            "ladder": costs.ladder,
            "manifest_ladder": costs.manifest_ladder,
            "left_ladder": costs.left,
            "joined_ladder": costs.joined,
        }
        for why in [*costs.left.values(), *costs.joined.values()]:
            console.print(f"calibration: {why}")
    elif energy == "measured":
        console.print(f"measuring latency of {len(b.ids)} paths ({backend} backend)...")
        measured = measure_energies(b, watts, backend)
        engine = measured.backend
        sim = simulate(
            b.data,
            config,
            measured.energy_mj,
            f"measured here ({measured.backend.name}: median latency x {watts:g} W)",
        )
        sim.latency_ms, sim.inference_power_w = measured.latency_ms, watts
        sim.backend = measured.backend.name
    else:
        sim = simulate(b.data, config)
    return sim, engine, extra
