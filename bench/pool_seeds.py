"""Seeds pooled: the mean paired difference of a run's estimator from a baseline over several
`bench/ranking.py` records (one per seed), with an approximate 95 % interval.

    python bench/pool_seeds.py aaf-seed0 aaf-seed1 aaf-seed2 --against all-free --name pooled-aaf

Each record holds, per seed, the paired bootstrap interval of the difference (the run's
estimator minus the baseline, on that seed's 1,000 architectures), not the per-architecture
scores, so the pooled interval is a normal approximation: each seed's standard error is its
interval's width / (2 x 1.96), the seeds are independent, and the mean's standard error is the
root of the summed squares over the number of seeds. A bootstrap over the pooled architectures
would need the evaluation files, which the records do not keep.
Writes bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from common import RESULTS, print_table, write_record
from scipy.stats import norm

Z95 = float(norm.ppf(0.975))  # the standard normal's 97.5 % quantile
METRICS = ("accuracy", "pareto")


def pool(diffs: list[float], intervals: list[tuple[float, float]]) -> dict[str, Any]:
    """The mean of per-seed differences and its approximate 95 % interval (module docstring)."""
    if not diffs or len(diffs) != len(intervals):
        raise ValueError("give one interval per difference, at least one")
    ses = [(hi - lo) / (2 * Z95) for lo, hi in intervals]
    mean = sum(diffs) / len(diffs)
    se = math.sqrt(sum(s * s for s in ses)) / len(diffs)
    return {"mean": mean, "ci95": [mean - Z95 * se, mean + Z95 * se], "se": se}


def seed_figures(record: dict[str, Any], method: str, against: str) -> dict[str, Any]:
    """One record's figures for the run's estimator of `method` against `against`."""
    result = next((r for r in record["results"] if r["method"] == method), None)
    if result is None:
        raise ValueError(f"{record['benchmark']}: no method {method!r} in its results")
    verdict = result["run_estimator_verdict"]
    if against not in verdict["against"]:
        raise ValueError(
            f"{record['benchmark']}: the run's estimator was not paired with {against}"
        )
    base = result["baselines"][against]
    return {
        "record": record["benchmark"],
        "seed": record.get("seed"),
        "estimator": verdict["estimator"],
        "tau_b": {m: verdict[f"kendall_tau_b_{m}"] for m in METRICS},
        "baseline_tau_b": {m: base[f"kendall_tau_b_{m}"] for m in METRICS},
        "difference": {
            m: {
                "diff": verdict["against"][against][m]["diff"],
                "ci95": verdict["against"][against][m]["ci95"],
            }
            for m in METRICS
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("records", nargs="+", help="bench/results record names, one per seed")
    parser.add_argument("--against", default="all-free", help="the baseline (default all-free)")
    parser.add_argument("--method", default="prp", help="the ranking.py method (default prp)")
    parser.add_argument("--name", required=True, help="the record to write")
    args = parser.parse_args()
    seeds = []
    for name in args.records:
        path = RESULTS / f"{name}.json"
        if not path.is_file():
            parser.error(f"no record {path}; give names of bench/results/*.json")
        try:
            seeds.append(seed_figures(json.loads(path.read_text()), args.method, args.against))
        except ValueError as e:
            parser.error(str(e))
    pooled = {
        m: pool(
            [s["difference"][m]["diff"] for s in seeds],
            [tuple(s["difference"][m]["ci95"]) for s in seeds],
        )
        for m in METRICS
    }
    means = {
        "tau_b": {m: sum(s["tau_b"][m] for s in seeds) / len(seeds) for m in METRICS},
        "baseline_tau_b": {
            m: sum(s["baseline_tau_b"][m] for s in seeds) / len(seeds) for m in METRICS
        },
    }
    record = {
        "against": args.against,
        "method": args.method,
        "how": "normal approximation from each seed's paired bootstrap interval (docstring)",
        "seeds": seeds,
        "mean": means,
        "pooled_difference": pooled,
    }
    path = write_record(args.name, record)
    rows = [
        [
            s["record"],
            *(f"{s['tau_b'][m]:.3f} / {s['baseline_tau_b'][m]:.3f}" for m in METRICS),
            *(
                f"{s['difference'][m]['diff']:+.3f} ({s['difference'][m]['ci95'][0]:+.3f} to "
                f"{s['difference'][m]['ci95'][1]:+.3f})"
                for m in METRICS
            ),
        ]
        for s in seeds
    ]
    rows.append(
        [
            "mean / pooled",
            *(f"{means['tau_b'][m]:.4f} / {means['baseline_tau_b'][m]:.4f}" for m in METRICS),
            *(
                f"{pooled[m]['mean']:+.3f} ({pooled[m]['ci95'][0]:+.3f} to "
                f"{pooled[m]['ci95'][1]:+.3f})"
                for m in METRICS
            ),
        ]
    )
    print_table(
        f"the run's estimator against {args.against}, seeds pooled",
        [
            "record",
            "accuracy tau-b (run / base)",
            "Pareto tau-b (run / base)",
            "accuracy diff",
            "Pareto diff",
        ],
        rows,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
