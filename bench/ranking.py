"""Ranking quality of three training methods with the same epochs on the same data, as the
paper's figures 4 and 6: vanilla single-path (uniform), strict fairness only, PRP-NAS.

    python bench/ranking.py --truth ../shared/data/nasbench201/nb201_cifar10_hw.csv [--k 300]

Each method trains the default preset's NB201 supernet (analytic energy as the training cost)
for the same number of epochs, then `prp-eval` compares its estimates with NAS-Bench-201
(cifar10_test_acc) under the table's edgegpu_energy. Writes bench/results/ranking.json.
Paper-scale on a GPU: prp-train --preset paper --compute-device cuda --method {prp,fair,uniform}
then prp-eval RUN --truth ... for each.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_record  # noqa: E402
from prp.trainer.config import preset  # noqa: E402
from prp.trainer.datasets import load_dataset  # noqa: E402
from prp.trainer.evaluate import evaluate_run  # noqa: E402
from prp.trainer.report import write_front  # noqa: E402
from prp.trainer.train import Trainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--k", type=int, default=300)
    parser.add_argument("--methods", default="uniform,fair,prp")
    parser.add_argument("--cost-column", default="edgegpu_energy")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here")
    args = parser.parse_args()
    base = preset("default")
    data = load_dataset(base.dataset, val_fraction=base.val_fraction, seed=base.seed)
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for method in args.methods.split(","):
            cfg = replace(base, method=method)
            run_dir = root / f"ranking-{method}"
            t = time.perf_counter()
            trainer = Trainer(cfg, run_dir, data=data)
            front = trainer.run()
            train_s = time.perf_counter() - t
            write_front(
                run_dir,
                trainer.space,
                front,
                objective=cfg.objective,
                unit=trainer.cost.unit,
                device=trainer.cost.device,
                cost_source=trainer.cost_model.source,
            )
            t = time.perf_counter()
            r = evaluate_run(run_dir, args.truth, k=args.k, cost_column=args.cost_column)
            eval_s = time.perf_counter() - t
            record = {
                key: r[key]
                for key in (
                    "method",
                    "k",
                    "kendall_tau_b_pareto",
                    "kendall_tau_b_accuracy",
                    "hypervolume_ratio",
                    "live_architectures",
                )
            }
            record |= {
                "train_s": train_s,
                "eval_s": eval_s,
                "epochs": cfg.epochs_fair + cfg.epochs_pareto,
                "ops_left": trainer.ops_left(),
            }
            results.append(record)
            rows.append(
                [
                    method,
                    r["kendall_tau_b_pareto"],
                    r["kendall_tau_b_accuracy"],
                    r["hypervolume_ratio"],
                    train_s,
                    r["k"],
                ]
            )
            print(record, flush=True)
    out = write_record(
        "ranking", {"truth": str(args.truth), "cost_column": args.cost_column, "results": results}
    )
    print_table(
        f"Ranking quality against NAS-Bench-201 ({args.cost_column})",
        ["method", "tau-b Pareto", "tau-b accuracy", "HV ratio", "train s", "K"],
        rows,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
