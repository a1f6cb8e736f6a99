"""Self-calibration (issue 32): what measuring costs a call, and measured against manifest costs.

    python bench/calibration.py [BUNDLE] [--label NAME] [--seconds 45] [--pairs 4000]

For each backend (ONNX Runtime, ExecuTorch), on one image at a time:
- overhead: what `AdaptiveModel` adds per call by timing it into its `Recorder`, two ways:
  (a) the recorder's own cost (two clock reads and `Recorder.record`, no meter), timed alone
  over 200,000 calls, against the median call of the cheapest path (the worst case);
  (b) `predict` of two models on the same loaded backend, one measuring and one not, called in
  turn (`--pairs` calls each, which goes first alternating), the median of the paired
  differences against the median call: a check that `predict` adds nothing else (on this
  shared 2-core machine the two medians alone move by a few % between runs);
- calibration: `calibrate_model` within `--seconds` after loading, each path's median latency
  and energy (latency x a stated power where no meter is readable, as here), Kendall tau-b
  against the manifest's `energy_mj` / `latency_ms`, and the ladder on measured cost.
Writes `calibration.<label>` of bench/results/calibration.json (other labels kept).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, print_table, update_record
from prp.runtime import AdaptiveModel, Bundle, PushedBattery
from prp.runtime.calibrate import calibrate_model
from prp.runtime.calibration import rank_agreement
from prp.runtime.measured_costs import measured_manifest
from prp.runtime.measuring import Recorder
from prp.runtime.policies import FixedPolicy

BACKENDS = ("onnxruntime", "executorch")


def recorder_ns(calls: int = 200_000) -> float:
    """ns per call of what `AdaptiveModel._run` adds: two perf_counter reads and a record."""
    rec = Recorder(["a", "b"], warmup_calls=3)
    clock = time.perf_counter
    best = float("inf")
    for _ in range(3):
        t0 = clock()
        for _ in range(calls):
            start = clock()
            rec.record("a", clock() - start, 1)
        best = min(best, (clock() - t0) / calls)
    empty = float("inf")
    for _ in range(3):  # the loop alone, to take off
        t0 = clock()
        for _ in range(calls):
            pass
        empty = min(empty, (clock() - t0) / calls)
    return (best - empty) * 1e9


def predict_overhead(bundle: Bundle, backend: str, pairs: int) -> dict[str, Any]:
    battery = PushedBattery(None)
    on = AdaptiveModel(bundle, battery=battery, backend=backend, calibration=None)
    off = AdaptiveModel(
        bundle, battery=battery, backend=on.backend, calibration=None, measure=False
    )
    x = np.zeros((1, *on.input_shape[1:], on.input_shape[0]), dtype=np.uint8)
    for model in (on, off):
        for _ in range(50):
            model.predict(x)
    times = {"on": np.empty(pairs), "off": np.empty(pairs)}
    clock = time.perf_counter
    for k in range(pairs):  # one call each, in turn, the first alternating
        for name, model in (("on", on), ("off", off)) if k % 2 == 0 else (("off", off), ("on", on)):
            t0 = clock()
            model.predict(x)
            times[name][k] = clock() - t0
    paired_us = float(np.median(times["on"] - times["off"])) * 1e6
    off_us = float(np.median(times["off"])) * 1e6
    return {
        "path": on.current,
        "pairs": pairs,
        "predict_not_measuring_us": off_us,
        "predict_measuring_us": float(np.median(times["on"])) * 1e6,
        "paired_median_difference_us": paired_us,
        "paired_difference_pct": 100 * paired_us / off_us,
    }


def calibrate(bundle: Bundle, backend: str, seconds: float) -> dict[str, Any]:
    t0 = time.monotonic()
    model = AdaptiveModel(
        bundle,
        policy=FixedPolicy(bundle.ids[0]),
        battery=PushedBattery(None),
        backend=backend,
        calibration=None,
    )
    loaded = time.monotonic() - t0
    cal = calibrate_model(model, seconds)
    wall = time.monotonic() - t0
    measured = measured_manifest(bundle.data, cal)
    return {
        "load_s": loaded,
        "wall_s": wall,
        "energy_source": cal.energy_source,
        "energy_note": cal.energy_note,
        "paths": {
            pid: {
                "accuracy": bundle.path(pid)["accuracy"],
                "manifest_energy_mj": bundle.path(pid).get("energy_mj"),
                "manifest_latency_ms": bundle.path(pid).get("latency_ms"),
                "latency_ms": c.latency_ms,
                "p25_ms": c.p25_ms,
                "p75_ms": c.p75_ms,
                "samples": c.samples,
                "energy_mj": c.energy_mj,
            }
            for pid, c in cal.paths.items()
        },
        "tau_b": rank_agreement(cal, bundle.data),
        "ladder": measured.ladder,
        "manifest_ladder": measured.manifest_ladder,
        "left_ladder": measured.left,
        "joined_ladder": measured.joined,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", nargs="?", type=Path, default=ROOT / "exported" / "smoke")
    parser.add_argument("--label", help="record entry (default: the bundle folder's name)")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--pairs", type=int, default=4000)
    args = parser.parse_args()
    bundle = Bundle.load(args.bundle)
    label = args.label or args.bundle.resolve().name
    ns = recorder_ns()
    part: dict[str, Any] = {"bundle": str(args.bundle), "recorder_ns_per_call": ns, "backends": {}}
    rows = []
    for backend in BACKENDS:
        cal = calibrate(bundle, backend, args.seconds)
        overhead = predict_overhead(bundle, backend, args.pairs)
        cheapest_ms = min(p["latency_ms"] for p in cal["paths"].values())
        overhead["recorder_share_of_cheapest_call_pct"] = 100 * ns * 1e-6 / cheapest_ms
        part["backends"][backend] = {"calibration": cal, "overhead": overhead}
        tau = cal["tau_b"]
        rows.append(
            [
                backend,
                f"{cal['wall_s']:.1f} ({cal['load_s']:.1f} load)",
                " / ".join(f"{p['latency_ms']:.3g}" for p in cal["paths"].values()),
                "-" if tau["energy_mj"] is None else f"{tau['energy_mj']:+.2f}",
                "-" if tau["latency_ms"] is None else f"{tau['latency_ms']:+.2f}",
                ", ".join(cal["ladder"]),
                f"{overhead['recorder_share_of_cheapest_call_pct']:.3f}",
                f"{overhead['paired_median_difference_us']:.2f} us "
                f"({overhead['paired_difference_pct']:.2f} %)",
            ]
        )
    print_table(
        f"{label}: self-calibration (recorder {ns:.0f} ns a call)",
        [
            "backend",
            "calibration s",
            "median ms per path",
            "tau-b energy",
            "tau-b latency",
            "ladder on measured cost",
            "recorder % of cheapest call",
            "predict on - off (paired)",
        ],
        rows,
    )
    print(f"wrote {update_record('calibration', (label,), part)}")


if __name__ == "__main__":
    main()
