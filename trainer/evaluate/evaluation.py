"""`evaluate_run`: a trained NB201 run against the benchmark table, written to
RUN/eval_nb201.json and eval_nb201.png."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..errors import PRPError
from ..estimation.proxies import FREE_BASELINES
from ..export import LoadedRun, load_run
from ..nb201_table import NB201Table
from ..pareto import hypervolume, kendall_tau_b, pareto_ranks
from ..pruning import MAXIMIZE
from ..runs import write_json
from ..spaces import SearchSpace
from .architectures import (
    alpha_estimators,
    estimate_paths,
    evaluation_device,
    true_front_hypervolume,
    unseen_live_pool,
)
from .baselines import ProxyCache, baseline_comparison, cached_free_scores
from .front_plot import FRONT_PLOT, plot_front
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
    protocol: str = "random",
) -> dict[str, Any]:
    """Evaluate run `run_dir` against the NB201 table `truth`; writes RUN/eval_nb201.json.

    `protocol` says which K architectures: `random` (a uniform sample) or `banded` (one per
    accuracy band, the supernet literature's protocol: `banded_architectures`).

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

    Over 80 lines only for its options (prp-eval's and the bench's) and their description
    here; the steps are `pick_architectures`, `estimate_paths`, `Ranked`, `front_quality`
    and `add_baselines`.
    """
    if bootstrap < 1:
        raise PRPError(f"--bootstrap must be at least 1 resample, got {bootstrap}")
    run = load_run(run_dir)
    if run.supernet.space.name != "nb201":
        raise PRPError(
            f"prp-eval compares with NAS-Bench-201: run {run_dir} searched "
            f"{run.supernet.space.name!r}, not 'nb201'"
        )
    table = NB201Table.load(truth)
    pool = unseen_live_pool(run)
    if protocol not in PROTOCOLS:
        raise PRPError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if protocol == "banded" and archs is None:
        accuracy = table.lookup(run.supernet.space, pool, acc_column)
        archs = banded_architectures(pool, accuracy, k)
    picked = pick_architectures(run_dir, run.supernet.space, pool, archs, k, seed)
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
    ranked = Ranked.of(run, table, picked, est, acc_column, cost_column)
    result: dict[str, Any] = {
        "run": str(run_dir),
        "method": cfg.method,
        # What the run ranked paths by while training and in its front (TrainConfig.estimator);
        # the baselines hold its row under the same name.
        "run_estimator": run.cfg.estimator,
        "truth": str(truth),
        "accuracy_column": acc_column,
        "cost_column": cost_column,
        "k": len(picked),
        "protocol": protocol,
        "eval_images": images_read,
        "bn_batches": cfg.bn_batches,
        **ranked.figures(run, len(pool)),
        **front_quality(run, table, acc_column, cost_column, Path(run_dir) / FRONT_PLOT),
        "architectures": ranked.records(),
    }
    if baselines:
        free, settings = cached_free_scores(
            run,
            picked,
            ranked.arch_strs,
            data,
            # The run's own seed: a weights+free run scored its proxies on that init, so the
            # evaluation scores the very estimator the run used (and the same for every method
            # of one bench seed, which trains them all with one seed).
            run.cfg.seed,
            evaluation_device(run.cfg.compute_device, compute_device),
            proxy_cache,
            baseline_progress,
        )
        add_baselines(result, ranked, free, settings, bootstrap, seed, run.cfg.estimator)
    out = Path(run_dir)
    write_json(out / EVAL_FILE, result)
    plot_ranks(out / "eval_nb201.png", ranked.est_rank, ranked.true_rank, result)
    return result


@dataclass(frozen=True)
class Ranked:
    """The evaluated architectures: their estimated and true accuracies, costs and Pareto
    ranks (estimates and truth each ranked with the same costs)."""

    picked: list[tuple[int, ...]]
    arch_strs: list[str]
    est: np.ndarray
    true_acc: np.ndarray
    cost: np.ndarray
    est_rank: np.ndarray
    true_rank: np.ndarray
    alpha: np.ndarray | None  # alpha's path score P_s of each, for a PRP run (None otherwise)

    @classmethod
    def of(
        cls,
        run: LoadedRun,
        table: NB201Table,
        picked: list[tuple[int, ...]],
        est: np.ndarray,
        acc_column: str,
        cost_column: str,
    ) -> Ranked:
        rows = table.rows_of(run.supernet.space, picked)
        true_acc, cost = table.column(acc_column)[rows], table.column(cost_column)[rows]
        return cls(
            picked,
            [table.arch_strs[int(r)] for r in rows],
            est,
            true_acc,
            cost,
            pareto_ranks(np.column_stack([est, cost]), MAXIMIZE),
            pareto_ranks(np.column_stack([true_acc, cost]), MAXIMIZE),
            run.supernet.path_score_array(picked) if run.cfg.method == "prp" else None,
        )

    def figures(self, run: LoadedRun, unseen: int) -> dict[str, Any]:
        """How well the run's estimates (and, for PRP, alpha) rank the architectures."""
        estimators = {"weights": kendall_tau_b(self.est_rank, self.true_rank)}
        if self.alpha is not None:
            estimators |= alpha_estimators(self.alpha, self.est_rank, self.true_rank)
        space = run.supernet.space
        live = [run.supernet.live_ops(s) for s in range(space.num_slots)]
        return {
            "live_architectures": int(np.prod([len(o) for o in live])),
            "unseen_live_architectures": unseen,
            "kendall_tau_b_pareto": estimators["weights"],
            # Pareto-rank tau-b of each estimator: weights (shared-weight accuracy + cost, as
            # for every method), and for PRP runs alpha (the path score P_s the listwise loss
            # trains to order paths by Pareto rank) and combined (the mean of the two rankings).
            "kendall_tau_b_pareto_by_estimator": estimators,
            "kendall_tau_b_accuracy": kendall_tau_b(self.est, self.true_acc),
            "spearman_rho_accuracy": spearman_rho(self.est, self.true_acc),
        }

    def records(self) -> list[dict[str, Any]]:
        """One record per architecture, for the evaluation file."""
        return [
            {
                "arch_str": a,
                "estimated_accuracy": float(e),
                "cost": float(c),
                "estimated_rank": int(er),
                "true_accuracy": float(t),
                "true_rank": int(tr),
            }
            for a, e, c, er, t, tr in zip(
                self.arch_strs,
                self.est,
                self.cost,
                self.est_rank,
                self.true_acc,
                self.true_rank,
                strict=True,
            )
        ]


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho of `x` and `y`; NaN, without a warning, where either is constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(stats.spearmanr(x, y)[0])


PROTOCOLS = ("random", "banded")


def banded_architectures(
    pool: Sequence[tuple[int, ...]], accuracy: np.ndarray, bands: int
) -> list[tuple[int, ...]]:
    """The protocol DYNAS and SUMNAS report supernet rankings on: `pool` sorted by true
    `accuracy`, cut into `bands` bands of (nearly) equal count, and the most accurate
    architecture of each band. It spreads accuracies over the whole range, which raises Kendall's
    tau against a uniform sample. The truth chooses which architectures are evaluated, never
    their estimates."""
    if bands < 2:
        raise PRPError(f"the banded protocol needs at least 2 bands (--k), got {bands}")
    order = np.argsort(accuracy, kind="stable")
    picked = [pool[int(b[np.argmax(accuracy[b])])] for b in np.array_split(order, bands) if len(b)]
    return sorted(tuple(a) for a in picked)


def pick_architectures(
    run_dir: str | Path,
    space: SearchSpace,
    pool: list[tuple[int, ...]],
    archs: Sequence[tuple[int, ...]] | None,
    k: int,
    seed: int,
) -> list[tuple[int, ...]]:
    """The architectures to evaluate: `archs` (each must be in `pool`, the run's unseen live
    architectures), or K of `pool` drawn with `seed`."""
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
        return picked
    if len(pool) < 2:
        raise PRPError(f"run {run_dir} leaves {len(pool)} unseen architectures to evaluate")
    rng = np.random.default_rng(seed)
    return [tuple(pool[i]) for i in sorted(rng.choice(len(pool), min(k, len(pool)), replace=False))]


def front_quality(
    run: LoadedRun,
    table: NB201Table,
    acc_column: str,
    cost_column: str,
    plot: Path | None = None,
) -> dict[str, Any]:
    """The run's front against the table's: the hypervolumes of both (from the table's worst
    corner), their ratio, and the true accuracy and Pareto rank of each path the run picked
    (the paths `prp-export` takes), drawn on the whole true front into `plot` when given."""
    space = run.supernet.space
    acc_all, cost_all = table.column(acc_column), table.column(cost_column)
    ref = np.array([acc_all.min(), cost_all.max()])
    true_hv = true_front_hypervolume(table, acc_column, cost_column, ref)
    front_rows = table.rows_of(space, [m.path for m in run.front if m.pareto_rank == 1])
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
    if plot is not None:
        plot_front(plot, acc_all, cost_all, all_ranks, selected, (acc_column, cost_column))
    return {
        "reference_point": {"accuracy": float(ref[0]), "cost": float(ref[1])},
        "hypervolume_run_front": run_hv,
        "hypervolume_true_front": true_hv,
        "hypervolume_ratio": run_hv / true_hv if true_hv > 0 else float("nan"),
        "selected": selected,
    }


def add_baselines(
    result: dict[str, Any],
    ranked: Ranked,
    free: dict[str, np.ndarray],
    settings: dict[str, Any],
    bootstrap: int,
    seed: int,
    run_estimator: str,
) -> None:
    """The free baselines' section of `result`: the paired comparison with the run's estimates
    (`bootstrap` resamples drawn with `seed`; a PRP run's alpha path scores among the
    estimators), the verdicts, and each architecture's scores."""
    t = time.perf_counter()
    alpha = ranked.alpha
    comparison = baseline_comparison(
        ranked.est, free, ranked.true_acc, ranked.cost, bootstrap, seed, alpha
    )
    settings |= {"bootstrap": bootstrap, "bootstrap_seconds": time.perf_counter() - t}
    result["baselines"] = baselines_section(comparison)
    result["supernet_adds_information"] = adds_information(result["baselines"])
    result["run_estimator_verdict"] = run_estimator_verdict(comparison, run_estimator)
    result["baseline_settings"] = settings
    for i, a in enumerate(result["architectures"]):
        # JSON has no -inf: a singular NASWOT kernel is written as null
        a["free_scores"] = {
            b: (float(free[b][i]) if np.isfinite(free[b][i]) else None) for b in FREE_BASELINES
        }
        if alpha is not None:
            a["alpha_score"] = float(alpha[i])
