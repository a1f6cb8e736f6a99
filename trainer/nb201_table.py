"""Per-architecture ground truth: NAS-Bench-201 accuracies with HW-NAS-Bench costs.

This is truth for evaluation, not a cost model for training: it prices whole architectures, so
it can say how good a search was but cannot price the op of a path it has never seen.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import PRPError
from .spaces import SearchSpace

# Cost columns of the table: column -> (objective, unit, device).
NB201_COST_COLUMNS: dict[str, tuple[str, str, str]] = {
    "edgegpu_energy": ("energy", "mJ", "edgegpu"),
    "edgegpu_latency": ("latency", "ms", "edgegpu"),
    "raspi4_latency": ("latency", "ms", "raspi4"),
    "pixel3_latency": ("latency", "ms", "pixel3"),
}
NB201_ACCURACY_COLUMNS = ("cifar10_test_acc", "cifar10_valid_acc")


@dataclass(frozen=True)
class NB201Table:
    """The shared CSV: one row per NB201 architecture, indexed by `arch_str`."""

    source: str
    arch_strs: tuple[str, ...]
    columns: dict[str, np.ndarray] = field(repr=False)
    index: dict[str, int] = field(repr=False)

    @classmethod
    def load(cls, path: str | Path) -> NB201Table:
        p = Path(path)
        if not p.is_file():
            raise PRPError(
                f"NB201 table {p} does not exist; pass the path of nb201_cifar10_hw.csv "
                f"(in this project's shared data: ../shared/data/nasbench201/nb201_cifar10_hw.csv)"
            )
        with p.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "arch_str" not in reader.fieldnames:
                raise PRPError(f"NB201 table {p} has no 'arch_str' column; is it the right file?")
            rows = list(reader)
        if not rows:
            raise PRPError(f"NB201 table {p} has a header but no rows")
        names = [c for c in reader.fieldnames if c not in ("arch_str", "arch_index")]
        columns: dict[str, np.ndarray] = {}
        for c in names:
            try:
                columns[c] = np.array([float(r[c]) for r in rows])
            except (TypeError, ValueError) as e:
                raise PRPError(
                    f"NB201 table {p}: column {c!r} has a non-numeric value ({e})"
                ) from None
        arch_strs = tuple(r["arch_str"] for r in rows)
        return cls(str(p), arch_strs, columns, {a: i for i, a in enumerate(arch_strs)})

    def __len__(self) -> int:
        return len(self.arch_strs)

    def column(self, name: str) -> np.ndarray:
        try:
            return self.columns[name]
        except KeyError:
            raise PRPError(
                f"NB201 table {self.source} has no column {name!r}; columns are: "
                f"{', '.join(self.columns)}"
            ) from None

    def rows_of(self, space: SearchSpace, paths: Sequence[Sequence[int]]) -> np.ndarray:
        """Row indices of `paths` (NB201 paths, matched through their arch_str)."""
        out = np.empty(len(paths), dtype=np.int64)
        for k, path in enumerate(paths):
            key = space.benchmark_key(path)
            if key is None or key not in self.index:
                raise PRPError(f"path {tuple(path)} ({key}) is not in NB201 table {self.source}")
            out[k] = self.index[key]
        return out

    def lookup(self, space: SearchSpace, paths: Sequence[Sequence[int]], column: str) -> np.ndarray:
        """Values of `column` for each path."""
        return self.column(column)[self.rows_of(space, paths)]
