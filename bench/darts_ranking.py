"""Ranking without an offline benchmark, DARTS space: a search run's estimators against a
reduced-training truth (issue 34 point 4).

    OMP_NUM_THREADS=1 python bench/darts_ranking.py --run RUN --out DIR [--n 24] [--epochs 3]

RUN is a finished DARTS search run (`prp-train --space darts ...`); without --run, `--train
PRESET` first trains one into DIR/search (resumed there when a call stopped). NAS-Bench-301 cannot
be installed here, so the truth is made here:

1. Draw: `--pool` paths sampled uniformly (`SearchSpace.sample`) among the live ops of the run's
   pruned supernet, less those that fed its training (as prp-eval's `unseen_live_pool`), priced
   with the run's own cost model; N evenly spaced cost targets from the cheapest to the dearest,
   and for each the unused path nearest to it: N distinct paths across the whole cost range.
2. Truth: each path trained standalone from scratch (a fresh supernet of the run's space, at the
   run's size, pruned to that path's ops: `path_training.prune_to`, trained on that one path by
   `path_training.train`: SGD with Nesterov momentum, warm-up then cosine lr) for `--epochs` on
   the run's train split, then its top-1 on the run's held-out validation split, BatchNorm
   re-estimated first (`path_training.measure_paths`). Every path gets the same seed, so the
   same batch order and augmentation. Each result is kept in DIR/standalone.json as it finishes:
   calling again with the same --out trains only the paths not trained yet.
3. Estimators of the same paths: the run's shared-weight estimate (`evaluate.estimate_paths`),
   params, MACs and every free proxy (`proxies.FREE_BASELINES`) on a fresh supernet seeded with
   the run's seed, and the log-rank combinations (`estimators.FREE_COMBINATIONS`,
   `WEIGHTED_COMBINATIONS`), all by `evaluate.baseline_comparison`, as prp-eval ranks them:
   Kendall tau-b and Spearman rho against the truth's accuracy, tau-b of Pareto ranks with the
   run's cost (NaN for a score that orders the paths as their cost does: every path is then on
   one front), and a paired bootstrap over the N paths of the shared weights minus every other
   estimator. A proxy that cannot score DARTS (AZ-NAS reads a chain of single-input cells) is
   listed as unavailable, and a combination without it is named so (`all-free w/o az-nas`).

The truth is a proxy truth: short standalone training on the run's own small data, not the
accuracy of the paths trained to convergence (see TRUTH and KNOWN below, both in the record).
Writes bench/results/darts_ranking[-NAME].json ($PRP_BENCH_RESULTS or --results-dir elsewhere).

Cost, timed on 1 thread of this machine (2 busy cores) at the real DARTS size (C=16, 8 cells,
the default data: 4,500 train / 500 held-out images, batch 64): a mid-cost path trains at about
1.7 s a step, 70 steps an epoch, and each epoch's measurement (2,000 BatchNorm images, 500
held-out) takes about 40 s: about 2.7 min per path-epoch, so `--n 24 --epochs 3` about 3.2 h
and `--epochs 5` about 5.3 h, plus about 10 min of estimates and proxies.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import RESULTS, print_table, write_record
from prp.trainer import path_training as pt
from prp.trainer.config import preset
from prp.trainer.costs import price_supernet
from prp.trainer.datasets import DataSplits
from prp.trainer.errors import PRPError
from prp.trainer.estimation.proxies import PROXIES, free_scores, fresh_supernet, proxy_batch
from prp.trainer.evaluate import (
    baseline_comparison,
    estimate_paths,
    evaluation_device,
    proxy_settings,
)
from prp.trainer.export import LoadedRun, load_run
from prp.trainer.pareto import kendall_tau_b
from prp.trainer.profiling import trace_ops
from prp.trainer.runs import CHECKPOINT, FRONT, read_json, write_json
from prp.trainer.spaces import Path as ArchPath
from prp.trainer.train import Trainer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

CACHE = "standalone.json"  # the trained paths of an --out folder, one entry per path
TRUTH = (
    "proxy truth: each path's top-1 % on the search run's held-out validation split after a "
    "short standalone training from scratch (the epochs of `standalone_recipe`) on the run's "
    "own train split at the run's size; not the accuracy of the paths trained to convergence "
    "on the full data, which NAS-Bench-301 would give and which cannot be had here"
)
# What is known about how short training ranks architectures, as far as it could be checked
# (../shared/notes/ranking-at-small-scale.md, section 3, holds the sources).
KNOWN = [
    "NAS-Bench-201 (Dong & Yang, ICLR 2020) gives every architecture's accuracy after a "
    "12-epoch and a 200-epoch schedule; their rank correlation is about 0.90 (its appendix "
    "Table 6, as quoted in D-X-Y/AutoDL-Projects issue 96; the coefficient is not named, so it "
    "is not known to be Kendall's), and about 0.80 to 0.91 when recomputed on NATS-Bench "
    "(the same issue).",
    "EcoNAS (Zhou et al., CVPR 2020) measures how reduced-training proxies (fewer epochs, "
    "channels, images, lower resolution) keep the ranking of full training, on its own "
    "networks: rank consistency depends on which factor is reduced and by how much, and at "
    "equal iterations more training images with fewer epochs rank better than fewer images "
    "with more epochs. The zero-cost-nas README puts two EcoNAS settings at Spearman 0.61 and "
    "about 0.80 on NAS-Bench-201, and the validation accuracy after epoch 11 of the 200-epoch "
    "schedule at about 0.76.",
    "NAS-Bench-301 (Zela, Siems et al., ICLR 2022) is a surrogate benchmark of the DARTS space "
    "fitted on tens of thousands of trained DARTS architectures; it is the offline truth this "
    "bench would use, and it cannot be installed here.",
    "Here the truth reads the run's own small data for a few epochs: a proxy of a proxy. Its "
    "`truth_stability` (tau-b of each epoch's accuracies against the last epoch's) shows how "
    "settled its ranking is; a rising curve says more epochs would still reorder it.",
]


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    run_dir = args.run or search_run(args)
    run = load_run(run_dir)
    if run.supernet.space.name != "darts":
        raise SystemExit(f"{run_dir} searched {run.supernet.space.name!r}; this bench is DARTS'")
    space = run.supernet.space
    data = run.cfg.load_data(space.input_shape[-1])  # the run's own split, at its size
    print(f"{run_dir}: {len(data.train)} train / {len(data.val)} held-out images")

    pool, pool_cost, model = priced_pool(run, args.pool, args.seed)
    picked = spread_by_cost(pool_cost, args.n)
    paths, cost = [pool[i] for i in picked], pool_cost[picked]
    keys = [space.encode(p) for p in paths]
    print(
        f"drew {len(paths)} of {len(pool)} unseen live paths, {cost[0]:.4g} to {cost[-1]:.4g} "
        f"{model.unit} (pool {pool_cost.min():.4g} to {pool_cost.max():.4g})"
    )

    recipe = standalone_recipe(run, args)
    trained, fresh = train_all(run, paths, keys, data, recipe, args)
    truth = np.array([trained[k]["accuracy"] for k in keys])

    t = time.perf_counter()
    est, _, images = estimate_paths(
        run, paths, seed=args.seed, compute_device=args.compute_device, data=data
    )
    device = evaluation_device(run.cfg.compute_device, args.compute_device)
    free, unavailable = free_baselines(run, paths, data, device)
    for proxy, reason in unavailable.items():
        print(f"{proxy}: not scored on this space ({reason})")
    score_s = time.perf_counter() - t
    # alpha's path scores P_s (PRP runs): a row, and a weighted member
    alpha = run.supernet.path_score_array(paths) if run.cfg.method == "prp" else None
    comparison = baseline_comparison(est, free, truth, cost, args.bootstrap, args.seed, alpha)

    record = {
        "truth": TRUTH,
        "known": KNOWN,
        "run": str(run_dir),
        "run_config": run.cfg.to_json(),
        "run_estimator": run.cfg.estimator,
        "cost": {
            "objective": run.cfg.objective,
            "unit": model.unit,
            "device": model.device,
            "source": model.source,
        },
        "train_images": len(data.train),
        "val_images": len(data.val),
        "estimate_images": images,
        "draw": {
            "n": len(paths),
            "pool_sampled": args.pool,
            "pool_unseen_unique": len(pool),
            "pool_cost_range": [float(pool_cost.min()), float(pool_cost.max())],
            "seed": args.seed,
        },
        "standalone_recipe": recipe_settings(recipe),
        "architectures": architecture_records(keys, paths, cost, est, free, trained),
        "truth_stability": truth_stability(trained, keys),
        "estimators": comparison["estimators"],
        "ci95": comparison["ci95"],
        # the shared weights minus every other estimator, and each weighted combination
        # minus the weights and each free combination, paired over the N paths
        "paired": comparison["paired"],
        "bootstrap": args.bootstrap,
        "proxies": {
            **proxy_settings(run, data, run.cfg.seed, device),
            "baselines": list(free),
            # registered proxies that cannot score this space, with the reason they give
            "unavailable": unavailable,
        },
        "trained_this_call": fresh,
        "reused": len(keys) - fresh,
        "score_seconds": score_s,
        "wall_s": time.perf_counter() - started,
        "threads": torch.get_num_threads(),
    }
    name = "darts_ranking" + (f"-{args.name}" if args.name else "")
    out = write_record(name, record, results=args.results_dir)
    print_tables(comparison, len(keys), args.bootstrap)
    print(f"wrote {out}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=None, help="a finished DARTS search run")
    parser.add_argument(
        "--train",
        default=None,
        metavar="PRESET",
        help="without --run: train a DARTS search run with this preset into OUT/search first",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="trained paths are kept here (resumable)"
    )
    parser.add_argument("--n", type=int, default=24, help="paths drawn across the cost range")
    parser.add_argument("--pool", type=int, default=4000, help="paths sampled to draw from")
    parser.add_argument("--epochs", type=int, default=3, help="standalone epochs per path")
    parser.add_argument("--lr", type=float, default=None, help="peak lr (default: the run's)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="(default: the run's batch size)"
    )
    parser.add_argument(
        "--warmup-epochs",
        type=float,
        default=0.5,
        help="linear lr warm-up before the cosine decay (path training's 1 is for 15 epochs)",
    )
    parser.add_argument(
        "--bn-images", type=int, default=2000, help="train images that re-estimate BatchNorm"
    )
    parser.add_argument("--compute-device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired resamples")
    parser.add_argument("--seed", type=int, default=0, help="the draw, the training, the CI")
    parser.add_argument("--name", default=None, help="record name suffix")
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS, help="where the record is written"
    )
    args = parser.parse_args()
    if args.run is None and args.train is None:
        parser.error("give --run RUN (a finished DARTS search run) or --train PRESET")
    if args.n < 2 or args.epochs < 1:
        parser.error(f"--n must be at least 2 and --epochs at least 1, got {args.n}, {args.epochs}")
    return args


def search_run(args: argparse.Namespace) -> Path:
    """OUT/search: a DARTS search run of preset `--train`, trained (or resumed) unless done."""
    run_dir = args.out / "search"
    if not (run_dir / FRONT).is_file():
        cfg = preset(args.train, space="darts", seed=args.seed)
        if args.compute_device is not None:
            cfg = replace(cfg, compute_device=args.compute_device)
        trainer = Trainer(cfg, run_dir)
        trainer.write_front(trainer.run(resume=(run_dir / CHECKPOINT).is_file()))
    return run_dir


def priced_pool(run: LoadedRun, size: int, seed: int) -> tuple[list[ArchPath], np.ndarray, Any]:
    """`size` uniform samples among the run's live ops, without repeats and without the paths
    that fed its training, and their cost under the run's cost model; and the model."""
    rng = np.random.default_rng(seed)
    sampled = dict.fromkeys(run.supernet.sample_uniform(rng) for _ in range(size))
    pool = [p for p in sampled if p not in run.fed_training]
    model = run.cfg.build_cost_model()
    run.supernet.cpu()  # op tracing runs on the host
    table = price_supernet(run.supernet, model, trace_ops(run.supernet))
    return pool, table.many(pool), model


def spread_by_cost(cost: np.ndarray, n: int) -> list[int]:
    """Indices of `n` distinct items evenly across the cost range: for each of `n` evenly
    spaced targets from the lowest cost to the highest, the unused item nearest to it; sorted
    by cost. The cheapest and the dearest item are always among them."""
    if len(cost) < n:
        raise SystemExit(
            f"only {len(cost)} distinct unseen paths to draw {n} from: raise --pool or lower --n"
        )
    free = np.ones(len(cost), dtype=bool)
    picked = []
    for target in np.linspace(cost.min(), cost.max(), n):
        left = np.flatnonzero(free)
        i = int(left[np.argmin(np.abs(cost[left] - target))])
        free[i] = False
        picked.append(i)
    return sorted(picked, key=lambda i: (cost[i], i))


def standalone_recipe(run: LoadedRun, args: argparse.Namespace) -> pt.PathRecipe:
    """How every drawn path is trained: path training's recipe on the run's data, one path
    (no distillation), the run's batch size and lr unless given."""
    cfg = run.cfg
    return pt.PathRecipe(
        search_run=str(run.run_dir.resolve()),
        keys=(),
        space=cfg.space,
        space_overrides=dict(cfg.space_overrides),
        dataset=cfg.dataset,
        val_fraction=cfg.val_fraction,
        limit_per_class=cfg.limit_per_class,
        skip_bad_images=cfg.skip_bad_images,
        epochs=args.epochs,
        batch_size=args.batch_size or cfg.batch_size,
        lr=args.lr or cfg.lr,
        warmup_epochs=args.warmup_epochs,
        distill=0.0,
        bn_images=args.bn_images,
        seed=args.seed,
    )


def recipe_settings(recipe: pt.PathRecipe) -> dict[str, Any]:
    """The recipe as the cache and the record keep it (the same for every path)."""
    return {k: v for k, v in recipe.to_json().items() if k != "keys"}


def open_cache(out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The --out folder's trained paths, refused when they were trained with other settings."""
    path = out / CACHE
    if not path.is_file():
        return {"settings": settings, "architectures": {}}
    cache = read_json(path)
    was, now = cache.get("settings", {}), json.loads(json.dumps(settings))
    # Where the search run sits does not change what a path trains to (its space, data and
    # recipe do): a copy of the run and its --out on another machine goes on with them.
    differ = sorted(k for k in {*was, *now} if k != "search_run" and was.get(k) != now.get(k))
    if differ:
        changes = ", ".join(f"{k} {was.get(k)!r} -> {now.get(k)!r}" for k in differ)
        raise SystemExit(
            f"{path} holds paths trained with other settings ({changes}); give the same "
            f"options to go on with them, or choose another --out"
        )
    return dict(cache)


def train_all(
    run: LoadedRun,
    paths: list[ArchPath],
    keys: list[str],
    data: DataSplits,
    recipe: pt.PathRecipe,
    args: argparse.Namespace,
) -> tuple[dict[str, dict[str, Any]], int]:
    """Every path's standalone result, training those the --out cache lacks (each written to
    it as it finishes); returns the results by key and how many this call trained."""
    cache = open_cache(args.out, recipe_settings(recipe))
    done: dict[str, dict[str, Any]] = cache["architectures"]
    todo = [(k, p) for k, p in zip(keys, paths, strict=True) if k not in done]
    print(f"standalone training: {len(keys) - len(todo)} reused, {len(todo)} to train")
    steps = len(data.train) // recipe.batch_size
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns) as bar:
        archs = bar.add_task("paths", total=len(todo))
        for key, path in todo:
            work = bar.add_task(f"path {len(done) + 1}/{len(keys)}", total=recipe.epochs * steps)

            def say(record: dict[str, Any], work: Any = work) -> None:
                if record["event"] == "step":
                    bar.update(work, completed=record["epoch"] * steps + record["step"])

            done[key] = train_standalone(run, path, data, recipe, args, say)
            write_json(args.out / CACHE, cache)
            bar.remove_task(work)
            bar.advance(archs)
    return done, len(todo)


def train_standalone(
    run: LoadedRun,
    path: ArchPath,
    data: DataSplits,
    recipe: pt.PathRecipe,
    args: argparse.Namespace,
    say: pt.Say,
) -> dict[str, Any]:
    """One path trained from scratch on its own at the run's size (a fresh supernet of the
    run's space pruned to its ops), measured on the held-out split after every epoch."""
    space = run.supernet.space
    net = fresh_supernet(space, recipe.seed)  # the same initial weights for every path's ops
    pt.prune_to(net, [path, pt.compute_path(space, path)])
    net.to(pt.compute_device(args.compute_device))
    # path_training's loop writes its log and checkpoints beside the run: a scratch folder,
    # dropped once the path's result is in the cache.
    with tempfile.TemporaryDirectory(dir=args.out, prefix="training-") as work:
        session = pt.Session(
            Path(work),
            replace(recipe, keys=(space.encode(path),)),
            run.cfg,
            net,
            [path],
            data,
            pt.weight_optimizer(net, recipe),
            pt.Progress(),
        )
        pt.train(session, say)
    history = session.progress.history
    return {
        "accuracy": history[-1]["val_accuracy"][0],
        "accuracy_by_epoch": [h["val_accuracy"][0] for h in history],
        "train_seconds": session.progress.train_seconds,
        "device": history[-1]["device"],
        "threads": history[-1]["threads"],
    }


def free_baselines(
    run: LoadedRun, paths: list[ArchPath], data: DataSplits, device: torch.device
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Params, MACs and every registered proxy's scores of `paths` on a fresh supernet seeded
    with the run's seed, as prp-eval scores them; a proxy that cannot score this space (AZ-NAS
    reads an NB201-style chain of cells, a DARTS cell reads two) is left out, with its reason."""
    seed = run.cfg.seed
    batch = proxy_batch(data, seed)
    scores: dict[str, np.ndarray] = {}
    unavailable: dict[str, str] = {}
    for name, proxy in PROXIES.items():
        try:
            got, _ = free_scores(run.supernet.space, paths, batch, seed, device, only=proxy.names)
        except ValueError as e:
            unavailable[name] = str(e)
            continue
        scores |= got
    return scores, unavailable


def architecture_records(
    keys: list[str],
    paths: list[ArchPath],
    cost: np.ndarray,
    est: np.ndarray,
    free: Mapping[str, np.ndarray],
    trained: Mapping[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """One record per drawn path, cheapest first: its truth and every estimator's score."""
    return [
        {
            "key": k,
            "path": list(p),
            "cost": float(c),
            "trained_accuracy": trained[k]["accuracy"],
            "accuracy_by_epoch": trained[k]["accuracy_by_epoch"],
            "train_seconds": trained[k]["train_seconds"],
            "estimated_accuracy": float(e),
            "free_scores": {b: float(v[i]) for b, v in free.items()},
        }
        for i, (k, p, c, e) in enumerate(zip(keys, paths, cost, est, strict=True))
    ]


def truth_stability(trained: dict[str, dict[str, Any]], keys: list[str]) -> list[float | None]:
    """tau-b of the paths' accuracies after each epoch against those after the last (None
    where a ranking is constant)."""
    by_epoch = np.array([trained[k]["accuracy_by_epoch"] for k in keys], dtype=float)
    out: list[float | None] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for e in range(by_epoch.shape[1]):
            tau = kendall_tau_b(by_epoch[:, e], by_epoch[:, -1])
            out.append(None if np.isnan(tau) else float(tau))
    return out


def print_tables(comparison: dict[str, Any], n: int, resamples: int) -> None:
    """Each estimator's figures against the truth, with the shared weights minus it."""
    paired = comparison["paired"]

    def minus(name: str) -> str:
        d = paired.get(f"weights accuracy - {name} accuracy")
        if d is None:
            return "-"
        return f"{d['difference']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"

    print_table(
        f"DARTS: estimators against short standalone training (proxy truth), {n} paths",
        ["estimator", "acc tau-b", "acc rho", "Pareto tau-b", f"weights - it (x{resamples})"],
        [
            [
                name,
                e["kendall_tau_b_accuracy"],
                e["spearman_rho_accuracy"],
                e["kendall_tau_b_pareto"],
                minus(name),
            ]
            for name, e in comparison["estimators"].items()
        ],
    )


if __name__ == "__main__":
    try:
        main()
    except PRPError as e:
        raise SystemExit(str(e)) from None
