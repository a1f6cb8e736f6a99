"""prp-eval: ranking quality of a really trained tiny NB201 run against the real table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_of_tiny_run
from prp.trainer.config import preset
from prp.trainer.datasets import load_dataset
from prp.trainer.errors import PRPError
from prp.trainer.estimation.estimators import FREE_COMBINATIONS
from prp.trainer.estimation.proxies import FREE_BASELINES, PROXIES
from prp.trainer.evaluate import evaluate_run, true_front_hypervolume
from prp.trainer.nb201_table import NB201Table
from prp.trainer.train import Trainer

CFG = preset("tiny")


def test_true_front_hypervolume_on_a_hand_made_table(tmp_path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text(
        "arch_index,arch_str,acc,energy\n"
        "0,a,90,3\n"  # front
        "1,b,80,1\n"  # front
        "2,c,70,2\n"  # dominated by b
    )
    table = NB201Table.load(csv)
    # ref (70, 3): b adds (80-70) x (3-1) = 20, a adds (90-80) x (3-3) = 0 -> 20.
    assert true_front_hypervolume(table, "acc", "energy", np.array([70.0, 3.0])) == 20.0
    assert true_front_hypervolume(table, "acc", "energy", np.array([60.0, 4.0])) == (
        pytest.approx(30 * 1 + 20 * 2)
    )


@pytest.fixture(scope="module")
def run_dir(tiny_run, tmp_path_factory) -> Path:
    return copy_of_tiny_run(tiny_run, tmp_path_factory)


def test_evaluate_a_tiny_run_end_to_end(run_dir, nb201_csv) -> None:
    result = evaluate_run(run_dir, nb201_csv, k=25, seed=1)
    # The tiny run prunes hard: K is capped by the unseen architectures its supernet still runs.
    assert result["k"] == min(25, result["unseen_live_architectures"]) >= 5
    # The figures are Kendall's tau-b of the per-architecture rows the result lists (scipy's, an
    # independent implementation): estimated against true accuracy, and Pareto ranks.
    from scipy.stats import kendalltau

    rows = result["architectures"]
    col = {k: [a[k] for a in rows] for k in rows[0] if k != "free_scores"}
    acc = kendalltau(col["estimated_accuracy"], col["true_accuracy"], variant="b").statistic
    ranks = kendalltau(col["estimated_rank"], col["true_rank"], variant="b").statistic
    assert result["kendall_tau_b_accuracy"] == pytest.approx(acc, abs=1e-9)
    assert result["kendall_tau_b_pareto"] == pytest.approx(ranks, abs=1e-9)
    assert 0.0 < result["hypervolume_ratio"] <= 1.0
    state = json.loads((run_dir / "eval_nb201.json").read_text())
    assert state["k"] == result["k"] and (run_dir / "eval_nb201.png").stat().st_size > 5000
    # The picks drawn on the whole true front: a PNG, and each pick's true figures are its
    # table row's; a pick of true rank 1 is dominated by no architecture of the table.
    assert (run_dir / "eval_front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    truth = NB201Table.load(nb201_csv)
    acc_all, cost_all = truth.column("cifar10_test_acc"), truth.column("edgegpu_energy")
    assert result["selected"]
    for pick in result["selected"]:
        row = truth.arch_strs.index(pick["arch_str"])
        assert (pick["true_accuracy"], pick["cost"]) == (acc_all[row], cost_all[row])
        dominated = bool(
            np.any(
                (acc_all >= acc_all[row])
                & (cost_all <= cost_all[row])
                & ((acc_all > acc_all[row]) | (cost_all < cost_all[row]))
            )
        )
        assert dominated == (pick["true_pareto_rank"] > 1)
    # No evaluated architecture fed the training signal, and each row's truth is the table's.
    import torch

    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    table = NB201Table.load(nb201_csv)
    from prp.trainer.spaces import get_space

    space = get_space("nb201")
    fed = {space.encode(p) for p, _ in ckpt["evaluated"] + ckpt["targets"]}
    for a in result["architectures"]:
        assert a["arch_str"] not in fed
        row = table.index[a["arch_str"]]
        assert a["true_accuracy"] == table.column("cifar10_test_acc")[row]
        assert a["cost"] == table.column("edgegpu_energy")[row]
    # Another cost column is a parameter.
    other = evaluate_run(run_dir, nb201_csv, k=10, cost_column="pixel3_latency", baselines=False)
    assert other["cost_column"] == "pixel3_latency"
    with pytest.raises(PRPError, match="no column 'carbon'"):
        evaluate_run(run_dir, nb201_csv, k=5, cost_column="carbon")


def test_evaluate_given_architectures(run_dir, nb201_csv) -> None:
    from prp.trainer.evaluate import unseen_live_pool
    from prp.trainer.export import load_run

    run = load_run(run_dir)
    pool = unseen_live_pool(run)
    chosen = pool[::3][:6]
    result = evaluate_run(run_dir, nb201_csv, archs=chosen, baselines=False)
    space = run.supernet.space
    assert [a["arch_str"] for a in result["architectures"]] == [space.encode(p) for p in chosen]
    assert result["eval_images"] == min(run.cfg.eval_images, 30) and result["bn_batches"] == 2
    # Fewer held-out images per estimate than the run used: accuracies in steps of 100 / 20 %.
    small = evaluate_run(
        run_dir, nb201_csv, archs=chosen, eval_images=20, bn_batches=1, baselines=False
    )
    assert small["eval_images"] == 20 and small["bn_batches"] == 1
    steps = [a["estimated_accuracy"] * 20 / 100 for a in small["architectures"]]
    assert np.allclose(steps, np.round(steps))
    # An architecture that fed training (or uses a pruned op) is refused, naming the reason.
    fed = next(iter(run.fed_training))
    with pytest.raises(PRPError, match="pruned op .* or fed its training"):
        evaluate_run(run_dir, nb201_csv, archs=[*chosen, fed])


def test_banded_protocol_takes_the_most_accurate_of_each_equal_count_band() -> None:
    from prp.trainer.evaluate import banded_architectures

    pool = [(i,) for i in range(7)]
    accuracy = np.array([10.0, 50.0, 20.0, 40.0, 30.0, 60.0, 35.0])
    # Sorted by accuracy: 10 20 30 | 35 40 | 50 60 (np.array_split's 3 / 2 / 2), so the picks
    # are 30, 40 and 60 %: architectures 4, 3 and 5.
    assert banded_architectures(pool, accuracy, 3) == [(3,), (4,), (5,)]
    assert banded_architectures(pool, accuracy, 7) == pool  # one per band: all of them
    with pytest.raises(PRPError, match="at least 2 bands"):
        banded_architectures(pool, accuracy, 1)


def test_evaluate_with_the_banded_protocol(run_dir, nb201_csv) -> None:
    result = evaluate_run(run_dir, nb201_csv, k=5, protocol="banded", baselines=False)
    assert result["protocol"] == "banded" and result["k"] == 5
    true = sorted(a["true_accuracy"] for a in result["architectures"])
    # The most accurate of the top band is the best unseen live architecture of the run.
    from prp.trainer.evaluate import unseen_live_pool
    from prp.trainer.export import load_run

    run = load_run(run_dir)
    table = NB201Table.load(nb201_csv)
    best = table.lookup(run.supernet.space, unseen_live_pool(run), "cifar10_test_acc").max()
    assert true[-1] == pytest.approx(best)
    with pytest.raises(PRPError, match="--protocol must be one of random, banded"):
        evaluate_run(run_dir, nb201_csv, k=5, protocol="stratified", baselines=False)


def test_estimates_do_not_depend_on_the_other_paths_or_their_order(run_dir, nb201_csv) -> None:
    from prp.trainer.evaluate import estimate_paths, unseen_live_pool
    from prp.trainer.export import load_run

    run = load_run(run_dir)
    chosen = unseen_live_pool(run)[:4]
    est, cfg, images = estimate_paths(run, chosen, seed=3)
    assert images == min(run.cfg.eval_images, 30) and cfg.bn_batches == run.cfg.bn_batches
    again, _, _ = estimate_paths(run, chosen[::-1][:3], seed=3)
    assert np.array_equal(again, est[::-1][:3])
    on_cpu, _, _ = estimate_paths(run, chosen, seed=3, compute_device="cpu")
    assert np.array_equal(on_cpu, est)
    # The same figures evaluate_run reports for those architectures (it uses this function).
    result = evaluate_run(run_dir, nb201_csv, archs=chosen, seed=3, baselines=False)
    assert [a["estimated_accuracy"] for a in result["architectures"]] == est.tolist()


def test_evaluation_device_follows_the_run_where_this_machine_has_it() -> None:
    import torch
    from prp.trainer.evaluate import evaluation_device

    assert evaluation_device("cpu", None).type == "cpu"
    assert evaluation_device("cuda", "cpu").type == "cpu"
    # A run trained on a GPU evaluates on this machine's GPU, or on its CPU if it has none.
    gpu = torch.cuda.is_available()
    assert evaluation_device("cuda", None).type == ("cuda" if gpu else "cpu")
    with pytest.raises(PRPError, match="unknown compute device 'tpu'"):
        evaluation_device("cpu", "tpu")
    if not gpu:
        with pytest.raises(PRPError, match="no CUDA GPU is available"):
            evaluation_device("cpu", "cuda")


def test_prp_eval_cli(run_dir, nb201_csv, tmp_path) -> None:
    exe = shutil.which("prp-eval") or str(Path(sys.executable).parent / "prp-eval")
    out = subprocess.run(
        [exe, str(run_dir), "--truth", str(nb201_csv), "--k", "20", "--bootstrap", "300"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # Third-party warnings and logs go to RUN/eval.log, never to the terminal (issue 19).
    assert out.stderr == ""
    assert "Kendall tau-b, Pareto ranks" in out.stdout
    # The free baselines rank the same architectures beside the supernet, one row each, and
    # one sentence says whether the supernet adds information.
    rows = {line.split("│")[1].strip() for line in out.stdout.splitlines() if "│" in line}
    expected = {"supernet weights", "params", "MACs", "synflow", "NASWOT", "free", "weights+free"}
    expected |= {"expressivity", "progressivity", "trainability", "ZiCo", "jacov"}
    assert expected | {"AZ-NAS", "all-free"} <= rows
    assert "weights - NASWOT" in out.stdout and "weights+free - free" in out.stdout
    assert "weights+all-free - all-free" in out.stdout
    assert "information beyond the free baselines" in " ".join(out.stdout.split())
    result = json.loads((run_dir / "eval_nb201.json").read_text())
    assert result["supernet_adds_information"]["sentence"] in " ".join(out.stdout.split())
    check_baselines(result)
    # --no-baselines leaves them out; --verbose leaves third-party output on the terminal.
    log = run_dir / "eval.log"
    logged = log.read_bytes() if log.exists() else None
    bare = subprocess.run(
        [exe, str(run_dir), "--truth", str(nb201_csv), "--k", "8", "--no-baselines", "--verbose"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bare.returncode == 0, bare.stdout + bare.stderr
    assert "weights+free" not in bare.stdout
    assert "baselines" not in json.loads((run_dir / "eval_nb201.json").read_text())
    assert (log.read_bytes() if log.exists() else None) == logged  # --verbose: no log written
    bad = subprocess.run(
        [exe, str(run_dir), "--truth", str(tmp_path / "none.csv")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode == 2 and "does not exist" in " ".join(bad.stdout.split())


def check_baselines(result: dict) -> None:
    """The baselines section agrees with the scores it stores and the truth, and every paired
    interval holds its point difference."""
    from prp.trainer.pareto import kendall_tau_b, pareto_ranks
    from prp.trainer.pruning import MAXIMIZE
    from prp.trainer.stats import log_rank_aggregate
    from scipy import stats

    archs = result["architectures"]
    true_acc = np.array([a["true_accuracy"] for a in archs])
    cost = np.array([a["cost"] for a in archs])
    truth = pareto_ranks(np.column_stack([true_acc, cost]), MAXIMIZE)
    score = {
        b: np.array([np.nan if a["free_scores"][b] is None else a["free_scores"][b] for a in archs])
        for b in FREE_BASELINES
    }
    score = {b: np.nan_to_num(v, nan=-np.inf) for b, v in score.items()}  # null: singular K
    # free, az-nas (expressivity, progressivity, trainability, MACs) and all-free
    for name, members in FREE_COMBINATIONS.items():
        score[name] = log_rank_aggregate([score[m] for m in members])
    assert np.array_equal(
        score["free"], log_rank_aggregate([score["params"], score["synflow"], score["naswot"]])
    )
    est = np.array([a["estimated_accuracy"] for a in archs])
    score["weights+free"] = log_rank_aggregate(
        [est, score["params"], score["synflow"], score["naswot"]]
    )
    score["weights+all-free"] = log_rank_aggregate(
        [est, *(score[m] for m in FREE_COMBINATIONS["all-free"])]
    )
    # a PRP run: alpha's path scores are a row, and a member of weights+alpha+all-free
    assert result["method"] == "prp"
    score["alpha"] = np.array([a["alpha_score"] for a in archs])
    score["weights+alpha+all-free"] = log_rank_aggregate(
        [est, score["alpha"], *(score[m] for m in FREE_COMBINATIONS["all-free"])]
    )
    b = result["baselines"]
    assert set(b) == set(score)
    for name, e in b.items():
        r = stats.rankdata(score[name])
        assert e["kendall_tau_b_accuracy"] == pytest.approx(kendall_tau_b(r, true_acc))
        ranks = pareto_ranks(np.column_stack([r, cost]), MAXIMIZE)
        assert e["kendall_tau_b_pareto"] == pytest.approx(kendall_tau_b(ranks, truth))
        rho = stats.spearmanr(score[name], true_acc)[0]
        assert e["spearman_rho_accuracy"] == pytest.approx(rho, nan_ok=True)
        vs = e["paired_run_minus_baseline"]
        run = {
            "accuracy": result["kendall_tau_b_accuracy"],
            "pareto": result["kendall_tau_b_pareto"],
        }
        for m in ("accuracy", "pareto"):
            assert vs[m]["diff"] == pytest.approx(run[m] - e[f"kendall_tau_b_{m}"])
            low, high = vs[m]["ci95"]
            assert low <= vs[m]["diff"] <= high, (name, m, vs[m])
        assert e["verdict"].startswith(f"supernet beats {name}: Pareto tau-b ")
    pairs = (
        ("weights+alpha+all-free", "weights+all-free", "paired_minus_without_alpha"),
        ("weights+all-free", "all-free", "paired_minus_free"),
        ("weights+free", "free", "paired_minus_free"),
    )
    for weighted, part, section in pairs:
        gain = b[weighted][section]
        for m in ("accuracy", "pareto"):
            key = f"kendall_tau_b_{m}"
            assert gain[m]["diff"] == pytest.approx(b[weighted][key] - b[part][key])
            assert gain[m]["ci95"][0] <= gain[m]["diff"] <= gain[m]["ci95"][1]
        verdict = section.replace("paired_minus", "verdict_against")
        assert b[weighted][verdict].startswith(f"{weighted} beats {part}: ")
    adds = result["supernet_adds_information"]
    assert adds["answer"] == (gain["pareto"]["ci95"][0] > 0)


def test_free_baselines_use_the_spaces_own_ops_and_are_computed_once(run_dir, nb201_csv) -> None:
    from prp.trainer.estimation.proxies import fresh_supernet
    from prp.trainer.export import load_run
    from prp.trainer.profiling import trace_ops

    result = evaluate_run(run_dir, nb201_csv, k=12, seed=4, bootstrap=200)
    check_baselines(result)
    settings = result["baseline_settings"]
    assert settings["computed"] == result["k"] and settings["reused"] == 0
    assert set(settings["seconds_per_architecture"]) == {"params+macs", *PROXIES}
    # params and MACs are the traced ops of the run's own space (4 channels here), not the
    # table's params_MB (the benchmark's 16-channel network).
    run = load_run(run_dir)
    space = run.supernet.space
    trace = trace_ops(fresh_supernet(space, seed=0))
    paths = [space.decode(a["arch_str"]) for a in result["architectures"]]
    assert [a["free_scores"]["params"] for a in result["architectures"]] == list(
        trace.params().many(paths)
    )
    assert [a["free_scores"]["macs"] for a in result["architectures"]] == list(
        trace.macs().many(paths)
    )
    table = NB201Table.load(nb201_csv)
    rows = table.rows_of(space, paths)
    assert not np.allclose(
        [a["free_scores"]["params"] / 1e6 for a in result["architectures"]],
        table.column("params_MB")[rows],
    )
    # Evaluating again reads the scores back from the evaluation file: none is computed twice,
    # and every figure is the same.
    again = evaluate_run(run_dir, nb201_csv, k=12, seed=4, bootstrap=200)
    assert again["baseline_settings"]["computed"] == 0
    assert again["baseline_settings"]["reused"] == result["k"]
    assert again["baselines"] == result["baselines"]
    # A shared cache serves another evaluation of the same architectures with the same seed.
    from prp.trainer.evaluate import remember_free_scores

    cache: dict = {}
    remember_free_scores(cache, result)
    (run_dir / "eval_nb201.json").unlink()
    third = evaluate_run(run_dir, nb201_csv, k=12, seed=4, bootstrap=200, proxy_cache=cache)
    assert third["baseline_settings"]["computed"] == 0
    # The proxies are scored on the run's own initialisation (its seed, as a weights+free run
    # scores them while training), whatever the evaluation's sampling seed: another --seed
    # reuses them, and the record says which init they came from.
    other = evaluate_run(run_dir, nb201_csv, archs=paths, seed=5, bootstrap=200, proxy_cache=cache)
    assert other["baseline_settings"]["computed"] == 0
    assert [a["free_scores"] for a in other["architectures"]] == [
        a["free_scores"] for a in result["architectures"]
    ]
    assert other["baseline_settings"]["proxies"]["init_seed"] == run.cfg.seed


def test_an_evaluation_file_written_before_the_rename_reads_with_todays_names(
    run_dir, nb201_csv, tmp_path
) -> None:
    from prp.trainer.evaluate import EVAL_FILE, read_evaluation

    evaluate_run(run_dir, nb201_csv, k=8, seed=4, bootstrap=50)
    today = json.loads((run_dir / EVAL_FILE).read_text())
    # Before 2026-12-05 prp-eval called weights+free `supernet+free`, and the verdict named
    # the row it read.
    old = dict(today)
    old["baselines"] = {
        "supernet+free" if k == "weights+free" else k: v for k, v in today["baselines"].items()
    }
    old["run_estimator_verdict"] = {**today["run_estimator_verdict"], "row": "weights"}
    (tmp_path / EVAL_FILE).write_text(json.dumps(old))
    read = read_evaluation(tmp_path / EVAL_FILE)
    assert list(read["baselines"]) == list(today["baselines"])
    assert json.dumps(read) == json.dumps(today)


def test_alpha_estimators_on_a_hand_computed_case() -> None:
    from prp.trainer.evaluate import alpha_estimators

    # P_s orders the four paths 1 < 2 < 3 < 4 (best first); the true ranks 1, 2, 2, 3 tie the
    # middle pair: 5 concordant pairs, 0 discordant, 1 tie in y -> 5 / sqrt(6 x 5).
    scores = np.array([3.0, 2.0, 1.0, 0.0])
    true_rank = np.array([1, 2, 2, 3])
    got = alpha_estimators(scores, np.array([1, 1, 2, 2]), true_rank)
    assert got["alpha"] == pytest.approx(5 / np.sqrt(30))
    # combined: (1/4 + 1.5/4, 2/4 + 1.5/4, 3/4 + 3.5/4, 4/4 + 3.5/4) is ordered like alpha.
    assert got["combined"] == pytest.approx(5 / np.sqrt(30))
    # Scores that reverse the truth give -1 with no ties in the truth.
    assert alpha_estimators(np.arange(4.0), np.arange(1, 5), np.arange(1, 5))["alpha"] == -1.0


def test_truth_targets_rank_every_sampled_path_and_eval_reports_alpha(nb201_csv, tmp_path):
    from dataclasses import replace

    import torch
    from prp.trainer.pareto import kendall_tau_b
    from prp.trainer.runs import RunLog
    from prp.trainer.spaces import get_space

    cfg = replace(CFG, truth_table=str(nb201_csv), epochs_pareto=3, prune_after=3)
    data = load_dataset("default", limit_per_class=CFG.limit_per_class)
    trainer = Trainer(cfg, tmp_path, data=data)
    trainer.write_front(trainer.run())
    epochs = [r for r in RunLog(tmp_path / "log.jsonl").records() if r.get("event") == "epoch"]
    ranked = [r["ranked"] for r in epochs if r["stage"] == "pareto"]
    # Fresh samples each epoch; alpha ranks them together with every earlier one.
    assert ranked[0] == cfg.samples and ranked[1] > ranked[0] and ranked[2] > ranked[1]
    result = evaluate_run(tmp_path, nb201_csv, k=40, seed=2, baselines=False)
    by = result["kendall_tau_b_pareto_by_estimator"]
    assert set(by) == {"weights", "alpha", "combined"}
    assert by["weights"] == result["kendall_tau_b_pareto"]
    # The alpha estimator is P_s of the run's saved alpha, against the rows' true ranks.
    alpha = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["supernet"]["alpha"]
    space = get_space("nb201")
    rows = result["architectures"]
    scores = [
        sum(float(alpha[s, i]) for s, i in enumerate(space.decode(a["arch_str"]))) for a in rows
    ]
    assert by["alpha"] == pytest.approx(
        kendall_tau_b(-np.array(scores), [a["true_rank"] for a in rows])
    )
