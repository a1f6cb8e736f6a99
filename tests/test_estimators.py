"""The combined accuracy estimator (`--estimator weights+free`): rank calibration by hand, and a
real tiny run that trains, ranks, writes and resumes with it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from prp.trainer.config import preset
from prp.trainer.errors import PRPError
from prp.trainer.estimation.estimators import (
    ALPHA,
    ESTIMATORS,
    FREE_COMBINATION,
    FREE_COMBINATIONS,
    calibrated_accuracy,
    combined_members,
    get_estimator,
)
from prp.trainer.estimation.proxies import FREE_BASELINES, PROXIES, free_scores, proxy_batch
from prp.trainer.pareto import pareto_ranks
from prp.trainer.pareto_stage import sample_paths
from prp.trainer.pruning import MAXIMIZE
from prp.trainer.runs import RunLog
from prp.trainer.stats import log_rank_aggregate
from prp.trainer.streams import ALPHA_PATHS, epoch_rng
from prp.trainer.train import Trainer

CFG = replace(preset("tiny"), estimator="weights+free")


# ------------------------------------------------------------------------ calibration by hand
def test_calibration_gives_the_kth_best_path_the_kth_highest_estimate() -> None:
    raw = np.array([70.0, 50.0, 60.0, 40.0])
    params = np.array([1.0, 4.0, 3.0, 2.0])
    # Ascending ranks: raw (4, 2, 3, 1), params (1, 4, 3, 2); log-rank sums
    # log(4/4)+log(1/4) = -1.39, log(2/4)+log(4/4) = -0.69, log(3/4)+log(3/4) = -0.58,
    # log(1/4)+log(2/4) = -2.08: best first 2, 1, 0, 3 -> they get 70, 60, 50, 40.
    got = calibrated_accuracy(raw, [raw, params])
    assert got.tolist() == [50.0, 60.0, 70.0, 40.0]
    # One member: the paths take the raw values in that member's order.
    assert calibrated_accuracy(raw, [np.array([4.0, 3.0, 2.0, 1.0])]).tolist() == [
        70.0,
        60.0,
        50.0,
        40.0,
    ]
    # Ties in the combined score go to the higher raw estimate first: a constant member
    # changes nothing, and a partial tie keeps its members' own raw order.
    assert calibrated_accuracy(raw, [np.ones(4)]).tolist() == raw.tolist()
    tied = calibrated_accuracy(np.array([40.0, 50.0, 70.0, 60.0]), [np.array([2.0, 1, 1, 0])])
    assert tied.tolist() == [70.0, 50.0, 60.0, 40.0]
    # Tied in both: the earlier path first, the same answer every time.
    both = calibrated_accuracy(np.array([50.0, 50.0, 60.0, 70.0]), [np.array([1.0, 1, 2, 0])])
    assert both.tolist() == [60.0, 50.0, 70.0, 50.0]
    with pytest.raises(ValueError, match="members score 3 paths, raw_acc 4"):
        calibrated_accuracy(raw, [np.arange(3.0)])


def test_calibration_is_monotone_in_the_combined_score_and_keeps_the_values() -> None:
    from prp.trainer.evaluate import estimator_scores

    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(2, 40))
        raw = np.round(rng.uniform(10, 60, n), 0)  # rounded: many ties, as real estimates have
        free = {
            "params": rng.integers(0, 5, n).astype(float),
            "macs": rng.normal(size=n),
            "synflow": rng.normal(size=n),
            "naswot": np.where(rng.uniform(size=n) < 0.1, -np.inf, rng.normal(size=n)),
        }
        free |= {b: rng.normal(size=n) for b in FREE_BASELINES if b not in free}
        members = combined_members(raw, free)
        got = calibrated_accuracy(raw, members)
        assert sorted(got) == sorted(raw)  # the same multiset: units and distribution kept
        # prp-eval's weights+free row is the same combined score.
        score = estimator_scores(raw, free, np.arange(n))["weights+free"]
        assert np.array_equal(score, log_rank_aggregate(members))
        better = score[:, None] > score[None, :]
        assert np.all((got[:, None] >= got[None, :])[better])
        assert np.array_equal(calibrated_accuracy(raw, members), got)  # deterministic
        # A path's value does not depend on where the set lists it, where nothing is tied.
        perm = rng.permutation(n)
        distinct = len(set(zip(score, raw, strict=True))) == n
        if distinct:
            moved = calibrated_accuracy(raw[perm], [m[perm] for m in members])
            assert np.array_equal(moved, got[perm])


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_prp_eval_ranks_by_every_registered_estimator_under_its_own_name(name) -> None:
    from prp.trainer.evaluate import estimator_scores

    rng = np.random.default_rng(1)
    n = 30
    raw = np.round(rng.uniform(10, 60, n), 0)
    free = {b: rng.normal(size=n) for b in FREE_BASELINES}
    alpha = rng.normal(size=n)  # a PRP run's path scores P_s
    score = estimator_scores(raw, free, np.arange(n), alpha)[name]
    # A path prp-eval's row ranks higher gets at least the accuracy training ranks it by.
    acc = get_estimator(name).accuracy(raw, lambda: free | {ALPHA: alpha})
    better = score[:, None] > score[None, :]
    assert better.any() and np.all((acc[:, None] >= acc[None, :])[better])


def test_an_unknown_estimator_is_a_clear_error() -> None:
    message = r"unknown --estimator 'free'; use 'weights' .*'weights\+free'"
    with pytest.raises(PRPError, match=message):
        replace(CFG, estimator="free").validate()
    assert replace(CFG, estimator="weights").validate().estimator == "weights"


# --------------------------------------------------------------------------- a real tiny run
@pytest.fixture(scope="module")
def finished(tmp_path_factory, data):
    run_dir = tmp_path_factory.mktemp("run")
    trainer = Trainer(CFG, run_dir, data=data)
    front = trainer.run()
    trainer.write_front(front)
    return trainer, front, run_dir


def reference_free(trainer: Trainer, paths: list[tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Free scores of `paths` computed here, apart from the trainer and its cache."""
    scores, _ = free_scores(
        trainer.space, paths, proxy_batch(trainer.data, trainer.cfg.seed), trainer.cfg.seed
    )
    return scores


def test_front_ranks_by_the_calibrated_combination(finished) -> None:
    trainer, front, run_dir = finished
    data = json.loads((run_dir / "front.json").read_text())
    assert data["estimator"] == "weights+free" and "log-rank aggregate" in data["accuracy"]
    paths = data["paths"]
    acc = np.array([p["accuracy"] for p in paths])
    raw = np.array([p["weights_accuracy"] for p in paths])
    cost = np.array([p["cost"] for p in paths])
    # The accuracies are the shared-weight estimates, reassigned: a permutation of them.
    assert sorted(acc) == sorted(raw)
    assert not np.array_equal(acc, raw)  # the proxies reorder these paths: not "weights"
    assert [p["pareto_rank"] for p in paths] == pareto_ranks(
        np.column_stack([acc, cost]), MAXIMIZE
    ).tolist()
    # Reassigned by the combined ranking of exactly these paths, in the order they were drawn.
    epoch = trainer.total_epochs
    rng, _ = epoch_rng(trainer.cfg.seed, epoch, ALPHA_PATHS)
    drawn = sample_paths(trainer.supernet, rng, trainer.cfg.final_samples)
    by_path = {tuple(p["path"]): p for p in paths}
    assert set(drawn) == set(by_path)
    raw_drawn = np.array([by_path[p]["weights_accuracy"] for p in drawn])
    want = calibrated_accuracy(
        raw_drawn, combined_members(raw_drawn, reference_free(trainer, drawn))
    )
    assert [by_path[p]["accuracy"] for p in drawn] == want.tolist()
    assert [s["accuracy"] for s in data["selected"]] == [
        by_path[tuple(s["path"])]["accuracy"] for s in data["selected"]
    ]
    # The proxies' cost is in the log, for the target pool and for the final front.
    records = RunLog(run_dir / "log.jsonl").records()
    pool = next(r for r in records if r.get("event") == "target_pool")
    final = next(r for r in records if r.get("event") == "final_front")
    assert pool["proxy_paths"] == pool["paths"] and pool["proxy_seconds"] > 0
    assert final["proxy_paths"] == len(set(drawn) - set(trainer.targets))
    assert final["proxy_seconds"] >= 0
    # Each path was scored once: what the cache holds is every path of the pool and the front.
    assert set(trainer.estimates.proxies.scores) == set(trainer.targets) | set(drawn)
    assert pool["proxy_paths"] + final["proxy_paths"] == len(trainer.estimates.proxies.scores)


class Crash(Exception):
    pass


def test_pool_targets_are_calibrated_and_a_resumed_run_gives_the_same_front(
    finished, data, tmp_path
) -> None:
    uninterrupted, front, _ = finished

    class Crashing(Trainer):
        def train_epoch(self, epoch):  # after the target pool and pruning are checkpointed
            if epoch == 3:
                raise Crash
            return super().train_epoch(epoch)

    crashed = Crashing(CFG, tmp_path, data=data)
    with pytest.raises(Crash):
        crashed.run()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 3
    # The pool was estimated at the start of the first Pareto epoch (2) with the weights of
    # stage 1;
    # the paths re-estimated in that epoch's alpha update got the same figures (same weights,
    # same generator), so `evaluated` holds the pool's raw estimates.
    pool = [tuple(p) for p, _ in state["targets"]]
    targets = np.array([a for _, a in state["targets"]])
    evaluated = {tuple(p): a for p, a in state["evaluated"]}
    raw = np.array([evaluated[p] for p in pool])
    want = calibrated_accuracy(raw, combined_members(raw, reference_free(crashed, pool)))
    assert targets.tolist() == want.tolist()
    assert sorted(targets) == sorted(raw) and not np.array_equal(targets, raw)
    # Resumed in a new trainer with no proxy scores in memory: they are computed again, to the
    # same values, and the front is the uninterrupted run's.
    resumed = Trainer(CFG, tmp_path, data=data)
    again = resumed.run(resume=True)
    assert [(m.path, m.accuracy, m.weights_accuracy, m.cost, m.pareto_rank) for m in again] == [
        (m.path, m.accuracy, m.weights_accuracy, m.cost, m.pareto_rank) for m in front
    ]
    assert set(resumed.estimates.proxies.scores) == {m.path for m in again}
    # Bit for bit the scores of the uninterrupted run, which scored some of these paths in
    # another batch (the target pool's).
    assert {p: resumed.estimates.proxies.scores[p] for p in resumed.estimates.proxies.scores} == {
        p: uninterrupted.estimates.proxies.scores[p] for p in resumed.estimates.proxies.scores
    }
    assert all(set(s) == set(FREE_COMBINATION) for s in resumed.estimates.proxies.scores.values())
    with pytest.raises(PRPError, match="estimator 'weights' != 'weights\\+free'"):
        Trainer(replace(CFG, estimator="weights"), tmp_path, data=data).run(resume=True)


def test_the_cli_takes_the_estimator_and_refuses_an_unknown_one(finished, tmp_path) -> None:
    _, _, run_dir = finished
    exe = shutil.which("prp-train") or str(Path(sys.executable).parent / "prp-train")
    bad = subprocess.run(
        [exe, "--preset", "tiny", "--estimator", "free", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = " ".join((bad.stdout + bad.stderr).split())
    assert bad.returncode == 2 and "unknown --estimator 'free'" in text, text
    assert "Traceback" not in text and not (tmp_path / "r").exists()
    # The option names the config key: resuming the weights+free run with another is refused.
    other = subprocess.run(
        [exe, "--out", str(run_dir), "--resume", "--estimator", "weights"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = " ".join((other.stdout + other.stderr).split())
    assert other.returncode == 2 and "estimator 'weights' != 'weights+free'" in text, text


def test_prp_eval_judges_the_runs_own_estimator(finished, nb201_csv) -> None:
    from prp.trainer.evaluate import baseline_comparison, run_estimator_verdict

    _, _, run_dir = finished
    result = evaluate_copy(run_dir, nb201_csv)
    assert result["run_estimator"] == "weights+free"
    verdict = result["run_estimator_verdict"]
    assert verdict["estimator"] == "weights+free"
    row = result["baselines"]["weights+free"]
    assert verdict["kendall_tau_b_pareto"] == row["kendall_tau_b_pareto"]
    # every other row: the free baselines and combinations, the weights, alpha (a PRP run)
    # and the other weighted combinations
    assert set(verdict["against"]) == {*result["baselines"], "weights"} - {"weights+free"}
    assert {*FREE_BASELINES, *FREE_COMBINATIONS, ALPHA, "weights+all-free"} <= set(
        verdict["against"]
    )
    for b, d in verdict["against"].items():
        base = (
            {"kendall_tau_b_pareto": result["kendall_tau_b_pareto"]}
            if b == "weights"
            else result["baselines"][b]
        )
        p = d["pareto"]
        assert p["diff"] == pytest.approx(
            row["kendall_tau_b_pareto"] - base["kendall_tau_b_pareto"]
        )
        assert d["verdict"].startswith(f"weights+free beats {b}: Pareto tau-b ")
    # Against free it is the figure the baselines section already gives.
    assert verdict["against"]["free"]["pareto"] == row["paired_minus_free"]["pareto"]
    # A PRP run: alpha's path score of each architecture is kept, and whether it adds to
    # weights+all-free is a paired figure of its own.
    trainer = finished[0]
    archs = result["architectures"]
    with torch.no_grad():
        p_s = trainer.supernet.path_scores([trainer.space.decode(a["arch_str"]) for a in archs])
    assert [a["alpha_score"] for a in archs] == pytest.approx(p_s.tolist())
    with_alpha = result["baselines"]["weights+alpha+all-free"]
    gain = with_alpha["paired_minus_without_alpha"]["pareto"]["diff"]
    assert gain == pytest.approx(
        with_alpha["kendall_tau_b_pareto"]
        - result["baselines"]["weights+all-free"]["kendall_tau_b_pareto"]
    )
    assert with_alpha["verdict_against_without_alpha"].startswith(
        "weights+alpha+all-free beats weights+all-free: Pareto tau-b "
    )
    # The earlier keys stay.
    assert {"kendall_tau_b_pareto", "baselines", "supernet_adds_information"} <= set(result)
    # A run with the shared weights alone is judged on its weights row.
    archs = result["architectures"]
    free = {
        b: np.array(
            [-np.inf if a["free_scores"][b] is None else a["free_scores"][b] for a in archs]
        )
        for b in FREE_BASELINES
    }
    comparison = baseline_comparison(
        np.array([a["estimated_accuracy"] for a in archs]),
        free,
        np.array([a["true_accuracy"] for a in archs]),
        np.array([a["cost"] for a in archs]),
        50,
        0,
    )
    plain = run_estimator_verdict(comparison, "weights")
    weights_row = comparison["estimators"]["weights"]["kendall_tau_b_pareto"]
    assert plain["kendall_tau_b_pareto"] == weights_row and "weights" not in plain["against"]


def evaluate_copy(run_dir: Path, nb201_csv: Path) -> dict:
    """prp-eval on a copy of the run, so the shared run folder is left as it was."""
    from prp.trainer.evaluate import evaluate_run

    copy = run_dir.parent / f"{run_dir.name}-eval"
    if not copy.exists():
        shutil.copytree(run_dir, copy)
    return evaluate_run(copy, nb201_csv, k=12, seed=1, bootstrap=200)


def test_a_weights_and_all_free_run_ranks_by_every_free_proxy(data, tmp_path) -> None:
    """`--estimator weights+all-free`: the run scores each path it ranks on all of `all-free`'s
    proxies, and ranks the final pool by their aggregate with the shared weights."""
    cfg = replace(CFG, estimator="weights+all-free")
    trainer = Trainer(cfg, tmp_path, data=data)
    front = trainer.run()
    members = FREE_COMBINATIONS["all-free"]
    scores = trainer.estimates.proxies.scores
    assert scores and all(set(s) == set(members) for s in scores.values())
    assert {m.path for m in front} <= set(scores)
    # The front's accuracies are shared-weight estimates of the pool reassigned by rank, not
    # each path's own: some path holds another's.
    acc = [m.accuracy for m in front]
    assert set(acc) <= set(trainer.estimates.evaluated.values())
    assert acc != [m.weights_accuracy for m in front]


def test_a_combination_lacking_a_proxy_that_cannot_score_the_space_is_named_for_it() -> None:
    """DARTS: AZ-NAS cannot score a two-input cell. Its free baselines are missing; each
    combination aggregates what remains and says what it lacks, unless most of it is missing;
    a combination with alpha is left out where there is no alpha (not a PRP run)."""
    from prp.trainer.evaluate import estimator_scores

    rng = np.random.default_rng(2)
    n = 20
    raw = rng.normal(size=n)
    lacking = set(PROXIES["az-nas"].names)
    free = {b: rng.normal(size=n) for b in FREE_BASELINES if b not in lacking}
    out = estimator_scores(raw, free, np.arange(n))
    have = [m for m in FREE_COMBINATIONS["all-free"] if m in free]
    assert 0 < len(have) < len(FREE_COMBINATIONS["all-free"])
    assert "all-free" not in out
    assert np.array_equal(out["all-free w/o az-nas"], log_rank_aggregate([free[m] for m in have]))
    assert np.array_equal(
        out["weights+all-free w/o az-nas"],
        log_rank_aggregate(combined_members(raw, free, have)),
    )
    # az-nas's own combination keeps 1 of its 4 members (MACs): left out, not renamed
    assert not [k for k in out if k.startswith("az-nas")]
    # the combinations whose members are all here keep their names
    assert {"free", "weights+free"} <= set(out)
    assert not [k for k in out if ALPHA in k]
    with_alpha = estimator_scores(raw, free, np.arange(n), rng.normal(size=n))
    assert {ALPHA, "weights+alpha+all-free w/o az-nas"} <= set(with_alpha)


def test_alpha_in_the_estimator_needs_the_pareto_rank_stage() -> None:
    message = r"--estimator weights\+alpha\+all-free aggregates alpha's .*--method prp"
    for method in ("fair", "uniform"):
        with pytest.raises(PRPError, match=message):
            replace(CFG, method=method, estimator="weights+alpha+all-free").validate()
    assert replace(CFG, estimator="weights+alpha+all-free").validate().method == "prp"


def test_a_weights_alpha_and_all_free_run_ranks_by_alpha_as_it_stands(data, tmp_path) -> None:
    """`--estimator weights+alpha+all-free`: the run ranks paths by the log-rank aggregate of
    the shared weights, the path score P_s of its alpha as the supernet holds it, and every
    free proxy."""
    cfg = replace(CFG, estimator="weights+alpha+all-free")
    trainer = Trainer(cfg, tmp_path, data=data)
    front = trainer.run()
    paths = [m.path for m in front]
    est = np.array([trainer.estimates.evaluated[p] for p in paths])
    # the proxies scored are the free members only; alpha is read from the supernet
    members = FREE_COMBINATIONS["all-free"]
    assert all(set(s) == set(members) for s in trainer.estimates.proxies.scores.values())
    free = reference_free(trainer, paths)
    with torch.no_grad():
        p_s = trainer.supernet.path_scores(paths).numpy().astype(float)
    assert np.ptp(p_s) > 0  # alpha was trained by the Pareto-rank stage
    expected = calibrated_accuracy(est, combined_members(est, free | {ALPHA: p_s}, cfg_members()))
    assert np.array_equal(trainer.estimates.ranked(paths, est), expected)
    # Another alpha, another input: the ranking reads the supernet's alpha when it is asked.
    with torch.no_grad():
        trainer.supernet.alpha.neg_()
    flipped = calibrated_accuracy(est, combined_members(est, free | {ALPHA: -p_s}, cfg_members()))
    assert np.array_equal(trainer.estimates.ranked(paths, est), flipped)


def cfg_members() -> tuple[str, ...]:
    return get_estimator("weights+alpha+all-free").members
