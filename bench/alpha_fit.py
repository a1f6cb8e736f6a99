"""How well alpha alone can learn NB201's Pareto ranks, and which loss settings let it.

    python bench/alpha_fit.py [--truth ../shared/data/nasbench201/nb201_cifar10_hw.csv]

No supernet: alpha is fitted exactly as stage 2 fits it (the project's listwise and eq. 2 hinge
losses, Adam, epochs of n sampled paths) but to the *table's* Pareto ranks (cifar10_valid_acc,
the `hwnasbench-nb201` edgegpu energy), then P_s ranks 300 unseen architectures against the true
Pareto ranks (cifar10_test_acc, edgegpu_energy). This isolates the alpha estimator from weight
sharing: its ceiling, and how the number of steps, the paths ranked, the rank temperature and the
hinge weight move it. Mean tau-b over seeds; writes bench/results/alpha_fit.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from common import finite_loss, print_table, write_record
from prp.trainer.costs import get_cost_model, price_supernet
from prp.trainer.nb201_table import NB201Table
from prp.trainer.pareto import kendall_tau_b, pareto_ranks
from prp.trainer.pareto_stage import fit_alpha
from prp.trainer.pruning import MAXIMIZE
from prp.trainer.spaces import get_space
from prp.trainer.supernet import Supernet

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRUTH = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar10_hw.csv"

SETTINGS = {  # name -> (alpha_steps, history, rank_temperature, hinge_weight)
    "old defaults: 5 steps, this epoch's n, T 1, hinge 1": (5, False, 1.0, 1.0),
    "50 steps, every path so far, T 5, hinge 1": (50, True, 5.0, 1.0),
    "50 steps, every path so far, T 2, hinge 0": (50, True, 2.0, 0.0),
    "50 steps, every path so far, T 5, hinge 0": (50, True, 5.0, 0.0),
    "50 steps, every path so far, T 10, hinge 0": (50, True, 10.0, 0.0),
    "new defaults: 50 steps, every path so far, T 5, hinge 0.1": (50, True, 5.0, 0.1),
}


def fit_alpha_to_table(
    supernet: Supernet,
    paths: np.ndarray,
    valid_acc: np.ndarray,
    cost: np.ndarray,
    setting: tuple[int, bool, float, float],
    rng: np.random.Generator,
    epochs: int,
    n: int,
    top_n: int,
) -> set[int]:
    """Fit `supernet.alpha` from zero with stage 2's `pareto_stage.fit_alpha`; the indices seen."""
    steps, history, temperature, hinge_weight = setting
    with torch.no_grad():
        supernet.alpha.zero_()
    opt = torch.optim.Adam([supernet.alpha], lr=0.05, betas=(0.5, 0.999))
    seen: list[int] = []
    for _ in range(epochs):
        fresh = [int(i) for i in rng.choice(len(paths), n, replace=False)]
        seen += [i for i in fresh if i not in seen]
        idx = np.array(seen if history else fresh)
        ranks = pareto_ranks(np.column_stack([valid_acc[idx], cost[idx]]), MAXIMIZE)
        chosen = [tuple(int(v) for v in paths[i]) for i in idx]
        fit_alpha(
            supernet, opt, chosen, ranks, steps, temperature, hinge_weight, top_n, finite_loss
        )
    return set(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--truth", type=Path, default=DEFAULT_TRUTH)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8, help="Pareto epochs (N_p)")
    parser.add_argument("--samples", type=int, default=24, help="paths per epoch (n)")
    parser.add_argument("--top-n", type=int, default=8)
    parser.add_argument("--k", type=int, default=300, help="unseen architectures scored")
    args = parser.parse_args()
    table = NB201Table.load(args.truth)
    space = get_space("nb201", size="tiny")
    paths = np.array([space.decode(a) for a in table.arch_strs])
    supernet = Supernet(space)
    fitted = price_supernet(supernet, get_cost_model("hwnasbench-nb201", "energy"))
    cost_fit = fitted.many(paths)
    valid, test = table.column("cifar10_valid_acc"), table.column("cifar10_test_acc")
    energy = table.column("edgegpu_energy")
    rows, results = [], []
    for name, setting in SETTINGS.items():
        taus = []
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            torch.manual_seed(seed)
            budget = (args.epochs, args.samples, args.top_n)
            seen = fit_alpha_to_table(supernet, paths, valid, cost_fit, setting, rng, *budget)
            unseen = np.setdiff1d(np.arange(len(paths)), sorted(seen))
            pick = rng.choice(unseen, args.k, replace=False)
            true_rank = pareto_ranks(np.column_stack([test[pick], energy[pick]]), MAXIMIZE)
            with torch.no_grad():
                scores = supernet.path_scores(paths[pick].tolist()).numpy()
            taus.append(kendall_tau_b(-scores, true_rank))
        results.append({"setting": name, "tau_b_mean": float(np.mean(taus)), "tau_b": taus})
        rows.append([name, float(np.mean(taus)), float(np.std(taus))])
        print(results[-1], flush=True)
    out = write_record(
        "alpha_fit",
        {
            "truth": str(args.truth),
            "epochs": args.epochs,
            "samples": args.samples,
            "top_n": args.top_n,
            "k": args.k,
            "seeds": args.seeds,
            "results": results,
        },
    )
    print_table(
        f"alpha alone, fitted to table Pareto ranks of {args.epochs} x {args.samples} paths",
        ["setting", "tau-b Pareto (mean)", "std over seeds"],
        rows,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
