"""`bench/pool_seeds.py`: the seeds' paired differences pooled, on the committed ranking records."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "pool_seeds.py"
SEEDS = [f"aaf-seed{s}" for s in range(3)]


@pytest.fixture(scope="module")
def pool_seeds():
    sys.path.insert(0, str(SCRIPT.parent))  # the script imports `common` as scripts do
    try:
        spec = importlib.util.spec_from_file_location("bench_pool_seeds", SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


def test_equal_seeds_narrow_the_interval_by_the_root_of_their_number(pool_seeds) -> None:
    one = pool_seeds.pool([0.02], [(-0.01, 0.05)])
    assert one["mean"] == pytest.approx(0.02) and one["ci95"] == pytest.approx([-0.01, 0.05])
    four = pool_seeds.pool([0.02] * 4, [(-0.01, 0.05)] * 4)
    assert four["mean"] == pytest.approx(0.02)
    assert four["ci95"][1] - four["ci95"][0] == pytest.approx(0.06 / math.sqrt(4))
    with pytest.raises(ValueError):
        pool_seeds.pool([0.1, 0.2], [(0.0, 0.3)])


def test_the_committed_seeds_pool_to_their_mean(tmp_path: Path) -> None:
    for name in SEEDS:
        shutil.copy(ROOT / "bench" / "results" / f"{name}.json", tmp_path)
    env = {**os.environ, "PRP_BENCH_RESULTS": str(tmp_path)}
    subprocess.run(
        [sys.executable, str(SCRIPT), *SEEDS, "--name", "pooled"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    record = json.loads((tmp_path / "pooled.json").read_text())
    sources = [json.loads((tmp_path / f"{n}.json").read_text()) for n in SEEDS]
    for metric in ("accuracy", "pareto"):
        diffs = []
        for source, seed in zip(sources, record["seeds"], strict=True):
            prp = next(r for r in source["results"] if r["method"] == "prp")
            paired = prp["run_estimator_verdict"]["against"]["all-free"][metric]
            assert seed["difference"][metric]["diff"] == paired["diff"]
            diffs.append(paired["diff"])
        pooled = record["pooled_difference"][metric]
        assert pooled["mean"] == pytest.approx(sum(diffs) / len(diffs))
        lo, hi = pooled["ci95"]
        assert lo < pooled["mean"] < hi
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "no-such-record", "--name", "x"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "no record" in bad.stderr
