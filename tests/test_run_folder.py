"""prp-train writes a new run only into a missing or empty folder (issue 33): a folder holding a
user's files, or a run without --resume, is refused with one line, exit 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "prp-train"), "--preset", "tiny", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300", "OMP_NUM_THREADS": "1"},
        timeout=600,
    )


def test_a_folder_of_the_users_files_is_refused_and_untouched(tmp_path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    (tmp_path / "front.json").write_text("my own front.json, not a run's")
    result = train("--out", str(tmp_path))
    assert result.returncode == 2
    text = " ".join(result.stdout.split())  # one message, wrapped at the console's width
    assert text.startswith("error:") and text.count("error:") == 1 and "is not empty" in text
    assert "Traceback" not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.json", "mine.txt"]
    assert (tmp_path / "front.json").read_text() == "my own front.json, not a run's"


def test_a_file_is_refused(tmp_path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("x")
    result = train("--out", str(target))
    assert result.returncode == 2 and "is a file" in result.stdout
    assert target.read_text() == "x"


def test_new_runs_go_into_missing_or_empty_folders_and_runs_resume(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train("--out", str(empty)).returncode == 0
    assert (empty / "front.json").is_file()
    again = train("--out", str(empty))  # a run is there now: without --resume, refused
    assert again.returncode == 2 and "add --resume" in again.stdout
    assert train("--out", str(empty), "--resume").returncode == 0
    assert train("--out", str(tmp_path / "missing" / "run")).returncode == 0
