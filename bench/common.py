"""Shared helpers for benchmarks: each writes a JSON record and prints a table."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
from prp.runtime.files import write_atomic
from prp.trainer.stats import paired_bootstrap  # noqa: F401 - in the package for prp-eval
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write_record(name: str, record: dict[str, Any], results: Path = RESULTS) -> Path:
    """Write `record` atomically to <results>/<name>.json (default: bench/results/)."""
    path = results / f"{name}.json"
    text = json.dumps({"benchmark": name, "machine": machine(), **record}, indent=2)
    write_atomic(path, lambda f: f.write(text))
    return path


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r))
    Console(width=int(os.environ.get("COLUMNS", "160"))).print(table)
