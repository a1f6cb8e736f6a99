"""Ranking quality of training methods on the same data, as the paper's figures 4 and 6:
vanilla single-path (uniform), strict fairness only, PRP-NAS (the default recipe).

    python bench/ranking.py --truth ../shared/data/nasbench201/nb201_cifar10_hw.csv [--k 300]

Each method trains the default preset's NB201 supernet on the same data, priced during training
by the `hwnasbench-nb201` table (HW-NAS-Bench's edgegpu energy fitted per edge and op), then
`prp-eval` compares its estimates with NAS-Bench-201 (cifar10_test_acc) under the table's
edgegpu_energy, all on one common set of unseen architectures, and every method's figures are
paired with fairness's by a bootstrap over those architectures. Methods (default: uniform,
fair, default):
- default: the default preset as `prp-train` runs it: the Pareto-rank stage from the shipped
  strict-fair supernet of its space (`--init nb201-c8n2-fair`), strict-fair W, paths ranked by
  the shared weights aggregated with free proxies (weights+free).
- uniform, fair: the baselines from random weights, the same epochs as a scratch prp run
  (single-path uniform sampling; strict fairness throughout).
- prp: Algorithm 1 from random weights with target ranks from its own post-stage-1 estimates;
  prp-truth-fairw: PRP as the paper runs it on NB201, target ranks from the table's
  cifar10_valid_acc of the paths it samples (those are then excluded from the evaluation),
  with strict-fair W groups in stage 2; prp-truth: table targets with the paper's argmax W;
  prp-fairw: own targets, strict-fair W; prp-frontw: stage 2 trains W on alpha's predicted
  top-N paths instead of the per-slot argmax.
- default-nostage: the default recipe without its Pareto-rank stage (no alpha, no listwise or
  hinge loss, no pruning): the same init, epochs, lr and estimator, W trained by strict
  fairness for the same steps. `--methods default,default-nostage` is the stage's ablation.
Beside every method, the same architectures are ranked by the free baselines prp-eval reports
(params, MACs, synflow, NASWOT, their log-rank combination `free`, and `weights+free`), each
method's weights paired against each of them; the proxies are computed once for all methods.
Writes bench/results/ranking[-seedN].json (or --name). With --out, a stopped call goes on
where it left off when called again with the same options. With --jobs N the methods train
(and are then evaluated) N at a time, each in its own process with torch's threads split
between them: on 2 cores `--jobs 2` runs uniform, fair and default in about half the time.
Paper scale on a GPU (training and evaluation on cuda): python bench/ranking.py --preset paper
--compute-device cuda --data ../shared/data/cifar10/cifar10_jpg.tar.gz --eval-images 5000
--k 1000 --out DIR --truth ...
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from common import RESULTS, paired_bootstrap, print_table, write_record
from prp.trainer.config import TrainConfig, preset
from prp.trainer.datasets import load_dataset
from prp.trainer.errors import PRPError
from prp.trainer.estimation.estimators import ALPHA, FREE_PART, WITHOUT_ALPHA_PART
from prp.trainer.evaluate import (
    EVAL_FILE,
    ProxyCache,
    alpha_estimators,
    evaluate_run,
    read_evaluation,
    remember_free_scores,
    unseen_live_pool,
)
from prp.trainer.export import LoadedRun, load_run
from prp.trainer.nb201_table import NB201_COST_COLUMNS
from prp.trainer.pareto import kendall_tau_b, pareto_ranks
from prp.trainer.pruning import MAXIMIZE
from prp.trainer.runs import CHECKPOINT, FRONT, LOG, RunLog
from prp.trainer.spaces import SearchSpace
from prp.trainer.train import Trainer


class Trained(NamedTuple):
    """One method's finished run in this comparison."""

    run_dir: Path
    label: str
    train_s: float  # wall seconds of this call's training, or the logged epochs' (reused)
    ops_left: int
    reused: bool  # reused or resumed: train_s is from the log


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    threads_per_job = max(1, torch.get_num_threads() // args.jobs)
    # Every method trains from random weights (the default preset's `SCRATCH_RECIPE`), except
    # "default": the preset as prp-train runs it, from its shipped strict-fair supernet.
    base = bench_settings(preset(args.preset, init="scratch"), args)
    if args.epochs_fair is not None:
        base = replace(base, epochs_fair=args.epochs_fair)
    recipe = bench_settings(preset(args.preset), args)
    if args.estimator is not None:
        try:
            recipe = replace(recipe, estimator=args.estimator).validate()
        except PRPError as e:  # bad input: one line, exit status 2
            print(f"ranking.py: {e}", file=sys.stderr)
            raise SystemExit(2) from None
    data = load_dataset(
        base.dataset,
        val_fraction=base.val_fraction,
        seed=base.seed,
        limit_per_class=base.limit_per_class,
    )
    print(f"data: {len(data.train.labels)} train / {len(data.val.labels)} validation images")
    methods = [m for m in args.methods.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        configs = {m: method_config(m, args, base, recipe) for m in methods}
        trained = train_methods(configs, root, args.jobs, threads_per_job, data)
        add_compared_runs(trained, args.compare_with)
        loaded = {method: load_run(t.run_dir) for method, t in trained.items()}
        archs, common = common_architectures(loaded, args.k, args.seed)
        print(f"evaluating {len(archs)} architectures of {len(common)} common unseen ones")
        evaluation = {
            "truth": args.truth,
            "cost_column": args.cost_column,
            "archs": archs,
            "seed": args.seed,
            "eval_images": args.eval_images,
            "bn_batches": args.bn_batches,
            "compute_device": base.compute_device,
            "bootstrap": args.bootstrap,
        }
        images = min(args.eval_images, len(data.val.labels))
        # With --jobs, the methods are evaluated in parallel processes first (each scores the
        # free proxies itself, about 2 min for 1,000 architectures); the loop below then reads
        # their evaluation files.
        eval_seconds = evaluate_in_parallel(
            trained, loaded, evaluation, args, images, threads_per_job
        )
        # Free baseline scores of the common architectures, computed once for all methods
        # whose runs share the space, data and seed (and kept in each evaluation file).
        proxy_cache: ProxyCache = {}
        results, rows, evals = [], [], {}
        for method, t in trained.items():
            space = loaded[method].supernet.space
            r, eval_s = evaluation_of(
                method, t.run_dir, space, evaluation, args, images, proxy_cache, eval_seconds
            )
            evals[method] = r
            record = method_record(method, t, r, eval_s, len(common), loaded[method])
            results.append(record)
            rows.append(table_row(method, r, t.train_s))
            print(record, flush=True)
        paired = (
            paired_against(evals, loaded, "fair", args.bootstrap, args.seed)
            if "fair" in evals
            else {}
        )
    wall_s = time.perf_counter() - started
    record = ranking_record(args, base, recipe, data, results, paired, wall_s, threads_per_job)
    name = args.name or ("ranking" if args.seed == 0 else f"ranking-seed{args.seed}")
    out = write_record(name, record, results=args.results_dir)
    print_tables(args, rows, paired, len(archs))
    print_baselines(results)
    print(f"wrote {out}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--k", type=int, default=300)
    parser.add_argument(
        "--preset", default="default", help="training preset of every method (default: default)"
    )
    parser.add_argument(
        "--compute-device",
        choices=("cpu", "cuda"),
        default=None,
        help="where every method trains and is evaluated (default: the preset's; paper: cuda)",
    )
    parser.add_argument("--methods", default="uniform,fair,default")
    parser.add_argument("--cost-column", default="edgegpu_energy")
    parser.add_argument(
        "--cost-model",
        default="hwnasbench-nb201",
        help="training cost model (default: the per-op fit of the evaluation's cost column)",
    )
    parser.add_argument(
        "--data", default="default", help="data set: default (embedded subset) or a path"
    )
    parser.add_argument("--limit-per-class", type=int, default=None)
    parser.add_argument("--epochs-fair", type=int, default=None)
    parser.add_argument("--epochs-pareto", type=int, default=None)
    parser.add_argument(
        "--estimator",
        default=None,
        help="what the default recipe ranks by (default: the preset's); default-nostage, "
        "which trains no alpha, takes the same without alpha's part",
    )
    parser.add_argument(
        "--compare-with",
        type=Path,
        nargs="*",
        default=[],
        help="finished run folders of other methods to evaluate on the same architectures",
    )
    parser.add_argument(
        "--eval-images",
        type=int,
        default=1000,
        help="held-out images per accuracy estimate, in training and evaluation (default: "
        "1,000, all of them with --limit-per-class 1000)",
    )
    parser.add_argument(
        "--bn-batches",
        type=int,
        default=8,
        help="training batches that recalibrate BatchNorm per path, in training and evaluation",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="keep the runs here; calling again with the same --out goes on where a stopped "
        "call left off (finished runs and evaluations are reused, a stopped run resumes)",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, help="paired resamples of the K architectures"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="training seed and seed of the common architectures; other than 0 it writes "
        "bench/results/ranking-seed<N>.json (run seeds side by side, one torch thread each)",
    )
    parser.add_argument(
        "--name",
        default=None,
        help="record name under bench/results/ (default: ranking, or ranking-seed<N>)",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS, help="where the record is written"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="methods trained and evaluated at a time, each in its own process with "
        "torch's threads split between them (default: 1, one after another in this process)",
    )
    args = parser.parse_args()
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {args.jobs}")
    return args


def bench_settings(cfg: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    """The bench's data, seed, estimation and cost settings on top of a preset's config."""
    objective = NB201_COST_COLUMNS[args.cost_column][0]
    device = NB201_COST_COLUMNS[args.cost_column][2]
    cfg = replace(
        cfg,
        dataset=str(args.data),
        limit_per_class=args.limit_per_class,
        seed=args.seed,
        eval_images=args.eval_images,
        bn_batches=args.bn_batches,
        cost_model=args.cost_model,
        objective=objective,
        cost_device=None if args.cost_model == "analytic" else device,
    )
    if args.compute_device is not None:
        cfg = replace(cfg, compute_device=args.compute_device)
    if args.epochs_pareto is not None:
        cfg = replace(cfg, epochs_pareto=args.epochs_pareto)
    return cfg


def run_label(cfg: TrainConfig) -> str:
    """How a run's method reads in the table, e.g. `prp (fair W) (truth targets) 8+8 ep`."""
    variant = (
        f" ({cfg.pareto_w_paths} W)"
        if cfg.method == "prp" and cfg.pareto_w_paths != "argmax"
        else ""
    )
    variant += " (truth targets)" if cfg.method == "prp" and cfg.truth_table else ""
    variant += f" (ranks by {cfg.estimator})" if cfg.estimator != "weights" else ""
    start = f" from {cfg.init}, lr {cfg.lr:g}" if cfg.init != "scratch" else ""
    return f"{cfg.method}{variant} {cfg.epochs_fair}+{cfg.epochs_pareto} ep{start}"


def method_config(
    name: str, args: argparse.Namespace, base: TrainConfig, recipe: TrainConfig
) -> TrainConfig:
    """The config method `name` trains with: `recipe` for default (and default-lr<LR>), else
    `base` (from random weights) with the method and its variant's settings."""
    variants = {
        "prp-truth": {"truth_table": str(args.truth)},
        "prp-fairw": {"pareto_w_paths": "fair"},
        "prp-frontw": {"pareto_w_paths": "front"},
        "prp-truth-fairw": {"truth_table": str(args.truth), "pareto_w_paths": "fair"},
    }
    if name == "default":
        return recipe
    if name == "default-nostage":  # the ablation: the same init, epochs, lr and estimator
        # (less alpha's part, which a run without the stage has not got), W by strict
        # fairness, no alpha, no pruning
        estimator = WITHOUT_ALPHA_PART.get(recipe.estimator, recipe.estimator)
        return replace(recipe, method="fair", estimator=estimator)
    if name.startswith("default-lr"):  # the recipe with another stage-2 weight lr
        try:
            return replace(recipe, lr=float(name.removeprefix("default-lr")))
        except ValueError:
            raise SystemExit(f"{name!r}: write the lr as default-lr0.003") from None
    if name not in ("uniform", "fair", "prp", *variants):
        raise SystemExit(
            f"unknown method {name!r}: default, default-nostage, default-lr<LR>, uniform, "
            f"fair, prp, {', '.join(variants)}"
        )
    return replace(base, method=name.split("-")[0], **variants.get(name, {}))


def train_methods(
    configs: dict[str, TrainConfig], root: Path, jobs: int, threads: int, data: Any
) -> dict[str, Trained]:
    """Each method's run in root/ranking-<method>: reused where an earlier call with this
    --out finished it, else trained (or resumed), `jobs` at a time."""
    trained: dict[str, Trained] = {}
    to_train: list[tuple[str, TrainConfig, Path]] = []
    for method, cfg in configs.items():
        run_dir = root / f"ranking-{method}"
        if (run_dir / FRONT).is_file():  # finished by an earlier call with this --out
            run = load_run(run_dir)
            if run.cfg.to_json() != cfg.to_json():
                raise SystemExit(
                    f"{run_dir} holds a {method} run trained with other options; "
                    f"choose another --out"
                )
            train_s, ops_left = logged_seconds(run_dir), int(run.supernet.op_mask.sum())
            trained[method] = Trained(run_dir, run_label(cfg), train_s, ops_left, True)
            print(f"{method}: reusing the finished run in {run_dir} ({train_s:.0f} s logged)")
        else:
            to_train.append((method, cfg, run_dir))
    if jobs > 1 and len(to_train) > 1:
        # Longest first (scratch methods train all stages), so the pool ends together.
        to_train.sort(key=lambda m: -(m[1].epochs_fair + m[1].epochs_pareto))
        with job_pool(jobs, threads) as pool:
            futures = {m: pool.submit(train_method, cfg, d) for m, cfg, d in to_train}
            done = {m: f.result() for m, f in futures.items()}
    else:
        done = {m: train_method(cfg, d, data) for m, cfg, d in to_train}
    for method, cfg, run_dir in to_train:
        train_s, ops_left, resumed = done[method]
        trained[method] = Trained(run_dir, run_label(cfg), train_s, ops_left, resumed)
        print(f"{method}: trained in {train_s:.0f} s, {ops_left} ops left")
    return trained


def add_compared_runs(trained: dict[str, Trained], run_dirs: list[Path]) -> None:
    """Add the runs of --compare-with, trained earlier: training time from their logs."""
    for d in run_dirs:
        run = load_run(d)
        name = d.name.removeprefix("ranking-")  # a bench folder's run keeps its method name
        if name in trained:
            raise SystemExit(f"{d}: a {name} run is already in this comparison")
        trained[name] = Trained(
            d, run_label(run.cfg), logged_seconds(d), int(run.supernet.op_mask.sum()), True
        )


def common_architectures(
    loaded: dict[str, LoadedRun], k: int, seed: int
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """K architectures drawn with `seed` from those unseen by every run and live in every
    pruned space, so the methods are ranked on the same ones; and that common pool."""
    pools = [set(unseen_live_pool(run)) for run in loaded.values()]
    common = sorted(set.intersection(*pools))
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(common), min(k, len(common)), replace=False)
    return [common[i] for i in sorted(picks)], common


def evaluate_in_parallel(
    trained: dict[str, Trained],
    loaded: dict[str, LoadedRun],
    evaluation: dict[str, Any],
    args: argparse.Namespace,
    images: int,
    threads: int,
) -> dict[str, float]:
    """With --jobs > 1, evaluate the runs without an evaluation of these architectures in
    parallel processes (each writes its evaluation file); their seconds."""
    to_evaluate = [
        m
        for m, t in trained.items()
        if earlier_evaluation(
            t.run_dir, loaded[m].supernet.space, evaluation["archs"], args, images
        )
        is None
    ]
    if args.jobs <= 1 or len(to_evaluate) <= 1:
        return {}
    with job_pool(args.jobs, threads) as eval_pool:
        evaluating = {
            m: eval_pool.submit(evaluate_method, trained[m].run_dir, evaluation)
            for m in to_evaluate
        }
        return {m: f.result() for m, f in evaluating.items()}


def evaluation_of(
    method: str,
    run_dir: Path,
    space: SearchSpace,
    evaluation: dict[str, Any],
    args: argparse.Namespace,
    images: int,
    proxy_cache: ProxyCache,
    eval_seconds: dict[str, float],
) -> tuple[dict[str, Any], float | None]:
    """The run's evaluation on the common architectures, and the seconds it took (None when
    an earlier call's was reused): evaluated here unless a file for them exists."""
    t = time.perf_counter()
    r = earlier_evaluation(run_dir, space, evaluation["archs"], args, images)
    if r is None:
        r = evaluate_run(run_dir, proxy_cache=proxy_cache, **evaluation)
        return r, time.perf_counter() - t
    remember_free_scores(proxy_cache, r)
    if method in eval_seconds:  # evaluated by a parallel job of this call
        return r, eval_seconds[method]
    print(f"{method}: reusing its evaluation of the same architectures")
    return r, None


# The evaluation's figures each method's record keeps.
RECORD_KEYS = (
    "method",
    "k",
    "kendall_tau_b_pareto",
    "kendall_tau_b_accuracy",
    "hypervolume_ratio",
    "live_architectures",
    "kendall_tau_b_pareto_by_estimator",
    "eval_images",
    "bn_batches",
    # free baselines on the same architectures, paired with this run's weights
    "baselines",
    "baseline_settings",
    "supernet_adds_information",
    # what the run itself ranks by (weights, or weights+free) and how that estimator fares
    # against every free baseline and the weights alone
    "run_estimator",
)


def method_record(
    method: str,
    t: Trained,
    r: dict[str, Any],
    eval_s: float | None,
    common_pool: int,
    run: LoadedRun,
) -> dict[str, Any]:
    """One method's entry of the record: its evaluation's figures and how it was obtained."""
    record = {key: r[key] for key in RECORD_KEYS}
    if "run_estimator_verdict" in r:
        record["run_estimator_verdict"] = r["run_estimator_verdict"]
    record |= {
        "name": method,
        "label": t.label,
        "train_s": t.train_s,
        # wall time of this call's training, or the epochs' logged seconds for a run
        # reused or resumed (those leave out the final front's estimates)
        "train_s_from": "log" if t.reused else "wall",
        "eval_s": eval_s,
        "ops_left": t.ops_left,
        "common_pool": common_pool,
        # Estimation settings the run trained with (target pool, final front); runs
        # passed with --compare-with may differ from this evaluation's.
        "trained_with": {k: getattr(run.cfg, k) for k in ("eval_images", "bn_batches")},
    }
    return record


def table_row(method: str, r: dict[str, Any], train_s: float) -> list[Any]:
    """One method's row of the ranking table."""
    by = r["kendall_tau_b_pareto_by_estimator"]
    own = r.get("run_estimator_verdict", {})
    return [
        method,
        own.get("kendall_tau_b_accuracy", r["kendall_tau_b_accuracy"]),
        own.get("kendall_tau_b_pareto", r["kendall_tau_b_pareto"]),
        r["kendall_tau_b_pareto"],
        by.get("alpha", "-"),
        by.get("combined", "-"),
        r["kendall_tau_b_accuracy"],
        r["hypervolume_ratio"],
        train_s,
        r["k"],
    ]


def ranking_record(
    args: argparse.Namespace,
    base: TrainConfig,
    recipe: TrainConfig,
    data: Any,
    results: list[dict[str, Any]],
    paired: dict[str, Any],
    wall_s: float,
    threads_per_job: int,
) -> dict[str, Any]:
    """The record of this call: its settings, every method's results and the pairs."""
    return {
        "seed": args.seed,
        "truth": str(args.truth),
        "cost_column": args.cost_column,
        "training_cost_model": args.cost_model,
        "config": base.to_json(),
        "default_config": recipe.to_json(),  # the "default" method's (shipped init)
        "data": str(args.data),
        "train_images": len(data.train.labels),
        "val_images": len(data.val.labels),
        "limit_per_class": args.limit_per_class,
        "results": results,
        "bootstrap": args.bootstrap,
        # this call's wall time (training and evaluation of what it did not reuse)
        "wall_s": wall_s,
        "jobs": args.jobs,
        "threads_per_job": threads_per_job if args.jobs > 1 else torch.get_num_threads(),
        # every method's estimators minus fairness's, paired over the K architectures
        "paired_against_fair": paired,
    }


def print_tables(
    args: argparse.Namespace, rows: list[list[Any]], paired: dict[str, Any], archs: int
) -> None:
    """The ranking table, then every method minus fairness (when fairness ran)."""
    print_table(
        f"Ranking quality against NAS-Bench-201 ({args.cost_column})",
        [
            "method",
            "tau-b acc (own)",
            "tau-b Pareto (own)",
            "tau-b Pareto (weights)",
            "(alpha)",
            "(combined)",
            "tau-b accuracy",
            "HV ratio",
            "train s",
            "K",
        ],
        rows,
    )
    if paired:
        print_table(
            f"minus fairness, paired bootstrap x{args.bootstrap} over the {archs} architectures",
            ["estimator", "difference", "95 % interval", "P(not better)"],
            [
                [
                    name,
                    v["difference"],
                    f"{v['ci95'][0]:.3f} to {v['ci95'][1]:.3f}",
                    v["p_not_better"],
                ]
                for name, v in paired["against"].items()
            ],
        )


def job_pool(jobs: int, threads: int) -> ProcessPoolExecutor:
    """`jobs` worker processes (spawned: torch does not fork safely), `threads` torch threads
    each, so parallel methods share the cores instead of oversubscribing them."""
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=set_threads,
        initargs=(threads,),
    )


def set_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def train_method(cfg: Any, run_dir: Path, data: Any = None) -> tuple[float, int, bool]:
    """Train (or resume) one method's run in `run_dir` and write its front; returns the training
    seconds (the logged epochs' for a resumed run), the ops left and whether it resumed."""
    resume = (run_dir / CHECKPOINT).is_file()  # stopped part way: go on from there
    t = time.perf_counter()
    trainer = Trainer(cfg, run_dir, data=data)  # data None: loaded from cfg (a worker process)
    front = trainer.run(resume=resume)
    train_s = logged_seconds(run_dir) if resume else time.perf_counter() - t
    trainer.write_front(front)
    return train_s, trainer.supernet.ops_left(), resume


def logged_seconds(run_dir: Path) -> float:
    log = RunLog(run_dir / LOG).records()
    return sum(e.get("epoch_seconds", 0.0) for e in log if e.get("event") == "epoch")


def evaluate_method(run_dir: Path, evaluation: dict[str, Any]) -> float:
    """Evaluate one run on the common architectures (writes its evaluation file); seconds."""
    t = time.perf_counter()
    evaluate_run(run_dir, **evaluation)
    return time.perf_counter() - t


def print_baselines(results: list[dict[str, Any]]) -> None:
    """The free baselines beside each method's estimates, on the same architectures: their
    tau-b (and each method's own rows: alpha's path scores, the weighted combinations), then
    every method's weights minus each baseline (and each weighted combination minus its free
    part, and weights+alpha+all-free minus weights+all-free) with the paired 95 % interval, and
    whether the method's supernet adds information."""
    if not results:
        return
    first = results[0]["baselines"]
    rows = [
        [name, e["kendall_tau_b_accuracy"], e.get("spearman_rho_accuracy", "-")]
        + [e["kendall_tau_b_pareto"]]
        for name, e in first.items()
        if name not in FREE_PART and name != ALPHA
    ]
    rows += [
        [
            f"{r['name']}: {name}",
            r["baselines"][name]["kendall_tau_b_accuracy"],
            r["baselines"][name].get("spearman_rho_accuracy", "-"),
            r["baselines"][name]["kendall_tau_b_pareto"],
        ]
        for r in results
        for name in (ALPHA, *FREE_PART)
        if name in r["baselines"]  # absent: not PRP, or a file from before the combination
    ]
    print_table(
        f"Free baselines on the same {results[0]['k']} architectures (no supernet, no labels)",
        ["estimator", "acc tau-b", "acc rho", "Pareto tau-b"],
        rows,
    )

    def interval(d: dict[str, Any]) -> str:
        return f"{d['diff']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"

    paired = []
    for r in results:
        for name, e in r["baselines"].items():
            if name in FREE_PART:
                diffs = [(f"{name} - {FREE_PART[name]}", e["paired_minus_free"])]
            else:
                diffs = [(f"weights - {name}", e["paired_run_minus_baseline"])]
            if name in WITHOUT_ALPHA_PART:
                part = WITHOUT_ALPHA_PART[name]
                diffs.append((f"{name} - {part}", e["paired_minus_without_alpha"]))
            for label, d in diffs:
                paired.append(
                    [
                        r["name"],
                        label,
                        interval(d["accuracy"]),
                        interval(d["pareto"]),
                        "yes" if d["pareto"]["ci95"][0] > 0 else "no",
                    ]
                )
    print_table(
        "Each method against the free baselines, paired bootstrap over the same architectures",
        ["method", "difference", "tau-b accuracy [95 % CI]", "tau-b Pareto [95 % CI]", "better"],
        paired,
    )
    for r in results:
        print(f"{r['name']}: {r['supernet_adds_information']['sentence']}")


def earlier_evaluation(
    run_dir: Path,
    space: SearchSpace,
    archs: list[tuple[int, ...]],
    args: argparse.Namespace,
    images: int,
) -> dict[str, Any] | None:
    """The run's evaluation file if an earlier call wrote it for these architectures and
    settings, free baselines included (so a stopped benchmark goes on without estimating them
    again), else None. A PRP run's file without alpha's rows (written before they were
    reported) is evaluated again; `evaluate_run` reuses its proxy scores."""
    path = run_dir / EVAL_FILE
    if not path.is_file():
        return None
    r = read_evaluation(path)
    same = (
        [space.decode(a["arch_str"]) for a in r["architectures"]] == [tuple(a) for a in archs]
        and r["truth"] == str(args.truth)
        and r["cost_column"] == args.cost_column
        and r["eval_images"] == images
        and r["bn_batches"] == args.bn_batches
        and r.get("baseline_settings", {}).get("bootstrap") == args.bootstrap
        and (r["method"] != "prp" or "alpha_score" in r["architectures"][0])
    )
    return r if same else None


def paired_against(
    evals: dict[str, dict[str, Any]],
    runs: dict[str, LoadedRun],
    baseline: str,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Every method's Pareto-rank tau-b (each estimator) and accuracy tau-b minus the
    baseline's shared-weight ones, with a paired bootstrap over the common architectures (ranks
    recomputed on each resample, as prp-eval computes them on its K)."""

    def column(r: dict[str, Any], key: str) -> np.ndarray:
        return np.array([a[key] for a in r["architectures"]], dtype=float)

    base = evals[baseline]
    cost, true_acc = column(base, "cost"), column(base, "true_accuracy")
    est = {m: column(r, "estimated_accuracy") for m, r in evals.items()}
    scores = {}
    for m, r in evals.items():
        if r["method"] == "prp":  # P_s of the evaluated architectures, higher = better
            run = runs[m]
            paths = [run.supernet.space.decode(a["arch_str"]) for a in r["architectures"]]
            scores[m] = run.supernet.path_score_array(paths)

    def statistics(idx: np.ndarray) -> dict[str, float]:
        def ranks(acc: np.ndarray) -> np.ndarray:
            return pareto_ranks(np.column_stack([acc[idx], cost[idx]]), MAXIMIZE)

        truth = ranks(true_acc)
        out = {}
        for m, e in est.items():
            mine = ranks(e)
            out[f"{m} weights"] = kendall_tau_b(mine, truth)
            out[f"{m} accuracy"] = kendall_tau_b(e[idx], true_acc[idx])
            if m in scores:
                by = alpha_estimators(scores[m][idx], mine, truth)
                out[f"{m} alpha"], out[f"{m} combined"] = by["alpha"], by["combined"]
        return out

    point = statistics(np.arange(len(cost)))
    for m, r in evals.items():  # the recomputation is the evaluation's
        assert np.isclose(point[f"{m} weights"], r["kendall_tau_b_pareto"])
    pairs = {
        name: f"{baseline} accuracy" if name.endswith(" accuracy") else f"{baseline} weights"
        for name in point
        if not name.startswith(f"{baseline} ")
    }
    return paired_bootstrap(statistics, len(cost), pairs, resamples, seed)


if __name__ == "__main__":
    main()
