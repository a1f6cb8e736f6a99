"""Ranking quality of a trained NB201 supernet against NAS-Bench-201 + HW-NAS-Bench ground truth.

For K architectures that never fed the training signal (and that the pruned supernet can still
run), the supernet's accuracy estimates and the table's true accuracies are each combined with the
same true cost column into Pareto ranks; Kendall's tau-b between the two rankings is the paper's
measure (section 3.1). Also: tau-b of accuracy alone, the hypervolume of the run's front (priced
with true values) over that of the true front, and where the run's picks sit in the true ranking.

Reference point for both hypervolumes (documented, the same for all runs of a table): accuracy
= the lowest true accuracy in the table, cost = the highest cost in the table's column.

Every evaluation also ranks the same architectures with free baselines (DESIGN: estimates must
earn their keep): params and MACs of the project's op tracing, synflow and NASWOT on freshly
initialised weights (`proxies`), and their log-rank combination `free` (params + synflow +
NASWOT), each used as the accuracy estimate exactly as the supernet's are; and the combination
`supernet+free` (shared-weight accuracy + the same three), which must beat `free` for the
shared weights to count as adding information. A paired bootstrap over the K architectures
gives the interval of every difference. No estimator reads the table.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from .benchmarks import NB201Table
from .config import TrainConfig
from .datasets import DataSplits, load_dataset
from .errors import PRPError
from .estimators import FREE_COMBINATION, combined_members
from .export import LoadedRun, load_run
from .pareto import hypervolume, kendall_tau_b, pareto_ranks
from .proxies import FREE_BASELINES, NASWOT_IMAGES, free_scores, proxy_images
from .pruning import MAXIMIZE
from .runs import atomic_path, read_json, write_json
from .stats import log_rank_aggregate, paired_bootstrap
from .train import Tensors, estimate_accuracy, torch_device

EVAL_FILE = "eval_nb201.json"
# Free combination of `FREE_COMBINATION` (log-rank sum, `stats.log_rank_aggregate`) and the
# same with the supernet (`estimators.combined_members`: a run's estimator "weights+free").
COMBINATIONS = ("free", "supernet+free")
# The row of the baselines section that is a run's own estimator (`TrainConfig.estimator`).
RUN_ESTIMATOR_ROW = {"weights": "weights", "weights+free": "supernet+free"}
# settings key -> arch_str -> baseline name -> score: proxy scores already computed, shared by
# the evaluations of several runs of one space (bench/ranking.py) so none is computed twice
ProxyCache = dict[str, dict[str, dict[str, float]]]


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
    data = load_dataset(
        run.cfg.dataset,
        val_fraction=run.cfg.val_fraction,
        seed=run.cfg.seed,
        limit_per_class=run.cfg.limit_per_class,
        image_size=run.supernet.space.input_shape[-1],  # the size the run trained at
    )
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
        # its row among the baselines is `RUN_ESTIMATOR_ROW` (weights+free: supernet+free).
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
    data: DataSplits | None = None,
) -> tuple[np.ndarray, TrainConfig, int]:
    """Shared-weight accuracy estimates (%) of `paths` with the run's supernet, on the run's own
    data split; returns them, the settings used and the number of held-out images each read.

    `eval_images` and `bn_batches` default to the run's settings. Every path's BN recalibration
    draws its batches from a generator seeded with `seed`, so the estimates do not depend on
    which other paths are estimated or in what order. The estimates run on `compute_device`
    (default: the run's own where available, else cpu); the supernet stays there afterwards.
    `data` is the run's data set when the caller has loaded it already.
    """
    cfg = replace(
        run.cfg,
        eval_images=eval_images or run.cfg.eval_images,
        bn_batches=bn_batches or run.cfg.bn_batches,
    )
    device = evaluation_device(run.cfg.compute_device, compute_device)
    run.supernet.to(device)
    if data is None:
        data = load_dataset(
            cfg.dataset,
            val_fraction=cfg.val_fraction,
            seed=cfg.seed,
            limit_per_class=cfg.limit_per_class,
            image_size=run.supernet.space.input_shape[-1],
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
            remember_free_scores(found, read_json(earlier))
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
            proxy_images(data, seed),
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
        known[a["arch_str"]] = {
            b: float("-inf") if v is None else float(v) for b, v in a["free_scores"].items()
        }


def estimator_scores(
    est: np.ndarray | None, free: Mapping[str, np.ndarray], idx: np.ndarray
) -> dict[str, np.ndarray]:
    """Every estimator's scores of the architectures `idx` (higher = predicted more accurate):
    the shared weights' (`weights`, when `est` is given), each free baseline, and the log-rank
    combinations, aggregated over `idx` itself (ranks depend on the set ranked)."""
    out = {} if est is None else {"weights": est[idx]}
    out |= {b: np.asarray(free[b])[idx] for b in FREE_BASELINES}
    members = [out[m] for m in FREE_COMBINATION]
    out["free"] = log_rank_aggregate(members)
    if est is not None:
        out["supernet+free"] = log_rank_aggregate(combined_members(out["weights"], out))
    return out


def baseline_comparison(
    est: np.ndarray | None,
    free: Mapping[str, np.ndarray],
    true_acc: np.ndarray,
    cost: np.ndarray,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Accuracy and Pareto-rank tau-b of every estimator (`estimator_scores`), each score used
    as the accuracy estimate and combined with the true `cost` into Pareto ranks, as the
    supernet's estimates are; and a paired bootstrap over the architectures of weights minus
    each baseline and of supernet+free minus free (free minus each single baseline when `est`
    is None: the free baselines alone)."""

    def statistics(idx: np.ndarray) -> dict[str, float]:
        c = cost[idx]
        truth = pareto_ranks(np.column_stack([true_acc[idx], c]), MAXIMIZE)
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a constant ranking: tau-b NaN
            for name, score in estimator_scores(est, free, idx).items():
                r = stats.rankdata(score)  # order-preserving, and finite where naswot is -inf
                ranks = pareto_ranks(np.column_stack([r, c]), MAXIMIZE)
                out[f"{name} accuracy"] = kendall_tau_b(r, true_acc[idx])
                out[f"{name} pareto"] = kendall_tau_b(ranks, truth)
        return out

    run = "weights" if est is not None else "free"
    others = [*FREE_BASELINES, *([] if est is None else COMBINATIONS)]
    pairs = [(f"{run} {m}", f"{b} {m}") for b in others for m in ("accuracy", "pareto")]
    if est is not None:
        # supernet+free against free, and (for runs whose estimator it is) against the
        # shared weights alone and each single baseline
        pairs += [
            (f"supernet+free {m}", f"{b} {m}")
            for b in ("free", "weights", *FREE_BASELINES)
            for m in ("accuracy", "pareto")
        ]
    boot = paired_bootstrap(statistics, len(cost), pairs, resamples, seed)
    names = dict.fromkeys(k.rsplit(" ", 1)[0] for k in boot["point"])
    return {
        "estimators": {
            n: {
                "kendall_tau_b_accuracy": boot["point"][f"{n} accuracy"],
                "kendall_tau_b_pareto": boot["point"][f"{n} pareto"],
            }
            for n in names
        },
        "ci95": boot["ci95"],
        "paired": boot["against"],
        "resamples": resamples,
    }


def _beats(d: Mapping[str, Any]) -> str:
    low, high = d["ci95"]
    if not (np.isfinite(low) and np.isfinite(high)):
        return "undefined (a ranking is constant on these architectures)"
    if low > 0:
        return "yes (interval excludes zero)"
    if high < 0:
        return "no (worse, interval excludes zero)"
    return "no (interval includes zero)"


def _paired(d: Mapping[str, Any]) -> dict[str, Any]:
    return {"diff": d["difference"], "ci95": d["ci95"], "p_not_better": d["p_not_better"]}


def baselines_section(comparison: Mapping[str, Any]) -> dict[str, Any]:
    """The `baselines` section of the evaluation file: per free baseline and combination, its
    accuracy and Pareto tau-b (with 95 % intervals), the paired interval of run (shared-weight
    estimates) minus it, and a verdict; supernet+free also carries supernet+free minus free."""
    paired, ci = comparison["paired"], comparison["ci95"]
    section: dict[str, Any] = {}
    for name in (*FREE_BASELINES, *COMBINATIONS):
        taus = comparison["estimators"][name]
        vs = {m: paired[f"weights {m} - {name} {m}"] for m in ("accuracy", "pareto")}
        entry = {
            **taus,
            "ci95": {m: ci[f"{name} {m}"] for m in ("accuracy", "pareto")},
            "paired_run_minus_baseline": {m: _paired(d) for m, d in vs.items()},
            "verdict": f"supernet beats {name}: Pareto tau-b {_beats(vs['pareto'])}; "
            f"accuracy tau-b {_beats(vs['accuracy'])}",
        }
        if name == "supernet+free":
            gain = {m: paired[f"supernet+free {m} - free {m}"] for m in ("accuracy", "pareto")}
            entry["paired_minus_free"] = {m: _paired(d) for m, d in gain.items()}
            entry["verdict_against_free"] = (
                f"supernet+free beats free: Pareto tau-b {_beats(gain['pareto'])}; "
                f"accuracy tau-b {_beats(gain['accuracy'])}"
            )
        section[name] = entry
    return section


def run_estimator_verdict(comparison: Mapping[str, Any], estimator: str) -> dict[str, Any]:
    """The run's own estimator (`TrainConfig.estimator`; its row: `RUN_ESTIMATOR_ROW`) against
    each free baseline, `free` and (for weights+free) the shared weights alone: the paired
    difference of Pareto and accuracy tau-b with its interval, a verdict per baseline and one
    sentence."""
    row = RUN_ESTIMATOR_ROW[estimator]
    paired = comparison["paired"]
    others = [*FREE_BASELINES, "free", *(["weights"] if row != "weights" else [])]
    against: dict[str, dict[str, Any]] = {}
    for b in others:
        vs = {m: paired[f"{row} {m} - {b} {m}"] for m in ("accuracy", "pareto")}
        against[b] = {
            **{m: _paired(d) for m, d in vs.items()},
            "verdict": f"{row} beats {b}: Pareto tau-b {_beats(vs['pareto'])}; "
            f"accuracy tau-b {_beats(vs['accuracy'])}",
        }
    beaten = [b for b in others if against[b]["pareto"]["ci95"][0] > 0]
    taus = comparison["estimators"][row]
    sentence = (
        f"The run's estimator {estimator!r} ({row}) reaches Pareto tau-b "
        f"{taus['kendall_tau_b_pareto']:.3f} and beats {len(beaten)} of {len(others)} "
        f"({', '.join(others)}) with a paired interval above zero"
        f"{' (' + ', '.join(beaten) + ')' if beaten else ''}."
    )
    return {
        "estimator": estimator,
        "row": row,
        **taus,
        "against": against,
        "beats": beaten,
        "sentence": sentence,
    }


def adds_information(section: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the shared weights add information beyond the free baselines on Pareto tau-b:
    supernet+free above free with an interval that excludes zero (the combination test the
    issue asks of any estimator that mixes the two); and which baselines the weights beat
    alone."""
    gain = section["supernet+free"]["paired_minus_free"]["pareto"]
    low, high = gain["ci95"]
    adds = bool(np.isfinite(low) and low > 0)
    beaten = [
        b
        for b in (*FREE_BASELINES, "free")
        if section[b]["paired_run_minus_baseline"]["pareto"]["ci95"][0] > 0
    ]
    sentence = (
        f"The supernet {'adds' if adds else 'does not add'} information beyond the free "
        f"baselines: adding its estimates to the free combination changes Pareto tau-b by "
        f"{gain['diff']:+.3f} (95 % interval {low:+.3f} to {high:+.3f}); alone it beats "
        f"{len(beaten)} of {len(FREE_BASELINES) + 1} free baselines with an interval above "
        f"zero{' (' + ', '.join(beaten) + ')' if beaten else ''}."
    )
    return {"answer": adds, "beats_alone": beaten, "sentence": sentence}


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
