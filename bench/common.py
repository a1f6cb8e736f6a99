"""Shared helpers for benchmarks: each writes a JSON record and prints a table."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
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
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"benchmark": name, "machine": machine(), **record}, indent=2))
    tmp.replace(path)
    return path


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r))
    Console(width=int(os.environ.get("COLUMNS", "160"))).print(table)


def paired_bootstrap(
    statistics: Callable[[np.ndarray], dict[str, float]],
    k: int,
    pairs: Mapping[str, str],
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """How much of a difference between estimators is the draw of the k items they were scored
    on. `statistics(idx)` scores every estimator on the items `idx`; it is called once on all k
    and once per resample (k items drawn with replacement, the same draw for every estimator, so
    differences are paired). Returns the point values, each statistic's 95 % percentile interval,
    and for each `pairs` entry (statistic -> its baseline) the difference, its 95 % interval and
    the share of resamples in which the statistic is not above its baseline."""
    point = statistics(np.arange(k))
    rng = np.random.default_rng(seed)
    boot = [statistics(rng.integers(0, k, k)) for _ in range(resamples)]
    draws = {name: np.array([b[name] for b in boot]) for name in point}

    def interval(values: np.ndarray) -> list[float]:
        return [float(v) for v in np.percentile(values, [2.5, 97.5])]

    return {
        "point": point,
        "ci95": {name: interval(v) for name, v in draws.items()},
        "against": {
            f"{name} - {base}": {
                "difference": point[name] - point[base],
                "ci95": interval(draws[name] - draws[base]),
                "p_not_better": float(np.mean(draws[name] <= draws[base])),
            }
            for name, base in pairs.items()
        },
    }
