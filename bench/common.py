"""Shared helpers for benchmarks: each writes a JSON record and prints a table.

Bench scripts are run as scripts (`python bench/<name>.py`), so Python puts this folder first on
the import path and they import it as `common`. Every record they write under bench/results/
goes through `write_record` (or `update_record`, for a record that keeps parts measured by
earlier commands), which stamps it with the machine and its `provenance`: the git commit, whether
the tree had uncommitted changes, and the exact command line.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from prp.runtime.files import write_atomic
from prp.trainer.stats import paired_bootstrap  # noqa: F401 - in the package for prp-eval
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
# Where records go: bench/results/, or $PRP_BENCH_RESULTS (tests write theirs elsewhere).
RESULTS = Path(os.environ.get("PRP_BENCH_RESULTS") or ROOT / "bench" / "results")
# Environment variables that change what a benchmark measures: shown before the command.
COMMAND_ENV = ("OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PRP_DATA_CACHE")


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def command_line(argv: list[str] | None = None) -> str:
    """The shell command that ran this process: `python` and its arguments as given, after the
    environment variables of COMMAND_ENV that were set."""
    argv = sys.argv if argv is None else argv
    env = [f"{k}={shlex.quote(os.environ[k])}" for k in COMMAND_ENV if k in os.environ]
    return " ".join([*env, "python", shlex.join(argv)])


def provenance(root: Path = ROOT, argv: list[str] | None = None) -> dict[str, Any]:
    """What made a record: the commit checked out in `root` (None outside a git checkout),
    whether tracked files differed from it (`dirty`), and the exact command line."""
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit.strip() if commit else None,
        "dirty": None if status is None else bool(status.strip()),
        "command": command_line(argv),
        "cwd": os.getcwd(),
    }


def _write(path: Path, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=2)
    write_atomic(path, lambda f: f.write(text))


def write_record(name: str, record: dict[str, Any], results: Path = RESULTS) -> Path:
    """Write `record` atomically to <results>/<name>.json (default: bench/results/), stamped
    with the machine and the provenance (commit, dirty tree, command line) of this process."""
    path = results / f"{name}.json"
    _write(path, {"benchmark": name, "machine": machine(), "provenance": provenance(), **record})
    return path


def update_record(
    name: str, keys: tuple[str, ...], part: dict[str, Any], results: Path = RESULTS
) -> Path:
    """Set `record[keys[0]]...[keys[-1]] = part` in <results>/<name>.json, keeping the rest of
    the record (measured by earlier commands, whose stamps it keeps); `part` gets the machine
    and the provenance of this process, and so does a new record itself (its first writer)."""
    path = results / f"{name}.json"
    record: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    record["benchmark"] = name
    if "provenance" not in record:
        record["machine"], record["provenance"] = machine(), provenance()
    node = record
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = {**part, "machine": machine(), "provenance": provenance()}
    _write(path, record)
    return path


def finite_loss(loss: torch.Tensor, step: int) -> None:
    """`pareto_stage.fit_alpha`'s check for a bench fit: stop at a loss that is not finite."""
    if not torch.isfinite(loss):
        raise SystemExit(f"the alpha loss became {loss.item()} at step {step}")


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r))
    Console(width=int(os.environ.get("COLUMNS", "160"))).print(table)
