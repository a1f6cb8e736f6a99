"""What each path costs where the runtime runs: latency measured call by call, and energy
attributed to paths from windows of meter readings.

`Recorder` is what `AdaptiveModel` feeds after every backend call. Per path it keeps the
per-image wall time of its last `keep` calls in a ring (bounded memory whatever the run length),
after the first `warmup_calls` calls of that path, which are left out (first calls allocate and
pack weights). Statistics are robust ones: median and quartiles of the ring.

Energy: where an `EnergyMeter` is given, the recorder reads it at most every `sample_s` seconds
(on a call; a read is a sysfs file read) and closes a window every `window_s` seconds: the energy
the meter counted over the window, its length, and per path the images run in it. The last
`max_windows` windows are kept. `attribute_energy` fits, over the windows,

    energy_w = baseline_W x seconds_w + sum over paths p of energy_p x images_w,p

by least squares: `energy_p` is the energy one image of path p adds to what the device draws
anyway (which is what a policy trades), with a 95 % interval from the fit's standard errors.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .energy import EnergyMeter

Z95 = 1.96  # two-sided 95 % normal quantile: the intervals assume normal residuals


@dataclass(frozen=True)
class Latency:
    """Per-image wall time of one path's recent calls, ms, warm-up excluded."""

    median_ms: float
    p25_ms: float
    p75_ms: float
    samples: int  # calls the statistics are over (at most `keep`)
    calls: int  # calls timed after warm-up, all of them


@dataclass(frozen=True)
class Window:
    """One stretch of time between two meter readings."""

    seconds: float
    energy_j: float
    images: tuple[int, ...]  # per path, in the recorder's order


@dataclass(frozen=True)
class Attribution:
    """Per-path energy from the windows' regression."""

    energy_mj: dict[str, float]  # per image, above the baseline
    ci95_mj: dict[str, float]  # half-width of the 95 % interval
    baseline_w: float
    r2: float
    windows: int

    def confident(self, max_relative: float = 0.5) -> bool:
        """Every path's estimate is positive and its interval at most `max_relative` of it."""
        return all(
            e > 0 and self.ci95_mj[pid] <= max_relative * e for pid, e in self.energy_mj.items()
        )


class Recorder:
    """Per-path latency and (with a meter) energy windows; safe to call from several threads.

    `record` is what a call costs, so it takes no lock (one cost as much as the rest of it
    here): the ring is a `deque(maxlen=keep)`, whose append is atomic in CPython, and the
    counts are plain additions, of which two threads adding at the same instant can lose one
    (a call more counted as warm-up, an image less in a window, which the regression's
    residuals absorb). Closing a window (a meter read every `sample_s`) takes a lock."""

    def __init__(
        self,
        ids: Sequence[str],
        warmup_calls: int = 3,
        keep: int = 256,
        meter: EnergyMeter | None = None,
        window_s: float = 1.0,
        sample_s: float = 0.1,
        max_windows: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value, low in (("warmup_calls", warmup_calls, 0), ("keep", keep, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (window_s > 0 and sample_s > 0 and max_windows >= 1):
            raise ValueError(
                f"window_s and sample_s must be > 0 and max_windows >= 1, got {window_s}, "
                f"{sample_s}, {max_windows}"
            )
        self.ids = tuple(ids)
        self.index = {pid: k for k, pid in enumerate(self.ids)}
        self.warmup_calls = warmup_calls
        self.keep = keep
        self.meter = meter
        self.window_s, self.sample_s = window_s, sample_s
        self.windows: deque[Window] = deque(maxlen=max_windows)
        self._clock = clock
        self._lock = threading.Lock()
        # Per path: its calls so far (warm-up included), and per-image seconds of the last
        # `keep` calls after warm-up.
        self._seen = [0] * len(self.ids)
        self._rings: list[deque[float]] = [deque(maxlen=keep) for _ in self.ids]
        self._images = [0] * len(self.ids)  # per path, in the open window
        self._window_start: tuple[float, float] | None = None  # (time, meter joules)
        self._next_sample = math.inf
        if meter is not None:
            self._start_window(clock())

    def record(self, path: str, seconds: float, images: int = 1) -> None:
        """One backend call of `path` that took `seconds` for `images` images."""
        k = self.index[path]
        self._seen[k] += 1
        if self._seen[k] > self.warmup_calls:
            self._rings[k].append(seconds / images)
        if self.meter is not None:
            self._images[k] += images
            if self._clock() >= self._next_sample:
                self.tick()

    def calls(self, path: str) -> int:
        """Calls of `path` timed after warm-up, all of them (not only the kept ones)."""
        return max(self._seen[self.index[path]] - self.warmup_calls, 0)

    def tick(self) -> None:
        """Read the meter now if a reading is due (between calls: idle time counts too)."""
        if self.meter is None:
            return
        with self._lock:
            now = self._clock()
            if now >= self._next_sample:
                self._sample(now)

    def _start_window(self, now: float) -> None:
        assert self.meter is not None
        joules = self.meter.read_j()
        self._window_start = None if joules is None else (now, joules)
        self._images = [0] * len(self.ids)
        self._next_sample = now + self.sample_s

    def _sample(self, now: float) -> None:
        assert self.meter is not None
        self._next_sample = now + self.sample_s
        start = self._window_start
        joules = self.meter.read_j()
        if start is None or joules is None:  # no reading at one end: the window is lost
            self._start_window(now)
            return
        if now - start[0] < self.window_s:
            return
        images, self._images = self._images, [0] * len(self.ids)
        self.windows.append(Window(now - start[0], joules - start[1], tuple(images)))
        self._window_start = (now, joules)

    def latency(self, path: str) -> Latency | None:
        """Robust statistics of `path`'s kept calls; None before its first call after warm-up."""
        values = np.array(self._rings[self.index[path]])  # a copy: calls may go on appending
        if len(values) == 0:
            return None
        ms = values * 1e3
        q25, med, q75 = np.percentile(ms, [25, 50, 75])
        return Latency(float(med), float(q25), float(q75), len(ms), self.calls(path))

    def attribution(self) -> Attribution | None:
        """`attribute_energy` over the kept windows."""
        with self._lock:
            windows = list(self.windows)
        return attribute_energy(self.ids, windows)


def attribute_energy(ids: Sequence[str], windows: Sequence[Window]) -> Attribution | None:
    """Energy per image of each path, and the baseline power, from the windows' least squares;
    None where the windows cannot separate them: a path that never ran, fewer windows than
    unknowns + 2, or images that rise and fall with the window length alike (one path run
    at a steady pace all along, say)."""
    if not windows:
        return None
    x = np.array([[w.seconds, *w.images] for w in windows], dtype=np.float64)
    y = np.array([w.energy_j for w in windows], dtype=np.float64)
    n, k = x.shape
    if n < k + 2 or not (x[:, 1:].sum(axis=0) > 0).all():
        return None
    scale = np.abs(x).max(axis=0)  # columns of seconds and of image counts differ by orders
    xs = x / scale
    if np.linalg.matrix_rank(xs) < k:
        return None
    coef, _, _, _ = np.linalg.lstsq(xs, y, rcond=None)
    residual = y - xs @ coef
    dof = n - k
    sigma2 = float(residual @ residual) / dof
    cov = sigma2 * np.linalg.inv(xs.T @ xs)
    se = np.sqrt(np.maximum(np.diag(cov), 0.0)) / scale
    coef = coef / scale
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(residual @ residual) / total if total > 0 else math.nan
    return Attribution(
        energy_mj={pid: float(coef[1 + j]) * 1e3 for j, pid in enumerate(ids)},
        ci95_mj={pid: Z95 * float(se[1 + j]) * 1e3 for j, pid in enumerate(ids)},
        baseline_w=float(coef[0]),
        r2=r2,
        windows=n,
    )
