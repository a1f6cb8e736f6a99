"""Safety of the trainer side (issue 18): `prp-export --out` never deletes what it did not write
nor the run it exports, checkpoints are read with the weights-only unpickler (a crafted one
cannot run code), `--resume` refuses options it would drop and folders that are not runs,
damaged run files get one-line errors, and killed exports' leftovers are cleaned up safely.
All on a really trained tiny run and its real files."""

from __future__ import annotations

import builtins
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import copy_of_tiny_run
from prp.trainer.config import preset
from prp.trainer.errors import PRPError
from prp.trainer.export import ExportError, export_bundle, load_run

CFG = preset("tiny")


@pytest.fixture(scope="module")
def run_dir(tiny_run, tmp_path_factory) -> Path:
    return copy_of_tiny_run(tiny_run, tmp_path_factory)


def copy_run(run_dir: Path, tmp_path: Path, name: str = "run") -> Path:
    """A copy of the shared run for tests that damage it (or that old code would damage)."""
    return Path(shutil.copytree(run_dir, tmp_path / name))


def cli(name: str, *args: str) -> tuple[int, str]:
    """Run a console script; its exit status and its output on one line (rich wraps lines)."""
    exe = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(exe).exists():
        pytest.fail(f"{name} is not installed; run `pip install -e .[train,dev]`")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=600, env=env)
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def files_of(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------- 1. --out loses no data
def test_export_refuses_an_out_it_would_delete(run_dir, data, tmp_path) -> None:
    run = copy_run(run_dir, tmp_path / "runs")
    run_files = files_of(run)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    looks_like_bundle = tmp_path / "bundle-plus"
    looks_like_bundle.mkdir()
    (looks_like_bundle / "manifest.json").write_text(
        json.dumps({"schema_version": 1, "files": {"supernet.pte": "0" * 64}, "paths": []})
    )
    (looks_like_bundle / "supernet.pte").write_bytes(b"pte")
    (looks_like_bundle / "notes.txt").write_text("mine")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    cases = [
        (mine, "neither empty nor a bundle"),
        (run, "is the run"),
        (run.parent, "holds the run"),
        (tmp_path, "holds the run"),
        (looks_like_bundle, "also notes.txt, which prp-export did not write"),
        (a_file, "is not a folder"),
    ]
    for out, message in cases:
        before = files_of(out) if out.is_dir() else {"": out.read_bytes()}
        with pytest.raises(ExportError, match=message) as err:
            export_bundle(run, out, top=1, data=data)
        assert "\n" not in str(err.value)
        assert (files_of(out) if out.is_dir() else {"": out.read_bytes()}) == before
    assert files_of(run) == run_files
    # The CLI says the same in one line, with exit status 2.
    code, text = cli("prp-export", str(run), "--out", str(mine))
    assert code == 2 and "neither empty nor a bundle" in text and "Traceback" not in text
    assert (mine / "thesis.tex").read_text() == "years of work"


# --------------------------------------------------- 2. a checkpoint cannot run code on load
class PlantsAMarker:
    """Pickles as a call of exec: loading it with the full unpickler creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_checkpoint_holds_only_tensors_and_plain_data(run_dir) -> None:
    from prp.trainer.runs import read_checkpoint

    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)

    def walk(x: object) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                walk(k)
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        else:
            assert x is None or isinstance(x, (torch.Tensor, int, float, str, bool)), type(x)

    walk(state)
    assert state["epoch"] == CFG.epochs_fair + CFG.epochs_pareto
    assert read_checkpoint(run_dir / "checkpoint.pt")["version"] == 1


def test_crafted_checkpoint_is_refused_and_runs_no_code(run_dir, tmp_path) -> None:
    run = copy_run(run_dir, tmp_path)
    marker = tmp_path / "code-ran"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["evaluated"].append(PlantsAMarker(marker))
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(PRPError) as err:
        load_run(run)
    assert not marker.exists(), "load_run ran code from the checkpoint"
    assert "refused: it holds a Python object (exec)" in str(err.value)
    assert "\n" not in str(err.value)
    for args in (
        ("prp-train", "--resume", "--out", str(run)),
        ("prp-export", str(run), "--out", str(tmp_path / "bundle")),
    ):
        code, text = cli(*args)
        assert code == 2, text
        assert "refused: it holds a Python object (exec)" in text and "could run code" in text
        assert "Traceback" not in text
        assert not marker.exists(), f"{args[0]} ran code from the checkpoint"
    assert not (tmp_path / "bundle").exists()


# ------------------------------------------------------------ 4. --resume drops no options
def test_resume_refuses_other_options_and_folders_that_are_not_runs(run_dir, tmp_path) -> None:
    run = copy_run(run_dir, tmp_path)
    before = files_of(run)
    code, text = cli("prp-train", "--resume", "--out", str(run), "--lr", "0.1", "--seed", "3")
    assert code == 2, text
    assert (
        "--resume: options differ from the run's config.json: lr 0.1 != 0.05, seed 3 != 0; "
        "drop them or start a new run" in text
    )
    # With --preset every key of the preset counts: tiny plus another epoch count differs.
    code, text = cli(
        "prp-train", "--preset", "tiny", "--resume", "--out", str(run), "--epochs-fair", "5"
    )
    assert code == 2 and "epochs_fair 5 != 2" in text and "Traceback" not in text, text
    assert files_of(run) == before
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.mkdir()
    for folder, message in ((missing, "does not exist"), (empty, "is not a training run")):
        code, text = cli("prp-train", "--resume", "--out", str(folder))
        assert code == 2 and message in text and "Traceback" not in text, text
    assert not missing.exists() and not any(empty.iterdir())
    # The same options, and a compute device (which may change), resume: the finished run
    # searches its front again from the checkpoint and finds the same one.
    front = json.loads((run / "front.json").read_text())["paths"]
    code, text = cli(
        "prp-train",
        "--preset",
        "tiny",
        "--resume",
        "--out",
        str(run),
        "--lr",
        "0.05",
        "--compute-device",
        "cpu",
    )
    assert code == 0, text
    again = json.loads((run / "front.json").read_text())["paths"]
    assert [(p["path"], p["accuracy"]) for p in again] == [
        (p["path"], p["accuracy"]) for p in front
    ]
    assert json.loads((run / "config.json").read_text()) == json.loads(before["config.json"])


# ------------------------------------------------------ 6. damaged run files: one line, exit 2
def test_damaged_checkpoint_or_front_gives_one_line_errors(run_dir, tmp_path) -> None:
    no_key = copy_run(run_dir, tmp_path, "no-key")
    state = torch.load(no_key / "checkpoint.pt", weights_only=True)
    del state["op_mask"]
    torch.save(state, no_key / "checkpoint.pt")
    no_space = copy_run(run_dir, tmp_path, "no-space")
    front = json.loads((no_space / "front.json").read_text())
    del front["space_config"]
    (no_space / "front.json").write_text(json.dumps(front))
    no_acc = copy_run(run_dir, tmp_path, "no-accuracy")
    front = json.loads((no_acc / "front.json").read_text())
    del front["paths"][0]["accuracy"]
    (no_acc / "front.json").write_text(json.dumps(front))
    cases = [
        (no_key, "checkpoint.pt lacks 'op_mask'", ["prp-train", "prp-export"]),
        (no_space, "front.json lacks 'space_config'", ["prp-export"]),
        (no_acc, "front.json paths[0] lacks 'accuracy'", ["prp-export"]),
    ]
    for run, message, tools in cases:
        with pytest.raises(PRPError, match=message.replace("[", r"\[")) as err:
            load_run(run)
        assert "\n" not in str(err.value)
        for tool in tools:
            args = ["--resume", "--out", str(run)] if tool == "prp-train" else [str(run)]
            code, text = cli(
                tool, *args, *(["--out", str(tmp_path / "b")] if tool == "prp-export" else [])
            )
            assert code == 2 and message in text and "Traceback" not in text, (tool, text)
    assert not (tmp_path / "b").exists()


def test_prp_eval_reports_a_damaged_front_in_one_line(run_dir, tmp_path, nb201_csv) -> None:
    run = copy_run(run_dir, tmp_path)
    front = json.loads((run / "front.json").read_text())
    del front["paths"][0]["path"]
    (run / "front.json").write_text(json.dumps(front))
    code, text = cli("prp-eval", str(run), "--truth", str(nb201_csv), "--k", "5")
    assert code == 2 and "front.json paths[0] lacks 'path'" in text, text
    assert "Traceback" not in text


# ------------------------------------------------- 7. killed exports' leftovers, and only them
def test_export_removes_killed_exports_leftovers_and_nothing_else(run_dir, data, tmp_path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead, alive = gone.pid, os.getppid()  # a finished process; pytest's parent runs
    parent = tmp_path / "exported"

    def folder(name: str, files: dict[str, str]) -> Path:
        d = parent / name
        d.mkdir(parents=True)
        for f, text in files.items():
            (d / f).write_text(text)
        return d

    stale = [
        folder(
            f".b.tmp-{dead}",
            {"supernet.pte": "x", "path_0.onnx": "x", ".manifest.json.a1_b.tmp": "{"},
        ),
        folder(
            f".other.old-{dead}",
            {
                "manifest.json": json.dumps(
                    {"schema_version": 1, "files": {"old-name.bin": "0" * 64}, "paths": []}
                ),
                "old-name.bin": "x",
            },
        ),
    ]
    kept = [
        folder(f".b.tmp-{alive}", {"supernet.pte": "a live export's"}),
        folder(f".c.tmp-{dead}", {"supernet.pte": "x", "notes.txt": "not an export's"}),
        folder(f".d.tmp-{dead}x", {"supernet.pte": "x"}),  # not the exporter's pattern
        folder(f"e.tmp-{dead}", {"supernet.pte": "x"}),  # no leading dot
        folder(f".f.tmp-{dead}", {}),
    ]
    (kept[-1] / "sub").mkdir()  # a folder inside: no export writes one
    a_file = parent / f".g.tmp-{dead}"
    a_file.write_text("a file, not a folder")
    kept_files = {d.name: files_of(d) for d in kept}
    out = parent / "b"
    out.mkdir()  # an empty folder is a fine --out
    messages: list[str] = []
    assert export_bundle(run_dir, out, top=1, data=data, progress=messages.append) == out
    assert json.loads((out / "manifest.json").read_text())["paths"]
    assert not any(d.exists() for d in stale)
    assert {d.name: files_of(d) for d in kept} == kept_files and a_file.is_file()
    assert any(f".b.tmp-{dead}" in m and f".other.old-{dead}" in m for m in messages)
    left = {p.name for p in parent.iterdir()}
    assert left == {"b", a_file.name, *(d.name for d in kept)}
