"""Bench records carry what made them: the machine, the git commit, whether the tree had
uncommitted changes, and the exact command line (bench/common.py, which every bench script
writes through). Bench scripts import it as scripts do, without editing sys.path."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("bench_common", BENCH / "common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_provenance_names_the_commit_and_whether_tracked_files_changed(common, tmp_path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    git(repo, "add", "a.py")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = git(repo, "rev-parse", "HEAD")
    argv = ["bench/ranking.py", "--name", "two words"]
    clean = common.provenance(repo, argv)
    assert (clean["commit"], clean["dirty"]) == (head, False)
    (repo / "new.py").write_text("")  # untracked: not part of what ran from the commit
    assert common.provenance(repo, argv)["dirty"] is False
    (repo / "a.py").write_text("x = 2\n")
    assert common.provenance(repo, argv) == {**clean, "dirty": True}
    outside = common.provenance(tmp_path / "nowhere", argv)
    assert (outside["commit"], outside["dirty"]) == (None, None)


def test_the_command_line_is_the_one_typed_with_the_threads_it_ran_on(common, monkeypatch) -> None:
    argv = ["bench/ranking.py", "--methods", "fair,prp", "--name", "two words"]
    for key in common.COMMAND_ENV:
        monkeypatch.delenv(key, raising=False)
    assert (
        common.command_line(argv) == "python bench/ranking.py --methods fair,prp --name 'two words'"
    )
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    line = common.command_line(argv)
    assert line.startswith("OMP_NUM_THREADS=1 python bench/ranking.py ")
    assert shlex.split(line)[2:] == argv


def test_records_are_stamped_and_updates_keep_the_earlier_parts(common, tmp_path) -> None:
    path = common.write_record("demo", {"figures": [1, 2]}, results=tmp_path)
    record = json.loads(path.read_text())
    assert list(record)[:3] == ["benchmark", "machine", "provenance"]
    assert record["figures"] == [1, 2]
    assert record["provenance"]["commit"] == git(ROOT, "rev-parse", "HEAD")
    assert record["provenance"]["command"].endswith("python " + shlex.join(sys.argv))
    common.update_record("demo", ("memory", "big"), {"mib": 3.5}, results=tmp_path)
    updated = json.loads(path.read_text())
    assert {k: v for k, v in updated.items() if k != "memory"} == record
    part = updated["memory"]["big"]
    assert part["mib"] == 3.5 and set(part["provenance"]) == set(record["provenance"])
    # A record that update_record starts is stamped itself, so it passes the check below.
    fresh = json.loads(common.update_record("new", ("a",), {"x": 1}, results=tmp_path).read_text())
    assert fresh["provenance"] == fresh["a"]["provenance"] and fresh["machine"]["cores"]


def test_a_bench_script_runs_as_a_script_and_its_record_says_how(tmp_path) -> None:
    args = ["bench/supernet_overhead.py", "--reps", "1", "--batch", "2", "--spaces", "nb201"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PRP_BENCH_RESULTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "supernet_overhead.json").read_text())
    assert record["provenance"]["command"] == "OMP_NUM_THREADS=1 python " + shlex.join(args)
    assert record["provenance"]["commit"] == git(ROOT, "rev-parse", "HEAD")
    dirty = git(ROOT, "status", "--porcelain", "--untracked-files=no") != ""
    assert record["provenance"]["dirty"] is dirty
    assert record["results"][0]["space"] == "nb201"


def test_no_bench_script_edits_sys_path_and_each_writes_through_common() -> None:
    for script in sorted(BENCH.glob("*.py")):
        tree = ast.parse(script.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
                assert ast.unparse(node.value) != "sys.path", script.name
        if script.name == "common.py":
            continue
        calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        # Each writes its record, and only through the writers that stamp it.
        assert {"write_record", "update_record"} & calls, script.name
        assert not {"write_atomic", "json.dump"} & calls, script.name


def test_every_record_says_which_commit_and_command_made_it() -> None:
    # Records made before write_record stamped them carry provenance added from git history
    # (`recorded_after`); a record added without any fails here.
    records = sorted((BENCH / "results").glob("*.json"))
    assert records
    for path in records:
        provenance = json.loads(path.read_text()).get("provenance")
        assert isinstance(provenance, dict), path.name
        commit = provenance.get("commit")
        assert isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}", commit), path.name
        command = provenance.get("command")
        commands = command if isinstance(command, list) else [command]
        assert commands and all(isinstance(c, str) and c.strip() for c in commands), path.name


def test_supernet_probe_ranks_a_records_architectures_with_the_records_free_scores(
    nb201_csv, tmp_path
) -> None:
    """`bench/supernet_probe.py --archs-from`: the shipped supernet estimates exactly the
    architectures a prp-eval record ranked, and the free baselines are the record's scores, not
    recomputed (here params are the record's, reversed, so their tau-b says which were used)."""
    from prp.trainer.nb201_table import NB201Table
    from prp.trainer.pareto import kendall_tau_b

    table = NB201Table.load(nb201_csv)
    rows = [0, 40, 400, 1200, 3000, 7000, 11000, 15000]
    acc = table.column("cifar10_test_acc")[rows]
    params = -np.argsort(np.argsort(acc)).astype(float)  # exactly reversed: tau-b -1
    archs = [
        {"arch_str": table.arch_strs[r], "free_scores": {"params": p, "synflow": None}}
        for r, p in zip(rows, params, strict=True)
    ]
    record_in = tmp_path / "eval_nb201.json"
    record_in.write_text(json.dumps({"architectures": archs}))
    shipped = ROOT / "trainer" / "data" / "supernets" / "nb201-c8n2-fair.pt"
    args = [
        *("bench/supernet_probe.py", str(shipped), "--archs-from", str(record_in)),
        *("--truth", str(nb201_csv), "--label", "t", "--eval-images", "50"),
        *("--bn-batches", "1", "--bootstrap", "20"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PRP_BENCH_RESULTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "supernet_probe-t.json").read_text())
    assert record["estimators"]["params"]["kendall_tau_b_accuracy"] == pytest.approx(-1.0)
    assert kendall_tau_b(acc, params) == pytest.approx(-1.0)
    sizes = record["by_size"]
    assert sizes["small"]["n"] + sizes["big"]["n"] == len(rows)
    assert sizes["small"]["mean_true"] == pytest.approx(acc[params <= np.median(params)].mean())
    assert record["seconds"]["proxies_per_architecture"] is None  # nothing recomputed
