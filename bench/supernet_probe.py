"""How much a trained supernet checkpoint knows, before any run uses it as `--init`.

K NB201 architectures (table rows drawn with `--seed`) are estimated with the checkpoint's
shared weights on a data set's held-out split (BN recalibrated per path, as the trainer
estimates), and ranked beside the free baselines (params, MACs, synflow, NASWOT) and their
log-rank combinations, with paired bootstrap intervals (prp.trainer.evaluate.baseline_comparison).
No label feeds any estimator; the table is the truth only.

    OMP_NUM_THREADS=1 python bench/supernet_probe.py \
        runs/pretrain/fair-c8-n2/checkpoint-epoch16.pt \
        --truth ../shared/data/nasbench201/nb201_cifar10_hw.csv --label fair-c8-n2-epoch16

Default: the default preset's space and its embedded data (whose images the pretraining by
`prp-pretrain` never saw), 500 held-out images and 4 BN batches per estimate, as
the default run. Writes bench/results/supernet_probe-<label>.json.

`--archs-from RUN/eval_nb201.json` probes the architectures a `prp-eval` record ranked instead
of a fresh draw, with the free scores that record holds (none recomputed), so a run's final
supernet and the checkpoint it started from are compared on the same architectures:

    OMP_NUM_THREADS=1 python bench/supernet_probe.py runs/default-hw/checkpoint.pt \
        --archs-from runs/default-hw/eval_nb201.json --truth ... --label default-hw-final

Beside the rankings the record splits the architectures at their median params: each half's
mean estimate and its own accuracy tau-b (does the supernet favour small paths?).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import print_table, write_record
from prp.trainer.config import preset
from prp.trainer.datasets import load_dataset
from prp.trainer.estimation.proxies import free_scores, proxy_batch
from prp.trainer.evaluate import baseline_comparison, recorded_free_scores
from prp.trainer.nb201_table import NB201Table
from prp.trainer.pareto import kendall_tau_b
from prp.trainer.runs import read_checkpoint
from prp.trainer.spaces import get_space
from prp.trainer.supernet import Supernet
from prp.trainer.train import Tensors, estimate_accuracy


def by_size(est: np.ndarray, acc: np.ndarray, params: np.ndarray) -> dict[str, dict[str, float]]:
    """The architectures split at their median params: each half's mean estimate, mean true
    accuracy and accuracy tau-b, and the estimate's tau-b with params over all."""
    big = params > np.median(params)
    halves = {"small": ~big, "big": big}
    out = {
        name: {
            "n": int(m.sum()),
            "mean_estimate": float(est[m].mean()),
            "mean_true": float(acc[m].mean()),
            "kendall_tau_b_accuracy": kendall_tau_b(est[m], acc[m]),
        }
        for name, m in halves.items()
    }
    out["all"] = {"kendall_tau_b_estimate_params": kendall_tau_b(est, params)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a run's checkpoint.pt (unpruned)")
    parser.add_argument("--truth", type=Path, required=True, help="nb201_cifar10_hw.csv")
    parser.add_argument("--label", required=True, help="names the record")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="default")
    parser.add_argument("--eval-images", type=int, default=500)
    parser.add_argument("--bn-batches", type=int, default=4)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--accuracy-column", default="cifar10_test_acc")
    parser.add_argument("--cost-column", default="edgegpu_energy")
    parser.add_argument(
        "--archs-from",
        type=Path,
        help="a prp-eval record (RUN/eval_nb201.json): probe its architectures, with its free "
        "scores, instead of drawing --k with --seed",
    )
    parser.add_argument(
        "--cells-per-stage",
        type=int,
        default=int(preset("default").space_overrides["cells_per_stage"]),
        help="the checkpoint's NB201 cells per stage (default: the default preset's, 2; 1 for "
        "runs/pretrain/fair-c8)",
    )
    args = parser.parse_args()

    base = preset("default")
    cfg = replace(
        base,
        space_overrides={**base.space_overrides, "cells_per_stage": args.cells_per_stage},
        dataset=args.dataset,
        eval_images=args.eval_images,
        bn_batches=args.bn_batches,
    )
    data = load_dataset(cfg.dataset, val_fraction=cfg.val_fraction, seed=cfg.seed)
    space = get_space(
        cfg.space, size=cfg.space_size, **cfg.space_overrides, num_classes=data.num_classes
    )
    table = NB201Table.load(args.truth)
    recorded = None
    if args.archs_from is not None:
        recorded = json.loads(args.archs_from.read_text())["architectures"]
        rows = np.array([table.index[a["arch_str"]] for a in recorded])
    else:
        rows = np.sort(np.random.default_rng(args.seed).choice(len(table), args.k, replace=False))
    paths = [space.decode(table.arch_strs[r]) for r in rows]
    acc = table.column(args.accuracy_column)[rows]
    cost = table.column(args.cost_column)[rows]

    supernet = Supernet(space)
    state = read_checkpoint(args.checkpoint)  # weights-only
    supernet.load_state_dict(state["supernet"])
    tensors = Tensors.of(data, torch.device("cpu"))
    start = time.perf_counter()
    est = np.array(
        [
            estimate_accuracy(supernet, p, tensors, cfg, torch.Generator().manual_seed(args.seed))
            for p in paths
        ]
    )
    estimated = time.perf_counter()
    if recorded is None:
        free, per_arch = free_scores(space, paths, proxy_batch(data, cfg.seed), cfg.seed)
    else:
        scores = [recorded_free_scores(a) for a in recorded]
        free, per_arch = {n: np.array([a[n] for a in scores]) for n in scores[0]}, None
    scored = time.perf_counter()
    comparison = baseline_comparison(est, free, acc, cost, args.bootstrap, args.seed)
    record = {
        "config": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "checkpoint_epoch": int(state["epoch"]),
        },
        "seconds": {
            "estimates": estimated - start,
            "proxies": scored - estimated,
            "proxies_per_architecture": per_arch,
        },
        "estimated_accuracy": {
            "mean": float(est.mean()),
            "max": float(est.max()),
            "min": float(est.min()),
            "p10_p90": [float(np.percentile(est, 10)), float(np.percentile(est, 90))],
        },
        "by_size": by_size(est, acc, free["params"]),
        **comparison,
    }
    path = write_record(f"supernet_probe-{args.label}", record)
    print_table(
        f"{args.checkpoint} (epoch {state['epoch']}) on {args.dataset}, K={len(paths)}",
        ["estimator", "acc tau-b", "Pareto tau-b"],
        [
            [name, e["kendall_tau_b_accuracy"], e["kendall_tau_b_pareto"]]
            for name, e in comparison["estimators"].items()
        ],
    )
    print_table(
        "Paired differences (95 % bootstrap interval)",
        ["pair", "difference", "95 %"],
        [
            [pair, d["difference"], "{:.3f}..{:.3f}".format(*d["ci95"])]
            for pair, d in comparison["paired"].items()
        ],
    )
    sizes = record["by_size"]
    print_table(
        "The architectures split at their median params",
        ["half", "mean estimate", "mean true accuracy", "acc tau-b within"],
        [
            [h, *(sizes[h][k] for k in ("mean_estimate", "mean_true", "kendall_tau_b_accuracy"))]
            for h in ("small", "big")
        ],
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
