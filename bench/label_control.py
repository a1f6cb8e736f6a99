"""Controls for PRP's alpha estimator: alpha fitted alone to the same labels, no joint training.

    python bench/label_control.py runs/ranking-truth/seed0 [--self-pool 96]

Reads a `bench/ranking.py --methods fair,prp-truth --out DIR` folder (one seed) whose runs were
evaluated on the same architectures (prp-truth-fairw in place of or beside prp-truth). alpha
is fitted *alone* (no supernet weights; the trainer's loss, optimiser and number of steps,
N_p x alpha_steps) to the Pareto ranks of a set of labelled paths, priced by the training cost
model, then scores those architectures:
- table labels: the NB201 accuracies of exactly the paths that fed the PRP run trained with
  `--truth` (the paper's NB201 setting; prp-truth's where the folder has both). The baselines
  never see these labels, so this asks whether PRP's joint training adds anything beyond them.
  The control sees every label from its first step, PRP's alpha epoch by epoch: the control
  is, if anything, favoured.
- self labels: the strict-fairness run's own shared-weight estimates of N other unseen paths
  (`--self-pool`): does an additive P_s fitted to a supernet's estimates rank better than the
  estimates themselves (alpha as a smoother), with no label the baselines lack?
Each fitted P_s is reported alone and averaged with the fairness run's shared-weight ranking
(the combination `prp-eval` reports as "combined" for PRP), next to PRP's own estimators.
Writes bench/results/label_control[-seedN].json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import finite_loss, paired_bootstrap, print_table, write_record
from prp.trainer.config import TrainConfig
from prp.trainer.costs import get_cost_model, price_supernet
from prp.trainer.evaluate import (
    EVAL_FILE,
    alpha_estimators,
    estimate_paths,
    unseen_live_pool,
)
from prp.trainer.export import load_run
from prp.trainer.nb201_table import NB201Table
from prp.trainer.pareto import kendall_tau_b, pareto_ranks
from prp.trainer.pareto_stage import fit_alpha
from prp.trainer.pruning import MAXIMIZE
from prp.trainer.runs import read_json
from prp.trainer.spaces import SearchSpace
from prp.trainer.supernet import Supernet

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
    steps = cfg.alpha_steps * cfg.epochs_pareto
    fit_alpha(
        model,
        opt,
        paths,
        ranks,
        steps,
        cfg.rank_temperature,
        cfg.hinge_weight,
        cfg.top_n,
        finite_loss,
    )
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, help="a bench/ranking.py --out folder (one seed)")
    parser.add_argument("--truth", type=Path, default=DEFAULT_TRUTH)
    parser.add_argument(
        "--self-pool",
        default="96",
        help="sizes of the self-labelled pools, comma-separated (96: PRP's target pool)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the fits and pools")
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired resamples")
    parser.add_argument(
        "--name", default=None, help="record name (default: label_control[-seed<N>])"
    )
    args = parser.parse_args()
    fair_dir = args.runs / "ranking-fair"
    # PRP runs trained with table targets and evaluated beside fairness. The control fits the
    # labels the first one read (both variants sample their targets from the same stream).
    prp_dirs = {
        name: args.runs / f"ranking-{name}"
        for name in ("prp-truth", "prp-truth-fairw")
        if (args.runs / f"ranking-{name}" / EVAL_FILE).is_file()
    }
    for d in (fair_dir, *prp_dirs.values()):
        if not (d / EVAL_FILE).is_file():
            raise SystemExit(
                f"{d / EVAL_FILE} is missing: run bench/ranking.py with "
                f"--methods fair,prp-truth --out {args.runs} first"
            )
    if not prp_dirs:
        raise SystemExit(
            f"{args.runs} holds no evaluated prp-truth or prp-truth-fairw run: run "
            f"bench/ranking.py with --methods fair,prp-truth --out {args.runs} first"
        )
    fair_run = load_run(fair_dir)
    prp_runs = {name: load_run(d) for name, d in prp_dirs.items()}
    prp_run = next(iter(prp_runs.values()))
    fair_eval = read_json(fair_dir / EVAL_FILE)
    prp_evals = {name: read_json(d / EVAL_FILE) for name, d in prp_dirs.items()}
    archs = [a["arch_str"] for a in fair_eval["architectures"]]
    if any(archs != [a["arch_str"] for a in e["architectures"]] for e in prp_evals.values()):
        raise SystemExit("the runs were evaluated on different architectures")
    space = fair_run.supernet.space
    paths = [space.decode(a) for a in archs]
    table = NB201Table.load(args.truth)

    # P_s of every alpha scored here: PRP's own and the ones fitted alone.
    scores: dict[str, np.ndarray] = {}
    fits: dict[str, int] = {}

    def path_scores(model: Supernet) -> np.ndarray:
        with torch.no_grad():
            return model.path_scores(paths).numpy().astype(float)

    labelled = sorted(prp_run.fed_training)
    acc = table.lookup(space, labelled, prp_run.cfg.truth_column)
    model = fit_alpha_alone(space, prp_run.cfg, labelled, acc, args.seed)
    scores["table labels"], fits["table labels"] = path_scores(model), len(labelled)
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
        scores[f"{n} self labels"], fits[f"{n} self labels"] = path_scores(model), n
    prp_scores = {name: path_scores(run.supernet) for name, run in prp_runs.items()}

    def column(records: list[dict[str, Any]], key: str) -> np.ndarray:
        return np.array([a[key] for a in records], dtype=float)

    cost = column(fair_eval["architectures"], "cost")
    true_acc = column(fair_eval["architectures"], "true_accuracy")
    fair_acc = column(fair_eval["architectures"], "estimated_accuracy")
    prp_acc = {n: column(e["architectures"], "estimated_accuracy") for n, e in prp_evals.items()}

    def taus(idx: np.ndarray) -> dict[str, float]:
        """Every estimator's Pareto-rank tau-b on the architectures `idx` (ranks recomputed on
        that set, as prp-eval computes them on its K)."""

        def ranks(acc: np.ndarray) -> np.ndarray:
            return pareto_ranks(np.column_stack([acc[idx], cost[idx]]), MAXIMIZE)

        truth, fair = ranks(true_acc), ranks(fair_acc)
        out = {"fair weights": kendall_tau_b(fair, truth)}
        for name, s in scores.items():
            by = alpha_estimators(s[idx], fair, truth)
            out |= {f"{name} only": by["alpha"], f"fair weights + {name}": by["combined"]}
        for name, s in prp_scores.items():
            prp = ranks(prp_acc[name])
            by = alpha_estimators(s[idx], prp, truth)
            out |= {
                f"{name} weights": kendall_tau_b(prp, truth),
                f"{name} alpha": by["alpha"],
                f"{name} combined": by["combined"],
            }
        return out

    point = taus(np.arange(len(archs)))
    # The same figures prp-eval wrote (a check that this recomputation is the evaluation's).
    assert np.isclose(point["fair weights"], fair_eval["kendall_tau_b_pareto"])
    for name, e in prp_evals.items():
        assert np.isclose(
            point[f"{name} combined"], e["kendall_tau_b_pareto_by_estimator"]["combined"]
        )
    # Paired bootstrap over the K architectures: how much of a difference between two
    # estimators is the draw of architectures. Each resample ranks all estimators on one set.
    others = [k for k in point if k != "fair weights"]
    boot = paired_bootstrap(
        taus, len(archs), {k: "fair weights" for k in others}, args.bootstrap, args.seed
    )
    against = boot["against"]
    diff_ci = {k: against[f"{k} - fair weights"]["ci95"] for k in others}
    p_not_better = {k: against[f"{k} - fair weights"]["p_not_better"] for k in others}
    seed = fair_run.cfg.seed
    result = {
        "runs": str(args.runs),
        "k": len(archs),
        "labels": fits,
        "fit_steps": fair_run.cfg.alpha_steps * fair_run.cfg.epochs_pareto,
        "bootstrap": args.bootstrap,
        "kendall_tau_b_pareto": point,
        "kendall_tau_b_pareto_ci95": boot["ci95"],
        "paired_against_fair_weights": against,
        **{
            key: {"fair": fair_eval[key], **{name: e[key] for name, e in prp_evals.items()}}
            for key in ("hypervolume_ratio", "kendall_tau_b_accuracy", "live_architectures")
        },
    }
    name = args.name or ("label_control" if seed == 0 else f"label_control-seed{seed}")
    out = write_record(name, result)
    rows = []
    for k, v in point.items():
        low, high = result["kendall_tau_b_pareto_ci95"][k]
        row = [k, v, f"{low:.3f} to {high:.3f}", "", "", ""]
        if k in diff_ci:
            d_low, d_high = diff_ci[k]
            row[3:] = [v - point["fair weights"], f"{d_low:.3f} to {d_high:.3f}", p_not_better[k]]
        rows.append(row)
    print_table(
        f"alpha fitted alone, {len(archs)} architectures (seed {seed}), "
        f"paired bootstrap x{args.bootstrap}",
        ["estimator", "tau-b Pareto", "95 % interval", "- fair weights", "95 % interval", "P(<=)"],
        rows,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
