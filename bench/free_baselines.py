"""Free baselines alone (no supernet, no labels) on K random NB201 architectures.

The figures any trained estimator must beat: parameter count, MACs (the space's own op
tracing), synflow, NASWOT, AZ-NAS's three scores, ZiCo and jacov (freshly initialised weights,
trainer/estimation/proxies.py) and their log-rank combinations `free`, `az-nas` and `all-free`,
each as the accuracy estimate: accuracy tau-b against the table's
accuracies, and Pareto tau-b with the table's cost column, with bootstrap intervals.

    OMP_NUM_THREADS=1 python bench/free_baselines.py \
        --truth ../shared/data/nasbench201/nb201_cifar10_hw.csv --k 1000

The default preset's space (nb201, 8 channels, 2 cells per stage since 2026-12-03; the record
of 2026-12-02 is of the earlier 1-cell space); NASWOT reads 64 train images of the embedded
default data. Writes bench/results/free_baselines.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import print_table, write_record
from prp.trainer.config import preset
from prp.trainer.datasets import load_dataset
from prp.trainer.estimation.proxies import free_scores, proxy_batch
from prp.trainer.evaluate import baseline_comparison
from prp.trainer.nb201_table import NB201Table
from prp.trainer.spaces import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, required=True, help="nb201_cifar10_hw.csv")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--accuracy-column", default="cifar10_test_acc")
    parser.add_argument("--cost-column", default="edgegpu_energy")
    parser.add_argument("--name", default="free_baselines")
    args = parser.parse_args()

    cfg = preset("default")
    space = get_space(cfg.space, size=cfg.space_size, **cfg.space_overrides)
    table = NB201Table.load(args.truth)
    rows = np.sort(np.random.default_rng(args.seed).choice(len(table), args.k, replace=False))
    paths = [space.decode(table.arch_strs[r]) for r in rows]
    acc = table.column(args.accuracy_column)[rows]
    cost = table.column(args.cost_column)[rows]
    data = load_dataset(cfg.dataset, val_fraction=cfg.val_fraction, seed=cfg.seed)
    start = time.perf_counter()
    scores, seconds = free_scores(space, paths, proxy_batch(data, args.seed), args.seed)
    scored = time.perf_counter()
    comparison = baseline_comparison(None, scores, acc, cost, args.bootstrap, args.seed)
    record = {
        "config": {**vars(args), "truth": str(args.truth), "space": space.describe()},
        "seconds": {"scores": scored - start, "per_architecture": seconds},
        **comparison,
    }
    path = write_record(args.name, record)
    print_table(
        f"Free baselines, K={len(paths)} (seed {args.seed}): tau-b against {args.accuracy_column}"
        f" / Pareto ranks with {args.cost_column}",
        ["estimator", "acc tau-b", "acc 95 %", "acc rho", "Pareto tau-b", "Pareto 95 %"],
        [
            [
                name,
                e["kendall_tau_b_accuracy"],
                "{:.3f}..{:.3f}".format(*comparison["ci95"][f"{name} accuracy"]),
                e["spearman_rho_accuracy"],
                e["kendall_tau_b_pareto"],
                "{:.3f}..{:.3f}".format(*comparison["ci95"][f"{name} pareto"]),
            ]
            for name, e in comparison["estimators"].items()
        ],
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
