"""Energies measured through a real backend, and real mode: every scenario again through
`AdaptiveModel` itself, with a simulated clock and battery, checked against arithmetic mode."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..backends import Backend, make_backend
from ..battery import PushedBattery, SimulatedBattery
from ..bundle import Bundle
from ..model import AdaptiveModel, InputError, Switch
from ..policies import FixedPolicy
from .config import SimulationError
from .engine import ScenarioRun, Simulation, run_scenario
from .scenarios import scenarios_for


@dataclass(frozen=True)
class Measured:
    latency_ms: dict[str, float]
    energy_mj: dict[str, float]
    power_w: float
    backend: Backend


def sample_images(shape_chw: Sequence[int], count: int = 16, seed: int = 0) -> np.ndarray:
    """Deterministic uint8 NHWC images of the bundle's input size (the test images are not
    shipped with a bundle)."""
    c, h, w = (int(v) for v in shape_chw)
    return np.random.default_rng(seed).integers(0, 256, (count, h, w, c), dtype=np.uint8)


def measure_energies(
    bundle: Bundle,
    power_w: float,
    backend: str | Backend = "auto",
    repeats: int = 30,
    warmup: int = 5,
) -> Measured:
    """Latency of each path on this machine (median of `repeats` single-image runs through
    `AdaptiveModel.run_path`, paths interleaved) times `power_w`: ms x W = mJ."""
    if not (math.isfinite(power_w) and power_w > 0):
        raise SimulationError(f"inference power must be a finite number > 0 W, got {power_w}")
    ids = bundle.ids
    model = AdaptiveModel(
        bundle,
        policy=FixedPolicy(ids[0]),
        battery=PushedBattery(None),
        backend=backend,
        calibration=None,
    )
    x = sample_images(model.input_shape, count=1)
    for _ in range(warmup):
        for pid in ids:
            model.run_path(pid, x)
    times: dict[str, list[float]] = {pid: [] for pid in ids}
    for _ in range(repeats):
        for pid in ids:
            t0 = time.perf_counter()
            model.run_path(pid, x)
            times[pid].append(time.perf_counter() - t0)
    latency = {pid: float(np.median(ts)) * 1e3 for pid, ts in times.items()}
    return Measured(
        latency, {pid: ms * power_w for pid, ms in latency.items()}, power_w, model.backend
    )


class SimulatedClock:
    """Hours since the simulated day began; the simulator sets it."""

    def __init__(self) -> None:
        self.hours = 0.0

    def __call__(self) -> float:
        return self.hours


@dataclass
class RealRun:
    name: str
    backend: str
    step_s: float
    predictions: int
    path_index: np.ndarray  # path the model ran at each step; -1 once empty
    switches: list[Switch]  # as AdaptiveModel logged them (first: the initial choice)
    died_s: float | None
    drawn_j: float  # what the SimulatedBattery gave
    inference_j: float
    arithmetic: ScenarioRun  # the same scenario in arithmetic mode at the same step
    agreement_pct: float = field(default=0.0)
    switches_match: bool = field(default=False)

    @property
    def switch_count(self) -> int:
        return sum(1 for s in self.switches if s.from_path is not None)


def _compare(real: RealRun) -> None:
    ref = real.arithmetic
    real.agreement_pct = 100.0 * float(np.mean(real.path_index == ref.path_index))
    mine = [(s.at_h, s.from_path, s.to_path) for s in real.switches]
    theirs = [(s.at_h, s.from_path, s.to_path) for s in ref.switches]
    real.switches_match = len(mine) == len(theirs) and all(
        a[1:] == b[1:] and abs(a[0] - b[0]) < 1e-9 for a, b in zip(mine, theirs, strict=True)
    )


def simulate_real(
    bundle: Bundle,
    sim: Simulation,
    backend: str | Backend = "auto",
    images: np.ndarray | None = None,
    step_s: float = 60.0,
) -> list[RealRun]:
    """Every scenario of `sim` again, through `AdaptiveModel` on real inputs: one prediction per
    simulated `step_s` (one image, cycling through `images`), the battery drained by baseline +
    rate x energy of the path `Prediction.path` names. Each run is compared with arithmetic mode
    at the same step (`agreement_pct`, `switches_match`)."""
    config = replace(sim.config, step_s=step_s)
    engine = make_backend(bundle, backend) if isinstance(backend, str) else backend
    c, h, w = (int(v) for v in bundle.data["input"]["shape"][1:])
    x = sample_images((c, h, w)) if images is None else images
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (h, w, c):
        raise InputError(f"images must be uint8 (N, {h}, {w}, {c}), got {x.dtype} {x.shape}")
    inference_w = {pid: config.inference_w(e) for pid, e in sim.energy_mj.items()}
    power_w = {pid: config.baseline_w + iw for pid, iw in inference_w.items()}
    index = {pid: i for i, pid in enumerate(sim.energy_mj)}
    n, dt = config.steps, config.step_s
    out = []
    for scenario in scenarios_for(bundle.data, sim.energy_mj, config, sim.calibration):
        battery = SimulatedBattery(config.capacity_j, config.start_pct)
        clock = SimulatedClock()
        model = AdaptiveModel(
            bundle,
            policy=scenario.policy,
            battery=battery,
            backend=engine,
            clock=clock,
            calibration=None,
        )
        path_index = np.full(n, -1, dtype=np.int16)
        died_s, inference_j, count = None, 0.0, 0
        for k in range(n):
            clock.hours = k * dt / 3600.0
            pred = model.predict(x[k % len(x)][None])
            count += 1
            path_index[k] = index[pred.path]
            want = power_w[pred.path] * dt
            taken = battery.drain(want)
            inference_j += taken * inference_w[pred.path] / power_w[pred.path]
            if taken < want or battery.energy_j <= 0.0:
                died_s = k * dt + taken / power_w[pred.path]
                break
        real = RealRun(
            name=scenario.name,
            backend=engine.name,
            step_s=dt,
            predictions=count,
            path_index=path_index,
            switches=list(model.switches),
            died_s=died_s,
            drawn_j=battery.drawn_j,
            inference_j=inference_j,
            arithmetic=run_scenario(scenario, sim.energy_mj, config),
        )
        _compare(real)
        out.append(real)
    return out
