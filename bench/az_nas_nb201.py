"""AZ-NAS on every NAS-Bench-201 architecture, against the published Kendall tau (0.741).

Scores the 15,625 architectures of the NB201 table with AZ-NAS's three scores
(`prp.trainer.estimation.az_nas`: expressivity, progressivity, trainability) at the benchmark's
own size (C=16, N=5, 32 px, a Gaussian batch of 64, Kaiming init, as the authors' NB201 code),
adds complexity (the MACs of the project's op tracing, standing in for the API's FLOPs), and
reports Kendall tau-b and Spearman rho of each score and of the AZ-NAS aggregate (the log-rank
sum of the four) against `cifar10_test_acc`.

    OMP_NUM_THREADS=1 nohup python bench/az_nas_nb201.py \
        --truth ../shared/data/nasbench201/nb201_cifar10_hw.csv > /tmp/az_nas.log 2>&1 &

Scores go to a compressed cache (default `bench/proxy_scores/az_nas-nb201-c16n5-b64-seed0.json.gz`,
keyed by arch_str and the settings), saved atomically every `--save-every` seconds: run the same
command again and it scores only what the cache lacks. Architectures are scored in a random
order (seeded), so a partial cache is a uniform sample and its tau an estimate of the full one
(reported as partial, with a bootstrap interval). `--seconds N` stops scoring after N seconds;
`--report-only` scores nothing and reports the cache. Writes bench/results/az_nas_nb201.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import ROOT, print_table, write_record
from prp.trainer.errors import PRPError
from prp.trainer.estimation.az_nas import AZ_NAS_BATCH, AZ_NAS_SCORES, az_nas
from prp.trainer.estimation.proxies import fresh_supernet
from prp.trainer.estimation.score_file import ScoreFile
from prp.trainer.nb201_table import NB201Table
from prp.trainer.profiling import trace_ops
from prp.trainer.spaces import get_space
from prp.trainer.stats import log_rank_aggregate
from scipy import stats

PUBLISHED = {"authors' notebook": 0.741, "VKDNW re-run": 0.712}
CHUNK = 10  # paths scored per call (one supernet copy each)


def settings(space: Any, seed: int, batch: int) -> dict[str, Any]:
    """What a score depends on besides the architecture (the cache's key)."""
    return {
        "proxy": "az-nas (expressivity, progressivity, trainability)",
        "space": space.describe(),
        "init": "kaiming_normal fan_in (AZ-NAS), each module's own generator seeded with seed "
        "and its name; BN weight 1, bias 0",
        "input": f"torch.randn batch of {batch}, generator seeded with seed",
        "batch": batch,
        "seed": seed,
        "bn": "training mode, batch statistics",
        "dtype": "float32",
    }


def main() -> None:
    args = parse_args()
    space = get_space("nb201", size="real", channels=args.channels, cells_per_stage=args.cells)
    table = NB201Table.load(args.truth)
    cache_path = args.cache or ROOT / "bench" / "proxy_scores" / (
        f"az_nas-nb201-c{args.channels}n{args.cells}-b{args.batch}-seed{args.seed}.json.gz"
    )
    try:
        cache = ScoreFile(cache_path, settings(space, args.seed, args.batch))
    except PRPError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    order = np.random.default_rng(args.seed).permutation(len(table))
    todo = [int(r) for r in order if table.arch_strs[r] not in cache.scores]
    print(f"{len(cache.scores)} cached, {len(todo)} to score; cache {cache_path}", flush=True)
    scored_s, scored_n = 0.0, 0
    if not args.report_only and todo:
        scored_s, scored_n = score(args, space, table, cache, todo)
    record = report(args, space, table, cache)
    inside = cache_path.resolve().is_relative_to(ROOT)
    record["cache"] = str(cache_path.resolve().relative_to(ROOT) if inside else cache_path)
    record["this_call"] = {
        "scored": scored_n,
        "seconds": scored_s,
        "seconds_per_architecture": scored_s / scored_n if scored_n else None,
        "torch_threads": torch.get_num_threads(),
    }
    print(f"wrote {write_record(args.name, record)}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, required=True, help="nb201_cifar10_hw.csv")
    parser.add_argument("--accuracy-column", default="cifar10_test_acc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=5, help="cells per stage (N)")
    parser.add_argument("--batch", type=int, default=AZ_NAS_BATCH)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--save-every", type=float, default=120.0, help="seconds between saves")
    parser.add_argument("--seconds", type=float, default=None, help="stop scoring after this")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--name", default="az_nas_nb201")
    return parser.parse_args()


def score(
    args: argparse.Namespace, space: Any, table: NB201Table, cache: ScoreFile, todo: list[int]
) -> tuple[float, int]:
    """Score `todo` (table rows) in order into `cache`, saving it every `--save-every` seconds
    and at the end; returns the seconds spent and the number scored."""
    supernet = fresh_supernet(space, args.seed)
    start = saved = time.perf_counter()
    done = 0
    try:
        for i in range(0, len(todo), CHUNK):
            rows = todo[i : i + CHUNK]
            paths = [space.decode(table.arch_strs[r]) for r in rows]
            scores = az_nas(supernet, paths, args.seed, batch=args.batch)
            for j, r in enumerate(rows):
                cache.add(table.arch_strs[r], {k: float(scores[k][j]) for k in AZ_NAS_SCORES})
            done += len(rows)
            now = time.perf_counter()
            if now - saved >= args.save_every:
                cache.save()
                saved = now
                print(
                    f"{len(cache.scores)} cached ({done} this call, "
                    f"{(now - start) / done:.2f} s each)",
                    flush=True,
                )
            if args.seconds is not None and now - start >= args.seconds:
                break
    finally:
        cache.save()
    return time.perf_counter() - start, done


def report(
    args: argparse.Namespace, space: Any, table: NB201Table, cache: ScoreFile
) -> dict[str, Any]:
    """Tau-b and rho of each score and of the AZ-NAS aggregate on the cached architectures."""
    rows = np.array([table.index[a] for a in cache.scores])
    if len(rows) < 3:
        raise SystemExit(f"{len(rows)} architectures scored: too few to rank")
    rows.sort()
    paths = [space.decode(table.arch_strs[r]) for r in rows]
    macs = trace_ops(fresh_supernet(space, args.seed)).macs().many(paths)
    truth = table.column(args.accuracy_column)[rows]
    members = {
        k: np.array([cache.scores[table.arch_strs[r]][k] for r in rows]) for k in AZ_NAS_SCORES
    }
    members["complexity (macs)"] = macs
    scores = {**members, "az-nas": log_rank_aggregate(list(members.values()))}
    rng = np.random.default_rng(args.seed)
    agg = scores["az-nas"]
    boot = [
        stats.kendalltau(agg[idx], truth[idx])[0]
        for idx in (rng.integers(0, len(rows), len(rows)) for _ in range(args.bootstrap))
    ]
    taus = {
        name: {
            "kendall_tau_b": float(stats.kendalltau(s, truth)[0]),
            "spearman_rho": float(stats.spearmanr(s, truth)[0]),
        }
        for name, s in scores.items()
    }
    partial = len(rows) < len(table)
    print_table(
        f"AZ-NAS on {len(rows)} of {len(table)} NB201 architectures"
        + (" (PARTIAL: a random sample)" if partial else "")
        + f", against {args.accuracy_column}",
        ["score", "Kendall tau-b", "Spearman rho"],
        [[n, t["kendall_tau_b"], t["spearman_rho"]] for n, t in taus.items()],
    )
    return {
        "truth": str(args.truth),
        "accuracy_column": args.accuracy_column,
        "settings": cache.settings,
        "architectures": len(rows),
        "of": len(table),
        "partial": partial,
        "sample": "a uniform random order of the table (seeded), scored from the start",
        "estimators": taus,
        "az_nas_tau_b_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "bootstrap": args.bootstrap,
        "published_kendall_tau": PUBLISHED,
        "non_finite": {k: int(np.sum(~np.isfinite(v))) for k, v in members.items()},
    }


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
