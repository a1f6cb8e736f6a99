"""Battery-drain simulation: battery saved and average accuracy per scenario, and simulation speed.

    python bench/simulate.py [BUNDLE] [--truth ../shared/data/nasbench201/nb201_cifar10_hw.csv]

Two bundles side by side under the same Pixel-3-like profile (runtime/profiles.py): BUNDLE
(default `exported/default/`, its own energies and test accuracies) and, as a reference with a
spread front, five architectures along NAS-Bench-201's true Pareto front of (cifar10_test_acc,
edgegpu_energy) from HW-NAS-Bench: the most accurate, the cheapest above twice chance accuracy
and three between them evenly in energy, priced with their measured Edge GPU energy. The
reference needs no training: it shows what the switching policies give when the paths really
trade accuracy for energy, as in the paper's section 4.4 (34 % battery saved at 75.2 % average
accuracy there).

Speed: the arithmetic mode (asks the policy only where its answer can change) against asking at
every one of the 86,400 steps, both over 24 h at 1 s, median of --reps runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import print_table, write_record
from prp.runtime.bundle import Bundle
from prp.runtime.policies import battery_levels_for
from prp.runtime.profiles import get_profile
from prp.runtime.simulate import SimConfig, simulate, summarise
from prp.trainer.nb201_table import NB201Table
from prp.trainer.pareto import pareto_ranks
from prp.trainer.pruning import MAXIMIZE

ROOT = Path(__file__).resolve().parent.parent
PAPER = {"battery_saved_pct": 34.0, "avg_accuracy_pct": 75.2}


def nb201_front_manifest(truth: Path, s: int = 5) -> dict[str, Any]:
    """A manifest-shaped dict of `s` NB201 architectures along the true accuracy/energy front."""
    table = NB201Table.load(truth)
    acc = table.column("cifar10_test_acc")
    energy = table.column("edgegpu_energy")
    front = np.flatnonzero(pareto_ranks(np.column_stack([acc, energy]), MAXIMIZE) == 1)
    # The front's cheapest member is a cell that cuts the input off (10 % on 10 classes): no app
    # would ship it, so members at or below twice chance accuracy are left out.
    front = front[acc[front] > 20.0]
    front = front[np.argsort(-acc[front])]  # most accurate first
    targets = np.linspace(energy[front].max(), energy[front].min(), s)
    chosen: list[int] = []
    for t in targets:  # the front member nearest each energy target, each taken once
        rest = [i for i in front if i not in chosen]
        chosen.append(min(rest, key=lambda i: abs(energy[i] - t)))
    chosen.sort(key=lambda i: -acc[i])
    ids = [f"path_{i}" for i in range(s)]
    paths = [
        {
            "id": pid,
            "method": pid,
            "arch_str": table.arch_strs[row],
            "accuracy": float(acc[row]),
            "test_accuracy": float(acc[row]),
            "energy_mj": float(energy[row]),
        }
        for pid, row in zip(ids, chosen, strict=True)
    ]
    return {
        "paths": paths,
        "costs": {"energy": {"unit": "mJ", "device": "edgegpu (HW-NAS-Bench, measured)"}},
        "policies": {
            "default": "battery",
            "battery": {"hysteresis_pct": 3.0, "levels": battery_levels_for(ids)},
            "schedule": {"switch_every_h": 5.0, "order": ids},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", nargs="?", type=Path, default=ROOT / "exported" / "default")
    parser.add_argument(
        "--truth",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar10_hw.csv",
    )
    parser.add_argument("--profile", default="pixel3")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    profile = get_profile(args.profile)
    config = SimConfig.from_profile(profile)
    # A second workload closer to the paper's figure 8, where the phone lasted the day: screen
    # off, the app classifying 5 images a second, the device drawing 0.3 W besides (assumptions).
    workloads = {
        "profile": config,
        "screen-off": SimConfig.from_profile(profile, baseline_w=0.3, inferences_per_s=5.0),
    }
    manifests = {"bundle": Bundle.load(args.bundle).data}
    if args.truth.exists():
        manifests["nb201-true-front"] = nb201_front_manifest(args.truth)
    else:
        print(f"no {args.truth}: the NAS-Bench-201 reference is left out")

    records: dict[str, Any] = {}
    rows = []
    for workload, cfg in workloads.items():
        for label, manifest in manifests.items():
            summary = summarise(simulate(manifest, cfg))
            records[f"{label}/{workload}"] = {
                "workload": {"baseline_w": cfg.baseline_w, "rate_per_s": cfg.inferences_per_s},
                "paths": [
                    {k: p.get(k) for k in ("id", "arch_str", "ops", "test_accuracy", "energy_mj")}
                    for p in manifest["paths"]
                ],
                "scenarios": [
                    {k: v for k, v in sc.items() if k != "switch_log"}
                    for sc in summary["scenarios"]
                ],
            }
            for sc in summary["scenarios"]:
                rows.append(
                    [
                        f"{label}, {cfg.baseline_w:g} W + {cfg.inferences_per_s:g}/s",
                        sc["name"],
                        sc["empty_at_h"] if sc["empty_at_h"] is not None else "-",
                        sc["battery_left_pct"],
                        sc["battery_saved_vs_worst_pct"],
                        sc["avg_test_accuracy_pct"],
                        sc["switches"],
                        sc["inference_share_pct"],
                    ]
                )

    # Speed: the arithmetic mode against asking the policy at every step, on the bundle.
    bundle = manifests["bundle"]
    fast, slow = [], []
    for _ in range(args.reps):
        t = time.perf_counter()
        simulate(bundle, config)
        fast.append(time.perf_counter() - t)
        t = time.perf_counter()
        simulate(bundle, config, every_step=True)
        slow.append(time.perf_counter() - t)
    speed = {
        "scenarios": len(records["bundle/profile"]["scenarios"]),
        "steps_per_scenario": config.steps,
        "arithmetic_s": statistics.median(fast),
        "every_step_s": statistics.median(slow),
    }
    out = write_record(
        "simulate",
        {
            "profile": {"name": profile.name, "sources": profile.sources},
            "config": {
                "capacity_mah": config.capacity_mah,
                "voltage_v": config.voltage_v,
                "baseline_w": config.baseline_w,
                "inferences_per_s": config.inferences_per_s,
                "horizon_h": config.horizon_h,
                "step_s": config.step_s,
            },
            "paper": PAPER,
            "bundles": records,
            "speed": speed,
        },
    )
    print_table(
        f"Simulated battery, {profile.name} profile, {config.horizon_h:g} h at {config.step_s:g} s",
        [
            "bundle",
            "scenario",
            "empty at h",
            "left at 24 h %",
            "saved vs worst %",
            "avg acc %",
            "switches",
            "inference share %",
        ],
        rows,
    )
    print_table(
        "Simulation speed (median)",
        ["scenarios x steps", "arithmetic s", "every step s", "speed-up"],
        [
            [
                f"{speed['scenarios']} x {speed['steps_per_scenario']:,}",
                speed["arithmetic_s"],
                speed["every_step_s"],
                speed["every_step_s"] / speed["arithmetic_s"],
            ]
        ],
    )
    saved, acc = PAPER["battery_saved_pct"], PAPER["avg_accuracy_pct"]
    print(f"paper (section 4.4): {saved} % battery saved at {acc} % average accuracy")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
