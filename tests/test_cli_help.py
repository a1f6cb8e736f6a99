"""Every console script's --help: it works and shows users the command, not notes to developers."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_shows_no_developer_notes(script: str) -> None:
    module, name = SCRIPTS[script].split(":")
    app = getattr(importlib.import_module(module), name)
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    # A docstring's reason for its length (tests/test_imports.py) follows a \f: help stops there.
    assert "80 lines" not in result.output
