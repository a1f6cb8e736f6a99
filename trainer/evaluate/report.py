"""What the evaluation file says about the estimators (the baselines section, verdicts and
sentences) and the rank plot beside it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..estimation.estimators import (
    FREE_COMBINATIONS,
    FREE_PART,
    WEIGHTED_COMBINATIONS,
    WEIGHTS_AND_FREE,
    WITHOUT_ALPHA_PART,
    combination_of,
)
from ..estimation.proxies import FREE_BASELINES
from ..runs import atomic_path, read_json

EVAL_FILE = "eval_nb201.json"
# prp-eval's third-party warnings and logs, in the run folder (`--verbose` shows them instead)
EVAL_LOG = "eval.log"
# The free combinations of `FREE_COMBINATIONS` (log-rank sums, `stats.log_rank_aggregate`:
# free, az-nas, all-free) and the shared weights with `free`, with `all-free` and with alpha
# and `all-free` (`estimators.WEIGHTED_COMBINATIONS`: the estimators of those names).
COMBINATIONS = (*FREE_COMBINATIONS, *WEIGHTED_COMBINATIONS)
# What evaluation files written before 2026-12-05 call weights+free (`read_evaluation`).
OLD_WEIGHTS_AND_FREE = "supernet+free"


def read_evaluation(path: Path) -> dict[str, Any]:
    """An evaluation file (`EVAL_FILE`) with today's names: an older file's `supernet+free`
    baseline is read as `weights+free`, and its verdict's `row` (then the estimator's row name,
    now the estimator's own) is dropped."""
    result: dict[str, Any] = read_json(path)
    baselines = result.get("baselines")
    if baselines is not None and OLD_WEIGHTS_AND_FREE in baselines:
        result["baselines"] = {
            WEIGHTS_AND_FREE if k == OLD_WEIGHTS_AND_FREE else k: v for k, v in baselines.items()
        }
    result.get("run_estimator_verdict", {}).pop("row", None)
    return result


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


def free_part(row: str, parts: Mapping[str, str] = FREE_PART) -> str:
    """The free combination a weighted combination's row adds the weights to (or, with
    `parts=WITHOUT_ALPHA_PART`, the combination it adds alpha to), named as the evaluation
    named it (`all-free w/o az-nas` for `weights+all-free w/o az-nas`)."""
    base = combination_of(row)
    return parts[base] + row[len(base) :]


def baselines_section(comparison: Mapping[str, Any]) -> dict[str, Any]:
    """The `baselines` section of the evaluation file: per estimator the comparison scored
    other than the shared weights (each free baseline, alpha's path scores for a PRP run, each
    combination), its accuracy and Pareto tau-b (with 95 % intervals), the paired interval of
    run (shared-weight estimates) minus it, and a verdict; each weighted combination also
    carries itself minus its free part (`paired_minus_free`: weights+free minus free,
    weights+all-free and weights+alpha+all-free minus all-free)."""
    paired, ci = comparison["paired"], comparison["ci95"]
    section: dict[str, Any] = {}
    for name in comparison["estimators"]:
        if name == "weights":
            continue
        taus = comparison["estimators"][name]
        vs = {m: paired[f"weights {m} - {name} {m}"] for m in ("accuracy", "pareto")}
        entry = {
            **taus,
            "ci95": {m: ci[f"{name} {m}"] for m in ("accuracy", "pareto")},
            "paired_run_minus_baseline": {m: _paired(d) for m, d in vs.items()},
            "verdict": f"supernet beats {name}: Pareto tau-b {_beats(vs['pareto'])}; "
            f"accuracy tau-b {_beats(vs['accuracy'])}",
        }
        # the weights against its free part alone; alpha against the same without it
        for key, parts in (("free", FREE_PART), ("without_alpha", WITHOUT_ALPHA_PART)):
            if combination_of(name) not in parts:
                continue
            part = free_part(name, parts)
            gain = {m: paired[f"{name} {m} - {part} {m}"] for m in ("accuracy", "pareto")}
            entry[f"paired_minus_{key}"] = {m: _paired(d) for m, d in gain.items()}
            entry[f"verdict_against_{key}"] = (
                f"{name} beats {part}: Pareto tau-b {_beats(gain['pareto'])}; "
                f"accuracy tau-b {_beats(gain['accuracy'])}"
            )
        section[name] = entry
    return section


def run_estimator_verdict(comparison: Mapping[str, Any], estimator: str) -> dict[str, Any]:
    """The run's own estimator (`TrainConfig.estimator`, a row of the comparison under the same
    name) against every other row of the comparison (each free baseline and combination, the
    shared weights alone, alpha's path scores and the other weighted combinations, where
    scored): the paired difference of Pareto and accuracy tau-b with its interval, a verdict
    per row and one sentence."""
    paired = comparison["paired"]
    others = [n for n in comparison["estimators"] if n != estimator]
    against: dict[str, dict[str, Any]] = {}
    for b in others:
        vs = {m: paired[f"{estimator} {m} - {b} {m}"] for m in ("accuracy", "pareto")}
        against[b] = {
            **{m: _paired(d) for m, d in vs.items()},
            "verdict": f"{estimator} beats {b}: Pareto tau-b {_beats(vs['pareto'])}; "
            f"accuracy tau-b {_beats(vs['accuracy'])}",
        }
    beaten = [b for b in others if against[b]["pareto"]["ci95"][0] > 0]
    taus = comparison["estimators"][estimator]
    sentence = (
        f"The run's estimator {estimator!r} reaches Pareto tau-b "
        f"{taus['kendall_tau_b_pareto']:.3f} and beats {len(beaten)} of {len(others)} "
        f"({', '.join(others)}) with a paired interval above zero"
        f"{' (' + ', '.join(beaten) + ')' if beaten else ''}."
    )
    return {
        "estimator": estimator,
        **taus,
        "against": against,
        "beats": beaten,
        "sentence": sentence,
    }


def adds_information(section: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the shared weights add information beyond the free baselines on Pareto tau-b:
    weights+free above free with an interval that excludes zero (the combination test the
    issue asks of any estimator that mixes the two); and which baselines the weights beat
    alone."""
    gain = section[WEIGHTS_AND_FREE]["paired_minus_free"]["pareto"]
    low, high = gain["ci95"]
    adds = bool(np.isfinite(low) and low > 0)
    free = [b for b in section if b in FREE_BASELINES or combination_of(b) in FREE_COMBINATIONS]
    beaten = [b for b in free if section[b]["paired_run_minus_baseline"]["pareto"]["ci95"][0] > 0]
    sentence = (
        f"The supernet {'adds' if adds else 'does not add'} information beyond the free "
        f"baselines: adding its estimates to the free combination changes Pareto tau-b by "
        f"{gain['diff']:+.3f} (95 % interval {low:+.3f} to {high:+.3f}); alone it beats "
        f"{len(beaten)} of {len(free)} free baselines with an "
        "interval above "
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
