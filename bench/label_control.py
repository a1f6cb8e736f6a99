"""Controls for PRP's alpha estimator: alpha fitted alone to the same labels, no joint training.

    python bench/label_control.py runs/ranking-truth/seed0 [--self-pool 96,384]

Reads a `bench/ranking.py --methods fair,prp-truth --out DIR` folder (one seed) whose runs were
evaluated on the same architectures. alpha is fitted *alone* (no supernet weights; the
trainer's loss, optimiser and number of steps, N_p x alpha_steps) to the Pareto ranks of a set
of labelled paths, priced by the training cost model, then scores those architectures:
- table labels: the NB201 accuracies of exactly the paths that fed the PRP run trained with
  `--truth` (the paper's NB201 setting). The baselines never see these labels, so this asks
  whether PRP's joint training adds anything beyond them. The control sees every label from
  its first step, PRP's alpha epoch by epoch: the control is, if anything, favoured.
- self labels: the strict-fairness run's own shared-weight estimates of N other unseen paths
  (`--self-pool`): does an additive P_s fitted to a supernet's estimates rank better than the
  estimates themselves (alpha as a smoother), with no label the baselines lack?
Each fitted P_s is reported alone and averaged with the fairness run's shared-weight ranking
(the combination `prp-eval` reports as "combined" for PRP), next to PRP's own estimators.
Writes bench/results/label_control[-seedN].json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_record  # noqa: E402
from prp.trainer.benchmarks import NB201Table  # noqa: E402
from prp.trainer.config import TrainConfig  # noqa: E402
from prp.trainer.costs import get_cost_model, price_supernet  # noqa: E402
from prp.trainer.evaluate import (  # noqa: E402
    EVAL_FILE,
    alpha_estimators,
    estimate_paths,
    unseen_live_pool,
)
from prp.trainer.export import load_run  # noqa: E402
from prp.trainer.losses import alpha_loss  # noqa: E402
from prp.trainer.pareto import kendall_tau_b, pareto_ranks  # noqa: E402
from prp.trainer.pruning import MAXIMIZE  # noqa: E402
from prp.trainer.runs import read_json  # noqa: E402
from prp.trainer.spaces import SearchSpace  # noqa: E402
from prp.trainer.supernet import Supernet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRUTH = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar10_hw.csv"


def fit_alpha_alone(
    space: SearchSpace, cfg: TrainConfig, paths: list[tuple[int, ...]], acc: np.ndarray, seed: int
) -> Supernet:
    """A fresh, unpruned supernet whose alpha alone is fitted, as stage 2 fits it, to the Pareto
    ranks of `paths` (accuracy `acc`, cost by the run's training cost model)."""
    torch.manual_seed(seed)
    model = Supernet(space)
    cost_model = get_cost_model(cfg.resolved_cost_model(), cfg.objective, cfg.cost_device)
    cost = price_supernet(model, cost_model).many(paths)
    ranks = pareto_ranks(np.column_stack([acc, cost]), MAXIMIZE)
    opt = torch.optim.Adam([model.alpha], lr=cfg.alpha_lr, betas=(0.5, 0.999))
    top_n = min(cfg.top_n, len(paths))
    for _ in range(cfg.alpha_steps * cfg.epochs_pareto):
        opt.zero_grad(set_to_none=True)
        loss, _, _ = alpha_loss(model, paths, ranks, cfg.rank_temperature, cfg.hinge_weight, top_n)
        loss.backward()
        opt.step()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, help="a bench/ranking.py --out folder (one seed)")
    parser.add_argument("--truth", type=Path, default=DEFAULT_TRUTH)
    parser.add_argument(
        "--self-pool",
        default="96,384",
        help="sizes of the self-labelled pools, comma-separated (96: PRP's target pool)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fits and pools")
    args = parser.parse_args()
    prp_dir, fair_dir = args.runs / "ranking-prp-truth", args.runs / "ranking-fair"
    for d in (prp_dir, fair_dir):
        if not (d / EVAL_FILE).is_file():
            raise SystemExit(
                f"{d / EVAL_FILE} is missing: run bench/ranking.py with "
                f"--methods fair,prp-truth --out {args.runs} first"
            )
    prp_run, fair_run = load_run(prp_dir), load_run(fair_dir)
    prp_eval, fair_eval = read_json(prp_dir / EVAL_FILE), read_json(fair_dir / EVAL_FILE)
    archs = [a["arch_str"] for a in fair_eval["architectures"]]
    if archs != [a["arch_str"] for a in prp_eval["architectures"]]:
        raise SystemExit("the two runs were evaluated on different architectures")
    space = fair_run.supernet.space
    paths = [space.decode(a) for a in archs]
    true_rank = np.array([a["true_rank"] for a in fair_eval["architectures"]])
    fair_rank = np.array([a["estimated_rank"] for a in fair_eval["architectures"]])
    table = NB201Table.load(args.truth)

    taus: dict[str, float] = {"fair weights": fair_eval["kendall_tau_b_pareto"]}
    fits: dict[str, int] = {}

    def score(name: str, model: Supernet, labels: int) -> None:
        with torch.no_grad():
            scores = model.path_scores(paths).numpy().astype(float)
        taus[f"{name} only"] = kendall_tau_b(-scores, true_rank)
        taus[f"fair weights + {name}"] = alpha_estimators(scores, fair_rank, true_rank)["combined"]
        fits[name] = labels

    labelled = sorted(prp_run.fed_training)
    acc = table.lookup(space, labelled, prp_run.cfg.truth_column)
    score("table labels", fit_alpha_alone(space, prp_run.cfg, labelled, acc, args.seed), len(acc))
    rng = np.random.default_rng(args.seed)
    unseen = sorted(set(unseen_live_pool(fair_run)) - set(paths))
    for n in (int(v) for v in args.self_pool.split(",") if v):
        pool = [unseen[int(i)] for i in rng.choice(len(unseen), n, replace=False)]
        est, _, _ = estimate_paths(
            fair_run,
            pool,
            eval_images=fair_eval["eval_images"],
            bn_batches=fair_eval["bn_batches"],
            seed=args.seed,
        )
        model = fit_alpha_alone(space, fair_run.cfg, pool, est, args.seed)
        score(f"{n} self labels", model, n)
    prp_by = prp_eval["kendall_tau_b_pareto_by_estimator"]
    taus |= {f"prp-truth {k}": v for k, v in prp_by.items()}
    seed = fair_run.cfg.seed
    result = {
        "runs": str(args.runs),
        "k": len(archs),
        "labels": fits,
        "fit_steps": fair_run.cfg.alpha_steps * fair_run.cfg.epochs_pareto,
        "kendall_tau_b_pareto": taus,
        "hypervolume_ratio": {
            "fair": fair_eval["hypervolume_ratio"],
            "prp-truth": prp_eval["hypervolume_ratio"],
        },
    }
    out = write_record("label_control" if seed == 0 else f"label_control-seed{seed}", result)
    print_table(
        f"alpha fitted alone, {len(archs)} architectures (seed {seed})",
        ["estimator", "tau-b Pareto"],
        [[k, v] for k, v in taus.items()],
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
