"""Timing a lowered program: median and quartiles of repeated calls, and the package
energy per call where a Linux RAPL counter is readable."""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..spaces import Shape
from .base import RAPL_MIN_S, RAPL_ROOT
from .programs import lower


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p25_ms: float
    p75_ms: float
    repeats: int
    energy_mj: float | None = None  # package energy per call, where RAPL is readable

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "median_ms": round(self.median_ms, 6),
            "p25_ms": round(self.p25_ms, 6),
            "p75_ms": round(self.p75_ms, 6),
            "repeats": self.repeats,
        }
        if self.energy_mj is not None:
            out["energy_mj"] = round(self.energy_mj, 9)
        return out


@dataclass(frozen=True)
class RaplCounter:
    """Linux RAPL package energy counters (microjoules, wrapping at `ranges`)."""

    files: tuple[Path, ...]
    ranges: tuple[int, ...]

    @classmethod
    def find(cls, root: Path = RAPL_ROOT) -> RaplCounter | None:
        """The readable package-level counters under `root`, or None (no RAPL, or not readable
        without privileges, as on most machines since Linux 5.10)."""
        files, ranges = [], []
        for zone in sorted(root.glob("*-rapl:*")):
            if zone.name.count(":") != 1:  # sub-zones (core, uncore, dram) are inside a package
                continue
            try:
                int((zone / "energy_uj").read_text())
                top = int((zone / "max_energy_range_uj").read_text())
            except (OSError, ValueError):
                continue
            files.append(zone / "energy_uj")
            ranges.append(top + 1)
        return cls(tuple(files), tuple(ranges)) if files else None

    def read(self) -> tuple[int, ...]:
        return tuple(int(f.read_text()) for f in self.files)

    def microjoules_since(self, start: Sequence[int]) -> int:
        """Energy used since `start` (a `read()`), across one counter wrap."""
        return sum((now - s) % r for now, s, r in zip(self.read(), start, self.ranges, strict=True))


def time_calls(
    call: Callable[[], object], warmup: int, repeats: int, rapl: RaplCounter | None = None
) -> Timing:
    """Median and quartiles of `repeats` timed calls after `warmup` untimed ones; with `rapl`,
    also the package energy per call over a loop of at least `RAPL_MIN_S` seconds."""
    for _ in range(warmup):
        call()
    times = np.empty(repeats)
    for k in range(repeats):
        t0 = time.perf_counter()
        call()
        times[k] = time.perf_counter() - t0
    times *= 1e3
    median = float(np.median(times))
    energy = None
    if rapl is not None:
        n = max(repeats, math.ceil(RAPL_MIN_S * 1e3 / max(median, 1e-6)))
        start = rapl.read()
        for _ in range(n):
            call()
        energy = rapl.microjoules_since(start) / n / 1e3
    return Timing(
        median, float(np.percentile(times, 25)), float(np.percentile(times, 75)), repeats, energy
    )


def measure(
    module: nn.Module,
    in_shape: Shape,
    backend: str,
    threads: int,
    warmup: int,
    repeats: int,
    rapl: RaplCounter | None = None,
    seed: int = 0,
) -> Timing:
    """Lower `module` for `backend` and time it on a random input of `in_shape`."""
    example = torch.randn(in_shape, generator=torch.Generator().manual_seed(seed))
    with tempfile.TemporaryDirectory(prefix="prp-profile-") as d, torch.no_grad():
        call = lower_quietly(module, example, backend, Path(d), threads)
        return time_calls(call, warmup, repeats, rapl)


def lower_quietly(
    module: nn.Module, example: torch.Tensor, backend: str, workdir: Path, threads: int
) -> Callable[[], object]:
    """`lower` without the exporters' deprecation notes (once per op); the call needs
    `workdir` kept until it is no longer run."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return lower(module, example, backend, workdir, threads)
