"""Free baselines on the same architectures: their scores (computed once per setting and
reused from a cache or an earlier evaluation file), every estimator's tau-b, and the paired
bootstrap of the run's estimates against each."""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats

from ..datasets import DataSplits
from ..errors import PRPError
from ..estimation.az_nas import AZ_NAS_BATCH
from ..estimation.estimators import (
    ALPHA,
    FREE_COMBINATIONS,
    WEIGHTED_COMBINATIONS,
    WITHOUT,
    combination_of,
    combined_members,
)
from ..estimation.proxies import (
    FREE_BASELINES,
    NASWOT_IMAGES,
    PROXIES,
    free_scores,
    proxy_batch,
)
from ..export import LoadedRun
from ..pareto import kendall_tau_b, pareto_ranks
from ..pruning import MAXIMIZE
from ..stats import log_rank_aggregate, paired_bootstrap
from .report import EVAL_FILE, read_evaluation

# settings key -> arch_str -> baseline name -> score: proxy scores already computed, shared by
# the evaluations of several runs of one space (bench/ranking.py) so none is computed twice
ProxyCache = dict[str, dict[str, dict[str, float]]]


def proxy_settings(
    run: LoadedRun, data: DataSplits, seed: int, device: torch.device
) -> dict[str, Any]:
    """What a proxy score depends on besides the architecture; scores are reused only when all
    of it is equal."""
    space = run.supernet.space
    return {
        "space": dataclasses.asdict(space) if dataclasses.is_dataclass(space) else space.describe(),
        "init_seed": seed,
        "init": "the space's PyTorch default initialisation after torch.manual_seed(init_seed)",
        "naswot_images": min(NASWOT_IMAGES, len(data.train)),
        "naswot_image_seed": seed,
        # ZiCo: the NASWOT images and up to as many more (proxies.proxy_batch); jacov: the
        # NASWOT images; AZ-NAS: its own Kaiming init and a Gaussian batch, both seeded
        "proxy_images": min(2 * NASWOT_IMAGES, len(data.train)),
        "az_nas": f"kaiming_normal fan_in init and a torch.randn batch of {AZ_NAS_BATCH}",
        "data": {
            "dataset": run.cfg.dataset,
            "source": data.source,
            "seed": run.cfg.seed,
            "val_fraction": run.cfg.val_fraction,
            "limit_per_class": run.cfg.limit_per_class,
        },
        "device": device.type,
        "baselines": list(FREE_BASELINES),
    }


def cached_free_scores(
    run: LoadedRun,
    paths: Sequence[tuple[int, ...]],
    arch_strs: Sequence[str],
    data: DataSplits,
    seed: int,
    device: torch.device,
    cache: ProxyCache | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Free baseline scores of `paths`, computing only those neither `cache` nor the run's
    earlier evaluation file holds for the same settings; returns them (name -> one per path)
    and the settings, with the seconds per architecture of what was computed."""
    key = json.dumps(proxy_settings(run, data, seed, device), sort_keys=True)
    settings = json.loads(key)  # as an earlier file holds it (tuples as lists)
    earlier = run.run_dir / EVAL_FILE
    found: ProxyCache = {}
    if earlier.is_file():
        try:
            remember_free_scores(found, read_evaluation(earlier))
        except (PRPError, KeyError, TypeError, AttributeError, ValueError):
            pass  # a damaged earlier file is rewritten, its scores computed again
    known = found.get(key, {})
    if cache is not None:
        known |= cache.get(key, {})
    missing = [i for i, a in enumerate(arch_strs) if a not in known]
    seconds: dict[str, float] = {}
    if missing:
        scores, seconds = free_scores(
            run.supernet.space,
            [paths[i] for i in missing],
            proxy_batch(data, seed),
            seed,
            device,
            progress,
        )
        for j, i in enumerate(missing):
            known[arch_strs[i]] = {b: float(scores[b][j]) for b in FREE_BASELINES}
    if cache is not None:
        cache.setdefault(key, {}).update({a: known[a] for a in arch_strs})
    out = {b: np.array([known[a][b] for a in arch_strs]) for b in FREE_BASELINES}
    info = {
        "proxies": settings,
        "computed": len(missing),
        "reused": len(arch_strs) - len(missing),
        "seconds_per_architecture": seconds,
    }
    return out, info


def remember_free_scores(cache: ProxyCache, result: Mapping[str, Any]) -> None:
    """Add the free baseline scores an evaluation file holds to `cache`, so that evaluating
    the same architectures with the same settings again computes none of them."""
    if "baseline_settings" not in result:
        return
    key = json.dumps(result["baseline_settings"]["proxies"], sort_keys=True)
    known = cache.setdefault(key, {})
    for a in result["architectures"]:
        known[a["arch_str"]] = recorded_free_scores(a)


def recorded_free_scores(architecture: Mapping[str, Any]) -> dict[str, float]:
    """One architecture's free baseline scores as an evaluation file holds them (JSON has no
    -inf: a score the proxy could not give is written as null and read back as -inf)."""
    return {
        b: float("-inf") if v is None else float(v) for b, v in architecture["free_scores"].items()
    }


def lacking_proxies(free: Mapping[str, np.ndarray]) -> list[str]:
    """The registered proxies (`PROXIES`) with a free baseline missing from `free`: those that
    cannot score the space (AZ-NAS reads an NB201-style chain of cells; a DARTS cell reads
    two)."""
    return [n for n, p in PROXIES.items() if any(b not in free for b in p.names)]


def estimator_scores(
    est: np.ndarray | None,
    free: Mapping[str, np.ndarray],
    idx: np.ndarray,
    alpha: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every estimator's scores of the architectures `idx` (higher = predicted more accurate):
    the shared weights' (`weights`, when `est` is given), alpha's path scores P_s (`alpha`,
    when given: a PRP run's), each free baseline `free` holds, and the log-rank combinations
    (`FREE_COMBINATIONS`, and with `est` the `WEIGHTED_COMBINATIONS`), aggregated over `idx`
    itself (ranks depend on the set ranked).

    A combination needs all its members, except free baselines of a proxy that cannot score
    the space (`lacking_proxies`): then it aggregates the rest and is named for what it lacks
    (`all-free w/o az-nas`), unless fewer than half of its members remain. A weighted
    combination with `alpha` among its members is left out without `alpha`."""
    out = {} if est is None else {"weights": est[idx]}
    if alpha is not None:
        out[ALPHA] = np.asarray(alpha)[idx]
    out |= {b: np.asarray(free[b])[idx] for b in FREE_BASELINES if b in free}
    lacking = lacking_proxies(free)
    without = f"{WITHOUT}{'+'.join(lacking)}" if lacking else ""
    combos = {**FREE_COMBINATIONS, **(WEIGHTED_COMBINATIONS if est is not None else {})}
    for name, members in combos.items():
        have = [m for m in members if m in out]
        missing = set(members) - set(have)
        if missing - set(FREE_BASELINES) or 2 * len(have) < len(members):
            continue
        parts = (
            combined_members(out["weights"], out, have)
            if name in WEIGHTED_COMBINATIONS
            else [out[m] for m in have]
        )
        out[name + without if missing else name] = log_rank_aggregate(parts)
    return out


def baseline_comparison(
    est: np.ndarray | None,
    free: Mapping[str, np.ndarray],
    true_acc: np.ndarray,
    cost: np.ndarray,
    resamples: int,
    seed: int,
    alpha: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy and Pareto-rank tau-b (and accuracy Spearman rho) of every estimator
    (`estimator_scores`), each score used as the accuracy estimate and combined with the true
    `cost` into Pareto ranks, as the supernet's estimates are; and a paired bootstrap over the
    architectures of weights minus every other estimator and of each weighted combination
    (`WEIGHTED_COMBINATIONS`) minus each free combination, each single baseline, the weights
    and each other weighted combination (free minus each single baseline and combination when
    `est` is None: the free baselines alone)."""

    def statistics(idx: np.ndarray) -> dict[str, float]:
        c = cost[idx]
        truth = pareto_ranks(np.column_stack([true_acc[idx], c]), MAXIMIZE)
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a constant ranking: tau-b NaN
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            for name, score in estimator_scores(est, free, idx, alpha).items():
                r = stats.rankdata(score)  # order-preserving, and finite where naswot is -inf
                ranks = pareto_ranks(np.column_stack([r, c]), MAXIMIZE)
                out[f"{name} accuracy"] = kendall_tau_b(r, true_acc[idx])
                out[f"{name} pareto"] = kendall_tau_b(ranks, truth)
                # Spearman rho beside tau-b, as zero-cost and predictor tables report it
                out[f"{name} rho"] = float(stats.spearmanr(r, true_acc[idx])[0])
        return out

    names = list(estimator_scores(est, free, np.arange(len(cost)), alpha))
    run = "weights" if est is not None else "free"
    pairs = [(f"{run} {m}", f"{b} {m}") for b in names if b != run for m in ("accuracy", "pareto")]
    if est is not None:
        # each weighted combination against the free ones (its own free part among them), the
        # single baselines, the shared weights alone and the other weighted combinations (does
        # alpha add to weights+all-free?)
        weighted = [n for n in names if combination_of(n) in WEIGHTED_COMBINATIONS]
        pairs += [
            (f"{w} {m}", f"{b} {m}")
            for w in weighted
            for b in names
            if b != w
            for m in ("accuracy", "pareto")
        ]
    boot = paired_bootstrap(statistics, len(cost), pairs, resamples, seed)
    return {
        "estimators": {
            n: {
                "kendall_tau_b_accuracy": boot["point"][f"{n} accuracy"],
                "kendall_tau_b_pareto": boot["point"][f"{n} pareto"],
                "spearman_rho_accuracy": boot["point"][f"{n} rho"],
            }
            for n in names
        },
        "ci95": boot["ci95"],
        "paired": boot["against"],
        "resamples": resamples,
    }
