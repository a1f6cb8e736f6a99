"""bench/az_nas_nb201.py on a small NB201 network: scores go to the cache in the seeded random
order, a second call scores only what the cache lacks, a report reads it alone, and a cache of
other settings is refused."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from prp.trainer.nb201_table import NB201Table

ROOT = Path(__file__).resolve().parents[1]


def run(nb201_csv: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ROOT / "bench" / "az_nas_nb201.py"), "--truth", str(nb201_csv)]
    cmd += ["--channels", "4", "--cells", "1", "--cache", str(tmp_path / "scores.json.gz")]
    cmd += ["--name", str(tmp_path / "record"), "--bootstrap", "20", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def cached(tmp_path: Path) -> dict[str, dict[str, float]]:
    with gzip.open(tmp_path / "scores.json.gz", "rt") as f:
        return {a: {k: float(v) for k, v in s.items()} for a, s in json.load(f)["scores"].items()}


def test_scores_are_cached_resumed_and_never_computed_twice(nb201_csv, tmp_path) -> None:
    first = run(nb201_csv, tmp_path, "--seconds", "0.1", "--save-every", "0")
    assert first.returncode == 0, first.stderr[-2000:]
    record = json.loads((tmp_path / "record.json").read_text())
    n1 = record["this_call"]["scored"]
    assert n1 >= 3 and record["architectures"] == n1 and record["partial"]
    # The architectures scored are the first of the table's seeded random order.
    table = NB201Table.load(nb201_csv)
    order = [table.arch_strs[r] for r in np.random.default_rng(0).permutation(len(table))]
    before = cached(tmp_path)
    assert set(before) == set(order[:n1])
    # Called again it goes on where it stopped: the scores it had are kept as they were.
    second = run(nb201_csv, tmp_path, "--seconds", "0.1", "--save-every", "0")
    assert second.returncode == 0, second.stderr[-2000:]
    record = json.loads((tmp_path / "record.json").read_text())
    n2 = record["this_call"]["scored"]
    after = cached(tmp_path)
    assert n2 >= 1 and set(after) == set(order[: n1 + n2])
    assert {a: after[a] for a in before} == before
    assert set(record["estimators"]) == {
        "expressivity",
        "progressivity",
        "trainability",
        "complexity (macs)",
        "az-nas",
    }
    # A report alone scores nothing.
    report = run(nb201_csv, tmp_path, "--report-only")
    assert report.returncode == 0, report.stderr[-2000:]
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["this_call"]["scored"] == 0 and record["architectures"] == n1 + n2
    # Scores of other settings are refused in one line, not mixed in.
    other = run(nb201_csv, tmp_path, "--report-only", "--seed", "1")
    assert other.returncode == 2 and "other settings (differing: seed)" in other.stderr
    assert "Traceback" not in other.stderr
