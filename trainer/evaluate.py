"""Ranking quality of a trained NB201 supernet against NAS-Bench-201 + HW-NAS-Bench ground truth.

For K architectures that never fed the training signal (and that the pruned supernet can still
run), the supernet's accuracy estimates and the table's true accuracies are each combined with the
same true cost column into Pareto ranks; Kendall's tau-b between the two rankings is the paper's
measure (section 3.1). Also: tau-b of accuracy alone, the hypervolume of the run's front (priced
with true values) over that of the true front, and where the run's picks sit in the true ranking.

Reference point for both hypervolumes (documented, the same for all runs of a table): accuracy
= the lowest true accuracy in the table, cost = the highest cost in the table's column.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from .benchmarks import NB201Table
from .config import TrainConfig
from .datasets import load_dataset
from .errors import PRPError
from .export import LoadedRun, load_run
from .pareto import hypervolume, kendall_tau_b, pareto_ranks
from .pruning import MAXIMIZE
from .runs import atomic_path, write_json
from .train import Tensors, estimate_accuracy, torch_device

EVAL_FILE = "eval_nb201.json"


def true_front_hypervolume(
    table: NB201Table, acc_column: str, cost_column: str, ref: np.ndarray
) -> float:
    pts = np.column_stack([table.column(acc_column), table.column(cost_column)])
    front = pts[pareto_ranks(pts, MAXIMIZE) == 1]
    return hypervolume(front, ref, MAXIMIZE)


def unseen_live_pool(run: LoadedRun) -> list[tuple[int, ...]]:
    """Every architecture of the run's pruned space that did not feed its training signal."""
    space = run.supernet.space
    live = [run.supernet.live_ops(s) for s in range(space.num_slots)]
    return [tuple(p) for p in itertools.product(*live) if tuple(p) not in run.fed_training]


def evaluate_run(
    run_dir: str | Path,
    truth: str | Path,
    k: int = 1000,
    cost_column: str = "edgegpu_energy",
    acc_column: str = "cifar10_test_acc",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    archs: Sequence[tuple[int, ...]] | None = None,
    eval_images: int | None = None,
    bn_batches: int | None = None,
    compute_device: str | None = None,
) -> dict[str, Any]:
    """Evaluate run `run_dir` against the NB201 table `truth`; writes RUN/eval_nb201.json.

    `archs`, when given, are the architectures to evaluate instead of K sampled ones (to compare
    several runs on the same set); each must be live in the run and must not have fed its training.
    `eval_images` (held-out images per estimate) and `bn_batches` (BatchNorm recalibration
    batches per path) default to the run's own settings; `compute_device` (cpu or cuda) to the
    device the run trained on where that is available here, else cpu.
    """
    run = load_run(run_dir)
    space = run.supernet.space
    if space.name != "nb201":
        raise PRPError(
            f"prp-eval compares with NAS-Bench-201: run {run_dir} searched "
            f"{space.name!r}, not 'nb201'"
        )
    table = NB201Table.load(truth)
    cost_all = table.column(cost_column)
    acc_all = table.column(acc_column)
    live = [run.supernet.live_ops(s) for s in range(space.num_slots)]
    pool = unseen_live_pool(run)
    if archs is not None:
        allowed = set(pool)
        bad = [a for a in archs if tuple(a) not in allowed]
        if bad:
            raise PRPError(
                f"{len(bad)} of the given architectures (e.g. {space.op_names(bad[0])}) use a "
                f"pruned op of run {run_dir} or fed its training; pass only unseen live ones"
            )
        picked = [tuple(a) for a in archs]
        if len(picked) < 2:
            raise PRPError(f"need at least 2 architectures to rank, got {len(picked)}")
    else:
        if len(pool) < 2:
            raise PRPError(f"run {run_dir} leaves {len(pool)} unseen architectures to evaluate")
        rng = np.random.default_rng(seed)
        picked = [
            tuple(pool[i]) for i in sorted(rng.choice(len(pool), min(k, len(pool)), replace=False))
        ]
    est, cfg, images_read = estimate_paths(
        run,
        picked,
        eval_images=eval_images,
        bn_batches=bn_batches,
        seed=seed,
        progress=progress,
        compute_device=compute_device,
    )
    rows = table.rows_of(space, picked)
    true_acc, cost = acc_all[rows], cost_all[rows]
    est_rank = pareto_ranks(np.column_stack([est, cost]), MAXIMIZE)
    true_rank = pareto_ranks(np.column_stack([true_acc, cost]), MAXIMIZE)
    estimators = {"weights": kendall_tau_b(est_rank, true_rank)}
    if cfg.method == "prp":
        with torch.no_grad():
            scores = run.supernet.path_scores(picked).cpu().numpy().astype(float)
        estimators |= alpha_estimators(scores, est_rank, true_rank)
    ref = np.array([acc_all.min(), cost_all.max()])
    true_hv = true_front_hypervolume(table, acc_column, cost_column, ref)
    front_paths = [m.path for m in run.front if m.pareto_rank == 1]
    front_rows = table.rows_of(space, front_paths)
    run_hv = hypervolume(
        np.column_stack([acc_all[front_rows], cost_all[front_rows]]), ref, MAXIMIZE
    )
    all_ranks = pareto_ranks(np.column_stack([acc_all, cost_all]), MAXIMIZE)
    selected = []
    for s in run.front_data.get("selected", []):
        row = int(table.rows_of(space, [tuple(s["path"])])[0])
        selected.append(
            {
                "label": s["label"],
                "arch_str": table.arch_strs[row],
                "true_accuracy": float(acc_all[row]),
                "cost": float(cost_all[row]),
                "true_pareto_rank": int(all_ranks[row]),
                "estimated_accuracy": s["accuracy"],
            }
        )
    result = {
        "run": str(run_dir),
        "method": cfg.method,
        "truth": str(truth),
        "accuracy_column": acc_column,
        "cost_column": cost_column,
        "k": len(picked),
        "eval_images": images_read,
        "bn_batches": cfg.bn_batches,
        "live_architectures": int(np.prod([len(o) for o in live])),
        "unseen_live_architectures": len(pool),
        "kendall_tau_b_pareto": estimators["weights"],
        # Pareto-rank tau-b of each estimator: weights (shared-weight accuracy + cost, as for
        # every method), and for PRP runs alpha (the path score P_s the listwise loss trains to
        # order paths by Pareto rank) and combined (the mean of the two rankings).
        "kendall_tau_b_pareto_by_estimator": estimators,
        "kendall_tau_b_accuracy": kendall_tau_b(est, true_acc),
        "reference_point": {"accuracy": float(ref[0]), "cost": float(ref[1])},
        "hypervolume_run_front": run_hv,
        "hypervolume_true_front": true_hv,
        "hypervolume_ratio": run_hv / true_hv if true_hv > 0 else float("nan"),
        "selected": selected,
        "architectures": [
            {
                "arch_str": table.arch_strs[int(r)],
                "estimated_accuracy": float(e),
                "cost": float(c),
                "estimated_rank": int(er),
                "true_accuracy": float(t),
                "true_rank": int(tr),
            }
            for r, e, c, er, t, tr in zip(
                rows, est, cost, est_rank, true_acc, true_rank, strict=True
            )
        ],
    }
    out = Path(run_dir)
    write_json(out / EVAL_FILE, result)
    plot_ranks(out / "eval_nb201.png", est_rank, true_rank, result)
    return result


def evaluation_device(trained_on: str, asked: str | None) -> torch.device:
    """Where estimates run: `asked` (cpu or cuda), else the device the run trained on when this
    machine has it, else the CPU (a run trained on a GPU evaluates anywhere)."""
    if asked is not None:
        if asked not in ("cpu", "cuda"):
            raise PRPError(f"unknown compute device {asked!r}: use cpu or cuda")
        return torch_device(asked)
    if trained_on == "cuda" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def estimate_paths(
    run: LoadedRun,
    paths: Sequence[tuple[int, ...]],
    eval_images: int | None = None,
    bn_batches: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    compute_device: str | None = None,
) -> tuple[np.ndarray, TrainConfig, int]:
    """Shared-weight accuracy estimates (%) of `paths` with the run's supernet, on the run's own
    data split; returns them, the settings used and the number of held-out images each read.

    `eval_images` and `bn_batches` default to the run's settings. Every path's BN recalibration
    draws its batches from a generator seeded with `seed`, so the estimates do not depend on
    which other paths are estimated or in what order. The estimates run on `compute_device`
    (default: the run's own where available, else cpu); the supernet stays there afterwards.
    """
    cfg = replace(
        run.cfg,
        eval_images=eval_images or run.cfg.eval_images,
        bn_batches=bn_batches or run.cfg.bn_batches,
    )
    device = evaluation_device(run.cfg.compute_device, compute_device)
    run.supernet.to(device)
    data = load_dataset(
        cfg.dataset,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        limit_per_class=cfg.limit_per_class,
    )
    tensors = Tensors.of(data, device)
    est = np.empty(len(paths))
    for i, path in enumerate(paths):
        g = torch.Generator().manual_seed(seed)
        est[i] = estimate_accuracy(run.supernet, path, tensors, cfg, g)
        if progress:
            progress(i + 1, len(paths))
    return est, cfg, min(cfg.eval_images, len(data.val.labels))


def alpha_estimators(
    scores: np.ndarray, est_rank: np.ndarray, true_rank: np.ndarray
) -> dict[str, float]:
    """tau-b of PRP's alpha estimator (higher P_s = better Pareto rank) and of its combination
    with the shared-weight ranks (mean of the two normalised rankings)."""
    by_alpha = stats.rankdata(-scores)
    combined = by_alpha / len(scores) + stats.rankdata(est_rank) / len(est_rank)
    return {
        "alpha": kendall_tau_b(by_alpha, true_rank),
        "combined": kendall_tau_b(combined, true_rank),
    }


def plot_ranks(
    path: Path, est_rank: np.ndarray, true_rank: np.ndarray, result: dict[str, Any]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    jitter = np.random.default_rng(0).uniform(-0.2, 0.2, (2, len(est_rank)))
    ax.scatter(true_rank + jitter[0], est_rank + jitter[1], s=8, alpha=0.5)
    top = max(int(true_rank.max()), int(est_rank.max()))
    ax.plot([1, top], [1, top], c="0.6", lw=1, ls="--")
    ax.set_xlabel(f"true Pareto rank ({result['accuracy_column']}, {result['cost_column']})")
    ax.set_ylabel("estimated Pareto rank (supernet)")
    ax.set_title(
        f"{result['method']}: Kendall tau-b {result['kendall_tau_b_pareto']:.3f} (K={result['k']})"
    )
    ax.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
