"""prp-eval's two protocols side by side on one run: K random architectures and the supernet
literature's banded protocol (the most accurate of each of K equal-count bands of true accuracy,
as DYNAS and SUMNAS report), each with Kendall's tau-b of accuracy and of Pareto ranks and
Spearman's rho, for the run's shared weights, its own estimator and every free baseline.

    OMP_NUM_THREADS=1 python bench/eval_protocols.py RUN \\
        --truth ../shared/data/nasbench201/nb201_cifar10_hw.csv [--k 1000] [--bands 320]

Each free proxy is scored once per architecture (one cache for both evaluations). The run's
eval_nb201.json is left as the banded evaluation wrote it. Writes
bench/results/eval_protocols[-NAME].json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import print_table, write_record
from prp.trainer.evaluate import ProxyCache, evaluate_run, remember_free_scores

MEASURES = ("kendall_tau_b_accuracy", "kendall_tau_b_pareto", "spearman_rho_accuracy")


def figures(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each estimator's three measures in one evaluation: the shared weights, then every free
    baseline and combination (the run's own estimator among them)."""
    rows = {"weights": {m: result[m] for m in MEASURES}}
    for name, entry in result.get("baselines", {}).items():
        rows[name] = {m: entry[m] for m in MEASURES}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--truth", type=Path, required=True, help="nb201_cifar10_hw.csv")
    parser.add_argument("--k", type=int, default=1000, help="random architectures")
    parser.add_argument("--bands", type=int, default=320, help="banded architectures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None, help="record name suffix")
    args = parser.parse_args()

    cache: ProxyCache = {}
    protocols: dict[str, Any] = {}
    for protocol, k in (("random", args.k), ("banded", args.bands)):
        t = time.perf_counter()
        result = evaluate_run(
            args.run, args.truth, k=k, seed=args.seed, proxy_cache=cache, protocol=protocol
        )
        remember_free_scores(cache, result)
        protocols[protocol] = {
            "k": result["k"],
            "seconds": time.perf_counter() - t,
            "run_estimator": result["run_estimator"],
            "estimators": figures(result),
        }
    record = {"run": str(args.run), "truth": str(args.truth), "protocols": protocols}
    write_record("eval_protocols" + (f"-{args.name}" if args.name else ""), record)
    random, banded = protocols["random"]["estimators"], protocols["banded"]["estimators"]
    print_table(
        f"{args.run}: random K={protocols['random']['k']} against banded "
        f"K={protocols['banded']['k']} (accuracy tau-b / Pareto tau-b / rho)",
        ["estimator", "random", "banded"],
        [
            [name, *(" / ".join(f"{r[m]:.3f}" for m in MEASURES) for r in (random[name], row))]
            for name, row in banded.items()
        ],
    )


if __name__ == "__main__":
    main()
