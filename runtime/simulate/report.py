"""What a simulation produces: summary.json, timeline.csv, battery.png and the terminal tables."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ..files import write_bytes_atomic
from .config import ACCURACY_KEY, SimulationError
from .engine import Simulation
from .real import RealRun

DEFINITIONS = {
    "empty_at_h": "hours until the battery reached 0 % (device off); null if it lasted",
    "battery_left_pct": "battery left at the end of the horizon (0 if it emptied)",
    "battery_saved_vs_worst_pct": (
        "(battery used by worst - battery used by this scenario) / battery used by worst x 100, "
        "both measured over the same window: from the start until the horizon or until the "
        "battery of either of the two emptied, whichever came first (saved_window_h)"
    ),
    "avg_test_accuracy_pct": (
        f"the manifest's `{ACCURACY_KEY}` of the path in use, time-weighted over the time the "
        "device was on"
    ),
    "switches": "path changes after the initial choice",
    "inference_share_pct": "inference energy / all energy drawn (baseline + inference) x 100",
}


def summarise(sim: Simulation, real: Sequence[RealRun] | None = None) -> dict[str, Any]:
    """Everything `summary.json` holds. Over 80 lines because it is one literal: the record's
    fields, each computed where it is named, in the order the file lists them."""
    cfg = sim.config
    worst = sim.run("worst")
    scenarios = []
    for r in sim.runs:
        window_s = min(worst.on_s, r.on_s)
        worst_used = worst.energy_j[0] - worst.energy_at(window_s)
        used = r.energy_j[0] - r.energy_at(window_s)
        drawn = r.drawn_j
        scenarios.append(
            {
                "name": r.name,
                "description": r.description,
                "policy": r.policy,
                "lasted_horizon": r.lasted,
                "empty_at_h": None if r.died_s is None else r.died_s / 3600.0,
                "battery_left_pct": float(r.battery_pct[-1]),
                "battery_used_pct": 100.0 * drawn / cfg.capacity_j,
                "battery_saved_vs_worst_pct": (
                    100.0 * (worst_used - used) / worst_used if worst_used > 0 else None
                ),
                "saved_window_h": window_s / 3600.0,
                "avg_test_accuracy_pct": r.mean_accuracy(sim.accuracy),
                "switches": r.switch_count,
                "switch_log": [
                    {
                        "at_h": s.at_h,
                        "from": s.from_path,
                        "to": s.to_path,
                        "battery_pct": s.battery_pct,
                        "reason": s.reason,
                    }
                    for s in r.switches
                ],
                "hours_on_path": r.hours_on_path(),
                "energy_drawn_j": drawn,
                "baseline_j": r.baseline_j,
                "inference_j": r.inference_j,
                "inference_share_pct": 100.0 * r.inference_j / drawn if drawn > 0 else 0.0,
                "policy_calls": r.policy_calls,
            }
        )
    summary: dict[str, Any] = {
        "config": {
            "capacity_mah": cfg.capacity_mah,
            "voltage_v": cfg.voltage_v,
            "capacity_j": cfg.capacity_j,
            "baseline_w": cfg.baseline_w,
            "inferences_per_s": cfg.inferences_per_s,
            "horizon_h": cfg.horizon_h,
            "step_s": cfg.step_s,
            "start_pct": cfg.start_pct,
        },
        "energy_source": sim.energy_source,
        "accuracy_source": ACCURACY_KEY,
        "paths": [
            {
                "id": pid,
                ACCURACY_KEY: sim.accuracy[pid],
                "energy_mj": e,
                "latency_ms": None if sim.latency_ms is None else sim.latency_ms[pid],
                "inference_w": cfg.inference_w(e),
                "power_w": cfg.baseline_w + cfg.inference_w(e),
            }
            for pid, e in sim.energy_mj.items()
        ],
        "definitions": DEFINITIONS,
        "scenarios": scenarios,
        "steps_per_scenario": cfg.steps,
        "simulation_seconds": sim.seconds,
        "real": None,
    }
    if sim.inference_power_w is not None:
        summary["inference_power_w"] = sim.inference_power_w
        summary["measured_backend"] = sim.backend
    if real:
        summary["real"] = {
            "backend": real[0].backend,
            "step_s": real[0].step_s,
            "all_agree": all(r.switches_match and r.agreement_pct == 100.0 for r in real),
            "scenarios": [
                {
                    "name": r.name,
                    "predictions": r.predictions,
                    "switches": r.switch_count,
                    "arithmetic_switches": r.arithmetic.switch_count,
                    "switches_match": r.switches_match,
                    "step_agreement_pct": r.agreement_pct,
                    "empty_at_h": None if r.died_s is None else r.died_s / 3600.0,
                    "arithmetic_empty_at_h": (
                        None if r.arithmetic.died_s is None else r.arithmetic.died_s / 3600.0
                    ),
                    "energy_drawn_j": r.drawn_j,
                    "inference_j": r.inference_j,
                }
                for r in real
            ],
        }
    return summary


def timeline_csv(sim: Simulation, every_s: float = 60.0) -> str:
    """time_h, then per scenario battery_pct and path id (empty once the battery is empty)."""
    cfg = sim.config
    if not (math.isfinite(every_s) and every_s > 0):
        raise SimulationError(f"timeline step must be a number > 0 s, got {every_s}")
    count = int(math.floor(cfg.horizon_s / every_s + 1e-9)) + 1
    times = np.arange(count) * every_s
    k = np.minimum(np.rint(times / cfg.step_s).astype(np.int64), cfg.steps)
    k_path = np.minimum(k, cfg.steps - 1)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["time_h"]
    for r in sim.runs:
        header += [f"{r.name}_battery_pct", f"{r.name}_path"]
    writer.writerow(header)
    columns = []
    for r in sim.runs:
        pct = r.battery_pct[k]
        idx = r.path_index[k_path]
        # At the very end (k == steps) there is no next step: show the last path while on.
        names = [r.ids[i] if i >= 0 and p > 0 else "" for i, p in zip(idx, pct, strict=True)]
        columns.append((pct, names))
    for row, t in enumerate(times):
        line = [f"{t / 3600.0:.6f}"]
        for pct, names in columns:
            line += [f"{pct[row]:.4f}", names[row]]
        writer.writerow(line)
    return buf.getvalue()


def plot_png(sim: Simulation) -> bytes:
    """Battery % over hours, one line per scenario (the paper's figure 8). Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = sim.config
    stride = max(1, cfg.steps // 4000)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    hours = np.arange(cfg.steps + 1) * cfg.step_s / 3600.0
    styles = (
        "-",
        "--",
        "-.",
        ":",
        (0, (5, 1, 1, 1)),
    )  # scenarios often coincide: keep each visible
    for i, r in enumerate(sim.runs):
        label = r.name if r.died_s is None else f"{r.name} (empty at {r.died_s / 3600:.1f} h)"
        ax.plot(
            hours[::stride],
            r.battery_pct[::stride],
            label=label,
            linestyle=styles[i % len(styles)],
            linewidth=2.2 - 0.3 * (i % len(styles)),
        )
    ax.set_xlim(0, cfg.horizon_h)
    ax.set_ylim(0, 100)
    ax.set_xlabel("hours")
    ax.set_ylabel("battery (%)")
    ax.set_title(
        f"{cfg.capacity_mah:,.0f} mAh, baseline {cfg.baseline_w:g} W, "
        f"{cfg.inferences_per_s:g} inferences/s; energy: {sim.energy_source}",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_outputs(
    sim: Simulation,
    out: Path,
    timeline_every_s: float = 60.0,
    real: Sequence[RealRun] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """battery.png (unless matplotlib is missing), timeline.csv and summary.json, each written
    to a temporary file and renamed into place. Returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(sim, real)
    summary.update(extra or {})
    files: dict[str, str | None] = {}
    write_bytes_atomic(out / "timeline.csv", timeline_csv(sim, timeline_every_s).encode())
    files["timeline"] = str(out / "timeline.csv")
    try:
        png = plot_png(sim)
    except ImportError:
        files["plot"] = None
        summary["plot_note"] = (
            "matplotlib is not installed: no battery.png (pip install matplotlib)"
        )
    else:
        write_bytes_atomic(out / "battery.png", png)
        files["plot"] = str(out / "battery.png")
    files["summary"] = str(out / "summary.json")
    summary["files"] = files
    summary["timeline_step_s"] = timeline_every_s
    write_bytes_atomic(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def _num(v: float | None, fmt: str, none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def _share(pct: float) -> str:
    return f"{pct:.3g}" if pct < 1 else f"{pct:.2f}"


def print_summary(console: Console, summary: Mapping[str, Any]) -> None:
    cfg = summary["config"]
    horizon = cfg["horizon_h"]
    table = Table(
        title=(
            f"{horizon:g} h at {cfg['step_s']:g} s: {cfg['capacity_mah']:,.0f} mAh x "
            f"{cfg['voltage_v']:g} V = {cfg['capacity_j']:,.0f} J, baseline {cfg['baseline_w']:g}"
            f" W, {cfg['inferences_per_s']:g} inferences/s"
        ),
        caption=(
            f"energy per inference: {summary['energy_source']}; accuracy: "
            f"{summary['accuracy_source']} (time-weighted); saved vs worst: battery used until "
            f"{horizon:g} h or until either emptied"
        ),
    )
    table.add_column("scenario", no_wrap=True)
    table.add_column("policy", no_wrap=True)
    for col in (
        "empty at (h)",
        f"left at {horizon:g} h (%)",
        "saved vs worst (%)",
        "avg test acc (%)",
        "switches",
        "inference share (%)",
    ):
        table.add_column(col, justify="right")
    for s in summary["scenarios"]:
        table.add_row(
            s["name"],
            s["description"],
            _num(s["empty_at_h"], ".2f", "lasted"),
            f"{s['battery_left_pct']:.2f}",
            _num(s["battery_saved_vs_worst_pct"], "+.3f"),
            f"{s['avg_test_accuracy_pct']:.2f}",
            str(s["switches"]),
            _share(s["inference_share_pct"]),
        )
    console.print(table)
    paths = ", ".join(
        f"{p['id']} {p['energy_mj']:.4g} mJ ({p['inference_w'] * 1e3:.3g} mW)"
        for p in summary["paths"]
    )
    console.print(f"paths (energy per inference, inference power at this rate): {paths}")
    console.print(
        f"simulated {len(summary['scenarios'])} scenarios x {summary['steps_per_scenario']:,} "
        f"steps in {summary['simulation_seconds'] * 1e3:.1f} ms"
    )
    real = summary.get("real")
    if real:
        t = Table(
            title=f"real mode: AdaptiveModel on {real['backend']}, one image per "
            f"{real['step_s']:g} s"
        )
        for col in (
            "scenario",
            "predictions",
            "switches (model)",
            "switches (arithmetic)",
            "switches match",
            "same path (% of steps)",
            "empty at (h)",
        ):
            t.add_column(col)
        for r in real["scenarios"]:
            t.add_row(
                r["name"],
                str(r["predictions"]),
                str(r["switches"]),
                str(r["arithmetic_switches"]),
                "yes" if r["switches_match"] else "[red]NO[/red]",
                f"{r['step_agreement_pct']:.2f}",
                _num(r["empty_at_h"], ".2f", "lasted"),
            )
        console.print(t)
    for line in (summary.get("plot_note"),):
        if line:
            console.print(f"[yellow]note:[/yellow] {line}")
    files = summary.get("files", {})
    console.print("wrote " + ", ".join(v for v in files.values() if v))
