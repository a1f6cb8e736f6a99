"""bench/ranking.py end to end on the tiny preset: real training, real evaluation against the
NB201 table, the paired bootstrap against fairness, and a stopped call that goes on."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bench(tmp_path: Path, nb201_csv: Path) -> tuple[dict, str]:
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "ranking.py"),
        "--truth",
        str(nb201_csv),
        "--preset",
        "tiny",
        "--limit-per-class",  # the tiny preset's size: the bench's default is all the data
        "30",
        "--compute-device",
        "cpu",
        "--methods",
        "fair,prp-truth-fairw",
        "--epochs-fair",
        "1",
        "--epochs-pareto",
        "1",
        "--k",
        "10",
        "--eval-images",
        "60",
        "--bn-batches",
        "1",
        "--bootstrap",
        "40",
        "--out",
        str(tmp_path / "runs"),
        "--results-dir",
        str(tmp_path / "results"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "results" / "ranking.json").read_text()), done.stdout


def test_ranking_bench_pairs_against_fairness_and_goes_on_after_a_stop(tmp_path, nb201_csv) -> None:
    first, printed = bench(tmp_path, nb201_csv)
    by = {r["name"]: r for r in first["results"]}
    assert set(by) == {"fair", "prp-truth-fairw"}
    assert by["fair"]["k"] == by["prp-truth-fairw"]["k"] == 10
    assert first["config"]["compute_device"] == "cpu"
    paired = first["paired_against_fair"]
    # The bootstrap's point values are the evaluation's own figures, and each difference is
    # the difference of those.
    point = paired["point"]
    assert np.isclose(point["fair weights"], by["fair"]["kendall_tau_b_pareto"])
    prp = by["prp-truth-fairw"]["kendall_tau_b_pareto_by_estimator"]
    for estimator in ("weights", "alpha", "combined"):
        assert np.isclose(point[f"prp-truth-fairw {estimator}"], prp[estimator])
        d = paired["against"][f"prp-truth-fairw {estimator} - fair weights"]
        assert np.isclose(d["difference"], prp[estimator] - point["fair weights"])
        assert d["ci95"][0] <= d["ci95"][1] and 0.0 <= d["p_not_better"] <= 1.0
    acc = paired["against"]["prp-truth-fairw accuracy - fair accuracy"]
    assert np.isclose(
        acc["difference"],
        by["prp-truth-fairw"]["kendall_tau_b_accuracy"] - by["fair"]["kendall_tau_b_accuracy"],
    )
    assert not any(k.startswith("fair ") for k in paired["against"])
    # The free baselines rank the same architectures beside every method: computed once (for
    # the first method evaluated), the same figures for both, each paired with that method's
    # weights, and printed.
    fair, prp_base = by["fair"]["baselines"], by["prp-truth-fairw"]["baselines"]
    for name in ("params", "macs", "synflow", "naswot", "free"):
        for key in ("kendall_tau_b_accuracy", "kendall_tau_b_pareto"):
            assert fair[name][key] == prp_base[name][key]
        d = prp_base[name]["paired_run_minus_baseline"]["pareto"]
        assert np.isclose(d["diff"], prp["weights"] - prp_base[name]["kendall_tau_b_pareto"])
    computed = [by[m]["baseline_settings"]["computed"] for m in ("fair", "prp-truth-fairw")]
    assert computed == [10, 0]
    assert "Free baselines on the same 10 architectures" in printed
    # (table cells wrap at the console's width: look for words that fit in any cell)
    assert "Each method against the free baselines" in printed
    assert "fair: weights+free" in printed and "prp-truth-fairw: weights+free" in printed
    assert "fair: weights+all-free" in printed  # a method's row, not a free baseline's
    for r in first["results"]:
        assert r["supernet_adds_information"]["sentence"] in " ".join(printed.split())

    # A call stopped after PRP's last epoch, before its final front: the same --out trains
    # nothing again, resumes PRP from its checkpoint and reuses fairness's evaluation. The
    # figures are the first call's.
    runs = tmp_path / "runs"
    (runs / "ranking-prp-truth-fairw" / "front.json").unlink()
    (runs / "ranking-prp-truth-fairw" / "eval_nb201.json").unlink()
    second, out = bench(tmp_path, nb201_csv)
    assert "fair: reusing the finished run" in out
    assert "fair: reusing its evaluation of the same architectures" in out
    assert "prp-truth-fairw: reusing its evaluation" not in out
    again = {r["name"]: r for r in second["results"]}
    for name in by:
        for key in ("kendall_tau_b_pareto", "kendall_tau_b_accuracy", "hypervolume_ratio"):
            assert np.isclose(again[name][key], by[name][key]), (name, key)
    assert again["fair"]["eval_s"] is None and again["prp-truth-fairw"]["eval_s"] > 0
    assert again["prp-truth-fairw"]["train_s_from"] == "log"
    assert second["paired_against_fair"]["point"] == paired["point"]
    # PRP's new evaluation takes the proxy scores from fairness's reused one.
    assert again["prp-truth-fairw"]["baseline_settings"]["computed"] == 0
    assert again["prp-truth-fairw"]["baselines"] == by["prp-truth-fairw"]["baselines"]

    # A PRP evaluation written before alpha's rows were reported is evaluated again (its proxy
    # scores reused), and now holds them; fairness's (no alpha) is still reused.
    prp_eval = runs / "ranking-prp-truth-fairw" / "eval_nb201.json"
    old = json.loads(prp_eval.read_text())
    for a in old["architectures"]:
        del a["alpha_score"]
    old["baselines"].pop("alpha")
    prp_eval.write_text(json.dumps(old))
    third, out = bench(tmp_path, nb201_csv)
    assert "fair: reusing its evaluation of the same architectures" in out
    assert "prp-truth-fairw: reusing its evaluation" not in out
    renewed = {r["name"]: r for r in third["results"]}["prp-truth-fairw"]
    assert renewed["baseline_settings"]["computed"] == 0
    assert "alpha" in renewed["baselines"] and "alpha" not in again["fair"]["baselines"]
    assert renewed["baselines"] == again["prp-truth-fairw"]["baselines"]


def test_estimator_option_sets_the_recipe_and_the_ablation_arm_drops_alpha(
    monkeypatch, nb201_csv
) -> None:
    """`--estimator` is what the default recipe ranks by; the arm without the Pareto-rank
    stage trains no alpha, so it ranks by the same estimator less alpha's part (a config
    `--method fair` accepts). A name that is not an estimator is refused in one line."""
    from dataclasses import replace

    from prp.trainer.config import preset

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import ranking

    base = preset("tiny")
    recipe = replace(base, estimator="weights+alpha+all-free").validate()
    args = argparse.Namespace(truth=nb201_csv)
    assert ranking.method_config("default", args, base, recipe).estimator == (
        "weights+alpha+all-free"
    )
    arm = ranking.method_config("default-nostage", args, base, recipe)
    assert (arm.method, arm.estimator) == ("fair", "weights+all-free")
    arm.validate()
    plain = ranking.method_config(
        "default-nostage", args, base, replace(recipe, estimator="weights+free")
    )
    assert plain.estimator == "weights+free"

    cmd = [sys.executable, str(ROOT / "bench" / "ranking.py"), "--truth", str(nb201_csv)]
    done = subprocess.run(
        [*cmd, "--estimator", "nope"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "unknown --estimator 'nope'" in done.stderr
