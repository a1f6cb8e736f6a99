"""`evaluate_run`: a trained NB201 run against the benchmark table, written to
RUN/eval_nb201.json and eval_nb201.png."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PRPError
from ..estimation.proxies import FREE_BASELINES
from ..export import load_run
from ..nb201_table import NB201Table
from ..pareto import hypervolume, kendall_tau_b, pareto_ranks
from ..pruning import MAXIMIZE
from ..runs import write_json
from .architectures import (
    alpha_estimators,
    estimate_paths,
    evaluation_device,
    true_front_hypervolume,
    unseen_live_pool,
)
from .baselines import ProxyCache, baseline_comparison, cached_free_scores
from .report import (
    EVAL_FILE,
    adds_information,
    baselines_section,
    plot_ranks,
    run_estimator_verdict,
)


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
    baselines: bool = True,
    bootstrap: int = 1000,
    proxy_cache: ProxyCache | None = None,
    baseline_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Evaluate run `run_dir` against the NB201 table `truth`; writes RUN/eval_nb201.json.

    `archs`, when given, are the architectures to evaluate instead of K sampled ones (to compare
    several runs on the same set); each must be live in the run and must not have fed its training.
    `eval_images` (held-out images per estimate) and `bn_batches` (BatchNorm recalibration
    batches per path) default to the run's own settings; `compute_device` (cpu or cuda) to the
    device the run trained on where that is available here, else cpu.

    With `baselines` (default) the same architectures are also ranked by the free baselines
    and combinations, each paired with the run's shared-weight estimates by a bootstrap of
    `bootstrap` resamples (section `baselines`, and `supernet_adds_information`). Proxies are
    scored on a fresh supernet initialised with the run's own seed (`seed` only samples the
    architectures and the bootstrap). Proxy scores are kept per architecture in the evaluation
    file and in `proxy_cache` and reused when the same architectures are scored again with the
    same settings; `baseline_progress(proxy, done, total)` reports their computation.
    """
    if bootstrap < 1:
        raise PRPError(f"--bootstrap must be at least 1 resample, got {bootstrap}")
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
    data = run.cfg.load_data(run.supernet.space.input_shape[-1])  # as the run trained
    est, cfg, images_read = estimate_paths(
        run,
        picked,
        eval_images=eval_images,
        bn_batches=bn_batches,
        seed=seed,
        progress=progress,
        compute_device=compute_device,
        data=data,
    )
    rows = table.rows_of(space, picked)
    true_acc, cost = acc_all[rows], cost_all[rows]
    est_rank = pareto_ranks(np.column_stack([est, cost]), MAXIMIZE)
    true_rank = pareto_ranks(np.column_stack([true_acc, cost]), MAXIMIZE)
    estimators = {"weights": kendall_tau_b(est_rank, true_rank)}
    arch_strs = [table.arch_strs[int(r)] for r in rows]
    free: dict[str, np.ndarray] | None = None
    if baselines:
        free, baseline_settings = cached_free_scores(
            run,
            picked,
            arch_strs,
            data,
            # The run's own seed: a weights+free run scored its proxies on that init, so the
            # evaluation scores the very estimator the run used (and the same for every method
            # of one bench seed, which trains them all with one seed).
            run.cfg.seed,
            evaluation_device(run.cfg.compute_device, compute_device),
            proxy_cache,
            baseline_progress,
        )
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
    result: dict[str, Any] = {
        "run": str(run_dir),
        "method": cfg.method,
        # What the run ranked paths by while training and in its front (TrainConfig.estimator);
        # its row among the baselines is `Estimator.eval_row` (weights+free: supernet+free).
        "run_estimator": run.cfg.estimator,
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
                "arch_str": a,
                "estimated_accuracy": float(e),
                "cost": float(c),
                "estimated_rank": int(er),
                "true_accuracy": float(t),
                "true_rank": int(tr),
            }
            for a, e, c, er, t, tr in zip(
                arch_strs, est, cost, est_rank, true_acc, true_rank, strict=True
            )
        ],
    }
    if free is not None:
        t = time.perf_counter()
        comparison = baseline_comparison(est, free, true_acc, cost, bootstrap, seed)
        baseline_settings |= {"bootstrap": bootstrap, "bootstrap_seconds": time.perf_counter() - t}
        result["baselines"] = baselines_section(comparison)
        result["supernet_adds_information"] = adds_information(result["baselines"])
        result["run_estimator_verdict"] = run_estimator_verdict(comparison, run.cfg.estimator)
        result["baseline_settings"] = baseline_settings
        for i, a in enumerate(result["architectures"]):
            # JSON has no -inf: a singular NASWOT kernel is written as null
            a["free_scores"] = {
                b: (float(free[b][i]) if np.isfinite(free[b][i]) else None) for b in FREE_BASELINES
            }
    out = Path(run_dir)
    write_json(out / EVAL_FILE, result)
    plot_ranks(out / "eval_nb201.png", est_rank, true_rank, result)
    return result
