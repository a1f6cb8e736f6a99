"""The installed command-line entry points, run as a user would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def prp_info() -> str:
    exe = shutil.which("prp-info") or str(Path(sys.executable).parent / "prp-info")
    if not Path(exe).exists():
        pytest.fail("prp-info is not installed; run `pip install -e .[train,dev]`")
    return exe


def test_prp_info_lists_spaces_and_cost_models() -> None:
    out = subprocess.run([prp_info(), "--json"], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    names = {s["name"]: s for s in data["spaces"]}
    assert names["nb201"]["paths"] == 15625 and names["fbnet"]["slots"] == 22
    assert {m["name"] for m in data["cost_models"]} >= {"hwnasbench", "analytic"}
    table = subprocess.run([prp_info()], capture_output=True, text=True, check=True)
    assert "Search spaces" in table.stdout and "proxyless" in table.stdout


def test_prp_info_unknown_space_is_a_clear_error() -> None:
    out = subprocess.run([prp_info(), "--space", "nope"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unknown search space 'nope'" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
