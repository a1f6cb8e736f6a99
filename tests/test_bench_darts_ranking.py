"""bench/darts_ranking.py end to end on a real tiny DARTS search run: paths drawn across the cost
range, each trained standalone, every estimator ranked against them, and a second call that
trains nothing again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from prp.trainer.config import preset
from prp.trainer.costs import price_supernet
from prp.trainer.datasets import load_dataset
from prp.trainer.estimation.proxies import FREE_BASELINES, PROXIES
from prp.trainer.export import load_run
from prp.trainer.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
N, POOL = 6, 300


def bench(run: Path, out: Path, results: Path) -> tuple[dict, str]:
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "darts_ranking.py"),
        *("--run", str(run), "--out", str(out), "--results-dir", str(results)),
        *("--n", str(N), "--pool", str(POOL), "--epochs", "1", "--bootstrap", "40"),
        *("--compute-device", "cpu", "--name", "test"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((results / "darts_ranking-test.json").read_text()), done.stdout


def test_darts_ranking_trains_a_cost_spread_once_and_ranks_every_estimator(tmp_path) -> None:
    # Half the images held out: the truth is top-1 on that split, and 10 images would tie it.
    cfg = preset(
        "tiny", space="darts", limit_per_class=10, epochs_fair=1, bn_batches=1, val_fraction=0.5
    )
    data = load_dataset("default", limit_per_class=10, val_fraction=0.5)
    run_dir, out, results = tmp_path / "run", tmp_path / "out", tmp_path / "results"
    trainer = Trainer(cfg, run_dir, data=data)
    trainer.write_front(trainer.run())

    first, printed = bench(run_dir, out, results)
    archs = first["architectures"]
    paths = [tuple(a["path"]) for a in archs]
    assert len(archs) == N and len(set(paths)) == N and len({a["key"] for a in archs}) == N
    # Live, valid, unseen paths, priced by the run's own cost model.
    run = load_run(run_dir)
    table = price_supernet(run.supernet, run.cfg.build_cost_model())
    for a, p in zip(archs, paths, strict=True):
        assert run.supernet.validate(p) == p and p not in run.fed_training
        assert run.supernet.space.encode(p) == a["key"]
        assert np.isclose(a["cost"], table(p))
    # Across the whole cost range of the seeded pool: from its cheapest to its dearest path,
    # in order, no gap wider than two target steps.
    rng = np.random.default_rng(0)
    pool = {run.supernet.sample_uniform(rng) for _ in range(POOL)} - run.fed_training
    pool_cost = table.many(list(pool))
    cost = np.array([a["cost"] for a in archs])
    assert first["draw"]["pool_cost_range"] == [pool_cost.min(), pool_cost.max()]
    assert np.all(np.diff(cost) > 0)
    assert cost[0] == pool_cost.min() and cost[-1] == pool_cost.max()
    assert np.diff(cost).max() <= 2 * (cost[-1] - cost[0]) / (N - 1)
    # Every path trained once, measured on the run's held-out split.
    assert first["trained_this_call"] == N and first["reused"] == 0
    assert first["val_images"] == len(data.val) == 50
    for a in archs:
        assert 0.0 <= a["trained_accuracy"] <= 100.0 and len(a["accuracy_by_epoch"]) == 1
        assert a["train_seconds"] > 0 and 0.0 <= a["estimated_accuracy"] <= 100.0
    assert len({a["trained_accuracy"] for a in archs}) > 1  # the truth ranks something
    # Every estimator against the truth: the shared weights, every free baseline a proxy can
    # score on DARTS, and the combinations; the weights paired with each.
    estimators = first["estimators"]
    unavailable = first["proxies"]["unavailable"]
    left_out = {n for name in unavailable for n in PROXIES[name].names}
    assert set(FREE_BASELINES) - left_out <= set(estimators)
    assert {"weights", "free", "weights+free"} <= set(estimators)
    for name, e in estimators.items():
        assert -1.0 <= e["kendall_tau_b_accuracy"] <= 1.0, name
        assert -1.0 <= e["spearman_rho_accuracy"] <= 1.0, name
    for name in set(estimators) - {"weights"}:
        d = first["paired"][f"weights accuracy - {name} accuracy"]
        tau = estimators["weights"]["kendall_tau_b_accuracy"]
        assert np.isclose(d["difference"], tau - estimators[name]["kendall_tau_b_accuracy"])
        assert d["ci95"][0] <= d["ci95"][1]
    assert "proxy truth" in first["truth"] and first["known"]
    assert first["provenance"]["command"].endswith(" ".join(["--name", "test"]))
    assert "DARTS: estimators against short standalone training" in printed

    # The same --out again, with the search run moved elsewhere (as on another machine):
    # every path comes from the cache, nothing is trained.
    cache = out / "standalone.json"
    written = cache.stat().st_mtime_ns
    moved = Path(shutil.copytree(run_dir, tmp_path / "elsewhere" / "run"))
    second, printed = bench(moved, out, results)
    assert f"{N} reused, 0 to train" in printed
    assert second["trained_this_call"] == 0 and second["reused"] == N
    assert cache.stat().st_mtime_ns == written
    assert [a["trained_accuracy"] for a in second["architectures"]] == [
        a["trained_accuracy"] for a in archs
    ]
    assert json.dumps(second["estimators"]) == json.dumps(estimators)  # NaN where undefined
    assert not list(out.glob("training-*"))  # no scratch folder left behind
