"""Battery-drain simulation: a simulated day of an always-on app, one line per switching scenario.

The device is a battery of `capacity_mah x voltage_v` joules that drains at a baseline power (the
device itself) plus `inferences_per_s x energy_mj` of the path that runs (the app). Energy per
inference comes from the manifest (`energy_mj`, priced on its cost device) or is measured here as
the latency of each path through the real backend times a stated processor power.

Scenarios run side by side over the horizon (24 h by default), each driven by the same policy
objects the runtime uses (`policy_from_manifest`): worst (the most accurate path only), best (the
cheapest only), the paper's adequate usage (the manifest's schedule), battery thresholds with
hysteresis, and the energy budget targeting the whole horizon.

Arithmetic mode (`simulate`) steps at `step_s` (1 s) but asks the policy only at the steps where
its answer can change: between two such steps every input its choice depends on stays the same
(the slot of the schedule, which battery thresholds the level is above, which paths the budget can
still afford), which numpy finds for a whole run of steps at once. The battery trajectory and
every decision are the same as asking at every step (`every_step=True`, which the tests compare).

Real mode (`simulate_real`) drives `AdaptiveModel` itself, with a simulated clock and a
`SimulatedBattery`, on real inputs through a real backend, drains the battery by the path each
prediction actually ran, and checks the switches the model logged against arithmetic mode.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from .backends import BACKENDS, Backend, make_backend
from .battery import PushedBattery, SimulatedBattery
from .bundle import Bundle, BundleError
from .cli_errors import one_line_errors
from .files import write_bytes_atomic
from .model import AdaptiveModel, InputError, Switch
from .policies import (
    BatteryPolicy,
    Context,
    EnergyBudgetPolicy,
    FixedPolicy,
    Policy,
    PolicyError,
    PowerModel,
    SchedulePolicy,
    paths_of,
    policy_from_manifest,
)
from .profiles import DeviceProfile, ProfileError, get_profile

ACCURACY_KEY = "test_accuracy"  # held-out test accuracy the exporter measured for each path
ENERGY_SOURCES = ("manifest", "measured")


class SimulationError(ValueError):
    """Simulation settings or energies that cannot be simulated; the message says which."""


# ------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class SimConfig:
    """The device and the workload, and how finely to simulate them."""

    capacity_mah: float
    voltage_v: float
    baseline_w: float  # the device's own draw besides inference
    inferences_per_s: float
    horizon_h: float = 24.0
    step_s: float = 1.0
    start_pct: float = 100.0

    def __post_init__(self) -> None:
        checks = (
            ("capacity_mah", self.capacity_mah, self.capacity_mah > 0, "> 0"),
            ("voltage_v", self.voltage_v, self.voltage_v > 0, "> 0"),
            ("baseline_w", self.baseline_w, self.baseline_w >= 0, ">= 0"),
            ("inferences_per_s", self.inferences_per_s, self.inferences_per_s >= 0, ">= 0"),
            ("horizon_h", self.horizon_h, self.horizon_h > 0, "> 0"),
            ("step_s", self.step_s, self.step_s > 0, "> 0"),
            ("start_pct", self.start_pct, 0 < self.start_pct <= 100, "within (0, 100]"),
        )
        for name, value, ok, want in checks:
            if not (math.isfinite(value) and ok):
                raise SimulationError(f"{name} must be a finite number {want}, got {value}")
        if self.step_s > self.horizon_s:
            raise SimulationError(
                f"step ({self.step_s:g} s) is longer than the horizon ({self.horizon_s:g} s)"
            )
        steps = self.horizon_s / self.step_s
        if abs(steps - round(steps)) > 1e-6:
            raise SimulationError(
                f"the horizon ({self.horizon_h:g} h) must be a whole number of steps of "
                f"{self.step_s:g} s"
            )
        if round(steps) > 50_000_000:
            raise SimulationError(
                f"{round(steps):,} steps is too many; use a longer step (--step-s)"
            )

    @classmethod
    def from_profile(cls, profile: DeviceProfile, **overrides: Any) -> SimConfig:
        """The profile's battery and workload; keyword arguments that are not None win."""
        values: dict[str, Any] = {
            "capacity_mah": profile.capacity_mah,
            "voltage_v": profile.voltage_v,
            "baseline_w": profile.baseline_w,
            "inferences_per_s": profile.inferences_per_s,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def capacity_j(self) -> float:
        return self.power_model().capacity_j

    @property
    def horizon_s(self) -> float:
        return self.horizon_h * 3600.0

    @property
    def steps(self) -> int:
        return round(self.horizon_s / self.step_s)

    def power_model(self) -> PowerModel:
        """The same figures as the runtime's energy-budget policy projects with."""
        return PowerModel(self.capacity_mah, self.voltage_v, self.baseline_w, self.inferences_per_s)

    def inference_w(self, energy_mj: float) -> float:
        return self.inferences_per_s * energy_mj * 1e-3


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    policy: Policy


def manifest_energies(manifest: Mapping[str, Any]) -> dict[str, float]:
    """`energy_mj` of every path, most accurate first; SimulationError where one is missing."""
    energies = {p["id"]: p.get("energy_mj") for p in manifest["paths"]}
    missing = [pid for pid, e in energies.items() if e is None]
    if missing:
        raise SimulationError(
            f"the bundle has no energy_mj for {', '.join(missing)}; use --energy measured"
        )
    return {pid: float(e) for pid, e in energies.items() if e is not None}


def _check_energies(ids: Sequence[str], energy_mj: Mapping[str, float]) -> dict[str, float]:
    if list(energy_mj) != list(ids):
        raise SimulationError(f"energies are for {list(energy_mj)}, the bundle has {list(ids)}")
    for pid, e in energy_mj.items():
        if not (math.isfinite(e) and e >= 0):
            raise SimulationError(f"energy of {pid} must be a finite number >= 0 mJ, got {e}")
    return dict(energy_mj)


def with_energies(manifest: Mapping[str, Any], energy_mj: Mapping[str, float]) -> dict[str, Any]:
    """A copy of the manifest whose paths carry `energy_mj`, so that the policies built from it
    (the energy budget) plan with the energies the simulation drains by."""
    copied = dict(manifest)
    copied["paths"] = [dict(p, energy_mj=energy_mj[p["id"]]) for p in manifest["paths"]]
    copied["policies"] = copy.deepcopy(manifest["policies"])
    return copied


def scenarios_for(
    manifest: Mapping[str, Any], energy_mj: Mapping[str, float], config: SimConfig
) -> list[Scenario]:
    """worst, best, schedule (the paper's adequate usage), battery, energy-budget; those whose
    table the manifest lacks are left out."""
    m = with_energies(manifest, energy_mj)
    ids = paths_of(m)
    # Ties on energy go to the more accurate path.
    cheapest = min(ids, key=lambda pid: (energy_mj[pid], ids.index(pid)))
    out = [
        Scenario(
            "worst",
            f"{ids[0]} only (most accurate)",
            policy_from_manifest(m, "fixed", fixed=ids[0]),
        ),
        Scenario(
            "best",
            f"{cheapest} only (cheapest)",
            policy_from_manifest(m, "fixed", fixed=cheapest),
        ),
    ]
    tables = m["policies"]
    if "schedule" in tables:
        p = policy_from_manifest(m, "schedule")
        assert isinstance(p, SchedulePolicy)
        out.append(
            Scenario(
                "schedule",
                f"next path every {p.switch_every_h:g} h ({p.order[0]} to {p.order[-1]})",
                p,
            )
        )
    if "battery" in tables:
        b = policy_from_manifest(m, "battery")
        assert isinstance(b, BatteryPolicy)
        levels = "/".join(f"{t:g}" for t, _ in b.levels)
        out.append(
            Scenario("battery", f"thresholds {levels} %, {b.hysteresis_pct:g} % hysteresis", b)
        )
    out.append(
        Scenario(
            "energy-budget",
            f"most accurate path lasting {config.horizon_h:g} h",
            policy_from_manifest(
                m, "energy-budget", power=config.power_model(), target_h=config.horizon_h
            ),
        )
    )
    return out


# ------------------------------------------------------------------------------ arithmetic mode
@dataclass(frozen=True)
class SimSwitch:
    at_h: float
    from_path: str | None
    to_path: str
    reason: str
    battery_pct: float


@dataclass(frozen=True)
class Segment:
    """A stretch of time on one path, at constant power."""

    path: str
    start_s: float
    end_s: float
    start_j: float  # battery energy when it began
    power_w: float
    inference_w: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass
class ScenarioRun:
    """One scenario simulated over the horizon."""

    name: str
    description: str
    policy: str
    config: SimConfig
    ids: tuple[str, ...]
    energy_j: np.ndarray  # battery energy at every step boundary (steps + 1 values)
    path_index: np.ndarray  # index into `ids` of the path run during each step; -1 once empty
    switches: list[SimSwitch]  # the first entry is the initial choice (from_path None)
    segments: list[Segment]
    died_s: float | None  # when the battery reached 0 %, None if it lasted the horizon
    policy_calls: int

    @property
    def battery_pct(self) -> np.ndarray:
        return 100.0 * self.energy_j / self.config.capacity_j

    @property
    def lasted(self) -> bool:
        return self.died_s is None

    @property
    def on_s(self) -> float:
        """Seconds the device was on within the horizon."""
        return self.config.horizon_s if self.died_s is None else self.died_s

    @property
    def switch_count(self) -> int:
        return sum(1 for s in self.switches if s.from_path is not None)

    @property
    def drawn_j(self) -> float:
        """What the battery lost over the run (from the battery's own trajectory)."""
        return float(self.energy_j[0] - self.energy_j[-1])

    @property
    def baseline_j(self) -> float:
        return sum(self.config.baseline_w * s.duration_s for s in self.segments)

    @property
    def inference_j(self) -> float:
        return sum(s.inference_w * s.duration_s for s in self.segments)

    def energy_at(self, t_s: float) -> float:
        """Battery energy (J) at time `t_s` seconds, within the horizon."""
        for s in self.segments:
            if s.start_s <= t_s <= s.end_s:
                return max(s.start_j - s.power_w * (t_s - s.start_s), 0.0)
        return float(self.energy_j[-1]) if self.segments else float(self.energy_j[0])

    def hours_on_path(self) -> dict[str, float]:
        hours = dict.fromkeys(self.ids, 0.0)
        for s in self.segments:
            hours[s.path] += s.duration_s / 3600.0
        return hours

    def mean_accuracy(self, accuracy: Mapping[str, float]) -> float:
        """Time-weighted over the time the device was on."""
        on = sum(s.duration_s for s in self.segments)
        if on <= 0:
            return float("nan")
        return sum(accuracy[s.path] * s.duration_s for s in self.segments) / on


def _signature(policy: Policy, pct: np.ndarray, elapsed_h: np.ndarray) -> np.ndarray | None:
    """Per step (rows), every input the policy's choice of path depends on besides the path in use,
    computed with the very operations its `decide` applies, so that equal rows mean equal
    decisions. None for a policy type this does not know: it is then asked at every step."""
    kind = type(policy)
    if kind is FixedPolicy:
        return np.zeros((len(pct), 0), dtype=bool)
    if kind is SchedulePolicy:
        assert isinstance(policy, SchedulePolicy)
        slot = np.maximum(elapsed_h, 0.0) // policy.switch_every_h
        return np.minimum(slot, len(policy.order) - 1)[:, None]
    if kind is BatteryPolicy:
        assert isinstance(policy, BatteryPolicy)
        t = np.array([level for level, _ in policy.levels])
        # decide() looks up the level of the reading and, to move up, of reading - hysteresis.
        above = pct[:, None] >= t
        above_margin = (pct - policy.hysteresis_pct)[:, None] >= t
        return np.concatenate([above, above_margin], axis=1)
    if kind is EnergyBudgetPolicy:
        assert isinstance(policy, EnergyBudgetPolicy)
        power = policy.power
        joules = power.capacity_j * np.maximum(pct, 0.0) / 100.0
        needed = np.maximum(policy.target_h - elapsed_h, 0.0)
        cols = [
            joules / power.power_w(policy.energy_mj[pid]) / 3600.0 >= needed for pid in policy.order
        ]
        return np.stack(cols, axis=1)
    return None


def _first(mask: np.ndarray) -> int | None:
    i = int(np.argmax(mask)) if len(mask) else 0
    return i if len(mask) and mask[i] else None


def run_scenario(
    scenario: Scenario,
    energy_mj: Mapping[str, float],
    config: SimConfig,
    every_step: bool = False,
) -> ScenarioRun:
    """Simulate one scenario over `config.horizon_h` at `config.step_s`.

    At step k (time k * step_s) the policy sees the battery level and the elapsed time and picks a
    path; the battery then drains at baseline + inferences_per_s x energy of that path until
    step k + 1. The battery at step k is computed from the last switch (energy then, minus steps
    since x power x step) so the trajectory does not depend on when the policy is asked. The
    battery stops at 0 %: the device is off from the exact time it emptied.
    """
    policy = scenario.policy
    ids = tuple(energy_mj)
    index = {pid: i for i, pid in enumerate(ids)}
    inference_w = {pid: config.inference_w(e) for pid, e in energy_mj.items()}
    power_w = {pid: config.baseline_w + inference_w[pid] for pid in ids}
    n, dt, cap = config.steps, config.step_s, config.capacity_j

    energy = np.zeros(n + 1)
    energy[0] = cap * config.start_pct / 100.0
    path_index = np.full(n, -1, dtype=np.int16)
    switches: list[SimSwitch] = []
    segments: list[Segment] = []
    died_s: float | None = None
    calls = 0
    probe = not every_step and _signature(policy, np.zeros(1), np.zeros(1)) is not None

    current: str | None = None
    k_sw, e_sw, p_w, idx = 0, float(energy[0]), 0.0, -1
    seg_start = (0.0, float(energy[0]))
    step = 0
    while step < n:
        e_now = float(energy[step])
        pct_now, h_now = 100.0 * e_now / cap, step * dt / 3600.0
        decision = policy.decide(Context(pct_now, h_now, current))
        calls += 1
        if decision.path not in index:
            raise SimulationError(f"policy {policy.name} chose {decision.path!r}, not in {ids}")
        if decision.path != current:
            if current is not None:
                segments.append(
                    Segment(
                        current, seg_start[0], step * dt, seg_start[1], p_w, inference_w[current]
                    )
                )
            switches.append(SimSwitch(h_now, current, decision.path, decision.reason, pct_now))
            current = decision.path
            k_sw, e_sw, p_w, idx = step, e_now, power_w[current], index[current]
            seg_start = (step * dt, e_now)
        ref = _signature(policy, np.array([pct_now]), np.array([h_now])) if probe else None
        # Run on `current` until its decision can change, the battery empties or time is up.
        window = 1 if ref is None else 512
        while True:
            stop = min(step + window, n)
            ks = np.arange(step + 1, stop + 1)
            e = e_sw - (ks - k_sw) * p_w * dt
            dead = _first(e <= 0.0)
            if ref is None:
                change: int | None = 0 if ks[0] < n else None
            else:
                sig = _signature(policy, 100.0 * e / cap, ks * dt / 3600.0)
                assert sig is not None
                changed = (sig != ref).any(axis=1) & (ks < n)
                change = _first(changed)
            if dead is not None and (change is None or dead <= change):
                k_dead = int(ks[dead])
                energy[step + 1 : k_dead] = e[:dead]
                path_index[step:k_dead] = idx
                e_before = float(energy[k_dead - 1])
                died_s = (k_dead - 1) * dt + (e_before / p_w if p_w > 0 else 0.0)
                step = n + 1
                break
            if change is not None:
                k_next = int(ks[change])
                energy[step + 1 : k_next + 1] = e[: change + 1]
                path_index[step:k_next] = idx
                step = k_next
                break
            energy[step + 1 : stop + 1] = e
            path_index[step:stop] = idx
            step = stop
            if step >= n:
                break
            window *= 2
    end_s = config.horizon_s if died_s is None else died_s
    if current is not None:
        segments.append(
            Segment(current, seg_start[0], end_s, seg_start[1], p_w, inference_w[current])
        )
    return ScenarioRun(
        name=scenario.name,
        description=scenario.description,
        policy=policy.name,
        config=config,
        ids=ids,
        energy_j=energy,
        path_index=path_index,
        switches=switches,
        segments=segments,
        died_s=died_s,
        policy_calls=calls,
    )


@dataclass
class Simulation:
    config: SimConfig
    energy_mj: dict[str, float]
    energy_source: str  # "manifest (<device>)" or "measured (...)"
    accuracy: dict[str, float]
    runs: list[ScenarioRun]
    seconds: float  # wall time of the arithmetic simulation, all scenarios
    latency_ms: dict[str, float] | None = None
    inference_power_w: float | None = None
    backend: str | None = None

    def run(self, name: str) -> ScenarioRun:
        return next(r for r in self.runs if r.name == name)


def simulate(
    manifest: Mapping[str, Any],
    config: SimConfig,
    energy_mj: Mapping[str, float] | None = None,
    energy_source: str | None = None,
    every_step: bool = False,
) -> Simulation:
    """Every scenario over the horizon (arithmetic mode). `energy_mj` per path defaults to the
    manifest's."""
    ids = paths_of(manifest)
    if energy_mj is None:
        energies = manifest_energies(manifest)
        device = (manifest.get("costs", {}).get("energy") or {}).get("device", "unknown device")
        energy_source = energy_source or f"manifest ({device})"
    else:
        energies = dict(energy_mj)
    energies = _check_energies(ids, energies)
    accuracy = {p["id"]: float(p.get(ACCURACY_KEY, p["accuracy"])) for p in manifest["paths"]}
    t0 = time.perf_counter()
    runs = [
        run_scenario(s, energies, config, every_step)
        for s in scenarios_for(manifest, energies, config)
    ]
    seconds = time.perf_counter() - t0
    return Simulation(config, energies, energy_source or "given", accuracy, runs, seconds)


# ------------------------------------------------------------------------------------ measured
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
        bundle, policy=FixedPolicy(ids[0]), battery=PushedBattery(None), backend=backend
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


# ---------------------------------------------------------------------------------- real mode
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
    for scenario in scenarios_for(bundle.data, sim.energy_mj, config):
        battery = SimulatedBattery(config.capacity_j, config.start_pct)
        clock = SimulatedClock()
        model = AdaptiveModel(
            bundle, policy=scenario.policy, battery=battery, backend=engine, clock=clock
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


# -------------------------------------------------------------------------------------- report
DEFINITIONS = {
    "empty_at_h": "hours until the battery reached 0 % (device off); null if it lasted",
    "battery_left_pct": "battery left at the end of the horizon (0 if it emptied)",
    "battery_saved_vs_worst_pct": (
        "(battery used by worst - battery used by this scenario) / battery used by worst x 100, "
        "both measured over the same window: from the start until the horizon or until the "
        "battery of either of the two emptied, whichever came first (saved_window_h)"
    ),
    "avg_test_accuracy_pct": (
        f"the manifest's `{ACCURACY_KEY}` of the path in use, time-weighted over the time the "
        "device was on"
    ),
    "switches": "path changes after the initial choice",
    "inference_share_pct": "inference energy / all energy drawn (baseline + inference) x 100",
}


def summarise(sim: Simulation, real: Sequence[RealRun] | None = None) -> dict[str, Any]:
    """Everything `summary.json` holds."""
    cfg = sim.config
    worst = sim.run("worst")
    scenarios = []
    for r in sim.runs:
        window_s = min(worst.on_s, r.on_s)
        worst_used = worst.energy_j[0] - worst.energy_at(window_s)
        used = r.energy_j[0] - r.energy_at(window_s)
        drawn = r.drawn_j
        scenarios.append(
            {
                "name": r.name,
                "description": r.description,
                "policy": r.policy,
                "lasted_horizon": r.lasted,
                "empty_at_h": None if r.died_s is None else r.died_s / 3600.0,
                "battery_left_pct": float(r.battery_pct[-1]),
                "battery_used_pct": 100.0 * drawn / cfg.capacity_j,
                "battery_saved_vs_worst_pct": (
                    100.0 * (worst_used - used) / worst_used if worst_used > 0 else None
                ),
                "saved_window_h": window_s / 3600.0,
                "avg_test_accuracy_pct": r.mean_accuracy(sim.accuracy),
                "switches": r.switch_count,
                "switch_log": [
                    {
                        "at_h": s.at_h,
                        "from": s.from_path,
                        "to": s.to_path,
                        "battery_pct": s.battery_pct,
                        "reason": s.reason,
                    }
                    for s in r.switches
                ],
                "hours_on_path": r.hours_on_path(),
                "energy_drawn_j": drawn,
                "baseline_j": r.baseline_j,
                "inference_j": r.inference_j,
                "inference_share_pct": 100.0 * r.inference_j / drawn if drawn > 0 else 0.0,
                "policy_calls": r.policy_calls,
            }
        )
    summary: dict[str, Any] = {
        "config": {
            "capacity_mah": cfg.capacity_mah,
            "voltage_v": cfg.voltage_v,
            "capacity_j": cfg.capacity_j,
            "baseline_w": cfg.baseline_w,
            "inferences_per_s": cfg.inferences_per_s,
            "horizon_h": cfg.horizon_h,
            "step_s": cfg.step_s,
            "start_pct": cfg.start_pct,
        },
        "energy_source": sim.energy_source,
        "accuracy_source": ACCURACY_KEY,
        "paths": [
            {
                "id": pid,
                ACCURACY_KEY: sim.accuracy[pid],
                "energy_mj": e,
                "latency_ms": None if sim.latency_ms is None else sim.latency_ms[pid],
                "inference_w": cfg.inference_w(e),
                "power_w": cfg.baseline_w + cfg.inference_w(e),
            }
            for pid, e in sim.energy_mj.items()
        ],
        "definitions": DEFINITIONS,
        "scenarios": scenarios,
        "steps_per_scenario": cfg.steps,
        "simulation_seconds": sim.seconds,
        "real": None,
    }
    if sim.inference_power_w is not None:
        summary["inference_power_w"] = sim.inference_power_w
        summary["measured_backend"] = sim.backend
    if real:
        summary["real"] = {
            "backend": real[0].backend,
            "step_s": real[0].step_s,
            "all_agree": all(r.switches_match and r.agreement_pct == 100.0 for r in real),
            "scenarios": [
                {
                    "name": r.name,
                    "predictions": r.predictions,
                    "switches": r.switch_count,
                    "arithmetic_switches": r.arithmetic.switch_count,
                    "switches_match": r.switches_match,
                    "step_agreement_pct": r.agreement_pct,
                    "empty_at_h": None if r.died_s is None else r.died_s / 3600.0,
                    "arithmetic_empty_at_h": (
                        None if r.arithmetic.died_s is None else r.arithmetic.died_s / 3600.0
                    ),
                    "energy_drawn_j": r.drawn_j,
                    "inference_j": r.inference_j,
                }
                for r in real
            ],
        }
    return summary


def timeline_csv(sim: Simulation, every_s: float = 60.0) -> str:
    """time_h, then per scenario battery_pct and path id (empty once the battery is empty)."""
    cfg = sim.config
    if not (math.isfinite(every_s) and every_s > 0):
        raise SimulationError(f"timeline step must be a number > 0 s, got {every_s}")
    count = int(math.floor(cfg.horizon_s / every_s + 1e-9)) + 1
    times = np.arange(count) * every_s
    k = np.minimum(np.rint(times / cfg.step_s).astype(np.int64), cfg.steps)
    k_path = np.minimum(k, cfg.steps - 1)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["time_h"]
    for r in sim.runs:
        header += [f"{r.name}_battery_pct", f"{r.name}_path"]
    writer.writerow(header)
    columns = []
    for r in sim.runs:
        pct = r.battery_pct[k]
        idx = r.path_index[k_path]
        # At the very end (k == steps) there is no next step: show the last path while on.
        names = [r.ids[i] if i >= 0 and p > 0 else "" for i, p in zip(idx, pct, strict=True)]
        columns.append((pct, names))
    for row, t in enumerate(times):
        line = [f"{t / 3600.0:.6f}"]
        for pct, names in columns:
            line += [f"{pct[row]:.4f}", names[row]]
        writer.writerow(line)
    return buf.getvalue()


def plot_png(sim: Simulation) -> bytes:
    """Battery % over hours, one line per scenario (the paper's figure 8). Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = sim.config
    stride = max(1, cfg.steps // 4000)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    hours = np.arange(cfg.steps + 1) * cfg.step_s / 3600.0
    styles = (
        "-",
        "--",
        "-.",
        ":",
        (0, (5, 1, 1, 1)),
    )  # scenarios often coincide: keep each visible
    for i, r in enumerate(sim.runs):
        label = r.name if r.died_s is None else f"{r.name} (empty at {r.died_s / 3600:.1f} h)"
        ax.plot(
            hours[::stride],
            r.battery_pct[::stride],
            label=label,
            linestyle=styles[i % len(styles)],
            linewidth=2.2 - 0.3 * (i % len(styles)),
        )
    ax.set_xlim(0, cfg.horizon_h)
    ax.set_ylim(0, 100)
    ax.set_xlabel("hours")
    ax.set_ylabel("battery (%)")
    ax.set_title(
        f"{cfg.capacity_mah:,.0f} mAh, baseline {cfg.baseline_w:g} W, "
        f"{cfg.inferences_per_s:g} inferences/s; energy: {sim.energy_source}",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_outputs(
    sim: Simulation,
    out: Path,
    timeline_every_s: float = 60.0,
    real: Sequence[RealRun] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """battery.png (unless matplotlib is missing), timeline.csv and summary.json, each written
    to a temporary file and renamed into place. Returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(sim, real)
    summary.update(extra or {})
    files: dict[str, str | None] = {}
    write_bytes_atomic(out / "timeline.csv", timeline_csv(sim, timeline_every_s).encode())
    files["timeline"] = str(out / "timeline.csv")
    try:
        png = plot_png(sim)
    except ImportError:
        files["plot"] = None
        summary["plot_note"] = (
            "matplotlib is not installed: no battery.png (pip install matplotlib)"
        )
    else:
        write_bytes_atomic(out / "battery.png", png)
        files["plot"] = str(out / "battery.png")
    files["summary"] = str(out / "summary.json")
    summary["files"] = files
    summary["timeline_step_s"] = timeline_every_s
    write_bytes_atomic(out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def _num(v: float | None, fmt: str, none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def _share(pct: float) -> str:
    return f"{pct:.3g}" if pct < 1 else f"{pct:.2f}"


def print_summary(console: Console, summary: Mapping[str, Any]) -> None:
    cfg = summary["config"]
    horizon = cfg["horizon_h"]
    table = Table(
        title=(
            f"{horizon:g} h at {cfg['step_s']:g} s: {cfg['capacity_mah']:,.0f} mAh x "
            f"{cfg['voltage_v']:g} V = {cfg['capacity_j']:,.0f} J, baseline {cfg['baseline_w']:g}"
            f" W, {cfg['inferences_per_s']:g} inferences/s"
        ),
        caption=(
            f"energy per inference: {summary['energy_source']}; accuracy: "
            f"{summary['accuracy_source']} (time-weighted); saved vs worst: battery used until "
            f"{horizon:g} h or until either emptied"
        ),
    )
    table.add_column("scenario", no_wrap=True)
    table.add_column("policy", no_wrap=True)
    for col in (
        "empty at (h)",
        f"left at {horizon:g} h (%)",
        "saved vs worst (%)",
        "avg test acc (%)",
        "switches",
        "inference share (%)",
    ):
        table.add_column(col, justify="right")
    for s in summary["scenarios"]:
        table.add_row(
            s["name"],
            s["description"],
            _num(s["empty_at_h"], ".2f", "lasted"),
            f"{s['battery_left_pct']:.2f}",
            _num(s["battery_saved_vs_worst_pct"], "+.3f"),
            f"{s['avg_test_accuracy_pct']:.2f}",
            str(s["switches"]),
            _share(s["inference_share_pct"]),
        )
    console.print(table)
    paths = ", ".join(
        f"{p['id']} {p['energy_mj']:.4g} mJ ({p['inference_w'] * 1e3:.3g} mW)"
        for p in summary["paths"]
    )
    console.print(f"paths (energy per inference, inference power at this rate): {paths}")
    console.print(
        f"simulated {len(summary['scenarios'])} scenarios x {summary['steps_per_scenario']:,} "
        f"steps in {summary['simulation_seconds'] * 1e3:.1f} ms"
    )
    real = summary.get("real")
    if real:
        t = Table(
            title=f"real mode: AdaptiveModel on {real['backend']}, one image per "
            f"{real['step_s']:g} s"
        )
        for col in (
            "scenario",
            "predictions",
            "switches (model)",
            "switches (arithmetic)",
            "switches match",
            "same path (% of steps)",
            "empty at (h)",
        ):
            t.add_column(col)
        for r in real["scenarios"]:
            t.add_row(
                r["name"],
                str(r["predictions"]),
                str(r["switches"]),
                str(r["arithmetic_switches"]),
                "yes" if r["switches_match"] else "[red]NO[/red]",
                f"{r['step_agreement_pct']:.2f}",
                _num(r["empty_at_h"], ".2f", "lasted"),
            )
        console.print(t)
    for line in (summary.get("plot_note"),):
        if line:
            console.print(f"[yellow]note:[/yellow] {line}")
    files = summary.get("files", {})
    console.print("wrote " + ", ".join(v for v in files.values() if v))


# ----------------------------------------------------------------------------------------- CLI
def load_images(folder: Path, shape_chw: Sequence[int]) -> np.ndarray:
    """uint8 NHWC images from a folder (prp-run's reader: .npy arrays, or image files)."""
    from .cli import load_images as read_images

    if not folder.is_dir():
        raise InputError(f"--images {folder} is not a folder")
    _, h, w = (int(v) for v in shape_chw)
    return read_images(folder, (h, w))[1]


simulate_app = typer.Typer(
    add_completion=False, help="Simulate a day of battery drain, scenario by scenario."
)


@simulate_app.command()
def main(
    bundle: Path = typer.Argument(..., help="Bundle folder (e.g. exported/default)."),
    hours: float = typer.Option(24.0, help="Horizon in hours."),
    profile: str = typer.Option("pixel3", help="Device profile (battery, baseline, workload)."),
    rate: float | None = typer.Option(
        None, help="Inferences per second (profile: 30, camera frames)."
    ),
    baseline_w: float | None = typer.Option(
        None, help="Device power besides inference, W (profile: 1.0)."
    ),
    capacity_mah: float | None = typer.Option(None, help="Battery capacity (from the profile)."),
    voltage_v: float | None = typer.Option(None, help="Battery voltage (from the profile)."),
    energy: str = typer.Option(
        "manifest", help="Energy per inference: manifest (energy_mj) or measured here."
    ),
    power_w: float | None = typer.Option(
        None, help="Processor power while inferring, for --energy measured (profile: 1.5)."
    ),
    step_s: float = typer.Option(1.0, help="Simulation step, seconds."),
    timeline_step_s: float = typer.Option(60.0, help="Row spacing of timeline.csv, seconds."),
    start_pct: float = typer.Option(100.0, help="Battery level at the start, %."),
    real: bool = typer.Option(False, "--real", help="Also drive AdaptiveModel on real inputs."),
    real_step_s: float = typer.Option(60.0, help="Real mode: one prediction per this many s."),
    backend: str = typer.Option(
        "auto", help=f"Backend for --real/measured: {', '.join(BACKENDS)}."
    ),
    images: Path | None = typer.Option(None, help="Real mode: folder of images (.npy or files)."),
    out: Path | None = typer.Option(
        None, help="Output folder (default: runs/simulation-<bundle name>)."
    ),
) -> None:
    """Battery over the horizon for worst, best, schedule, battery and energy-budget scenarios:
    battery.png, timeline.csv, summary.json and a table."""
    console = Console(width=None if sys.stdout.isatty() else 160)
    with (
        one_line_errors(console, OSError, prefix="cannot write the outputs: "),
        one_line_errors(
            console, BundleError, ProfileError, SimulationError, PolicyError, InputError
        ),
    ):
        if energy not in ENERGY_SOURCES:
            raise SimulationError(f"--energy must be manifest or measured, got {energy!r}")
        if backend not in BACKENDS:
            raise SimulationError(f"unknown backend {backend!r}; backends: {', '.join(BACKENDS)}")
        dev = get_profile(profile)
        config = SimConfig.from_profile(
            dev,
            capacity_mah=capacity_mah,
            voltage_v=voltage_v,
            baseline_w=baseline_w,
            inferences_per_s=rate,
            horizon_h=hours,
            step_s=step_s,
            start_pct=start_pct,
        )
        if real:
            try:  # check the real-mode step before any work
                replace(config, step_s=real_step_s)
            except SimulationError as e:
                raise SimulationError(f"--real-step-s: {e}") from None
        if not (math.isfinite(timeline_step_s) and timeline_step_s > 0):
            raise SimulationError(f"--timeline-step-s must be > 0, got {timeline_step_s}")
        b = Bundle.load(bundle)
        engine: Backend | str = backend
        if energy == "measured":
            watts = dev.inference_power_w if power_w is None else power_w
            console.print(f"measuring latency of {len(b.ids)} paths ({backend} backend)...")
            measured = measure_energies(b, watts, backend)
            engine = measured.backend
            sim = simulate(
                b.data,
                config,
                measured.energy_mj,
                f"measured here ({measured.backend.name}: median latency x {watts:g} W)",
            )
            sim.latency_ms, sim.inference_power_w = measured.latency_ms, watts
            sim.backend = measured.backend.name
        else:
            sim = simulate(b.data, config)
        real_runs = None
        if real:
            x = None if images is None else load_images(images, b.data["input"]["shape"][1:])
            console.print("real mode: driving AdaptiveModel through every scenario...")
            real_runs = simulate_real(b, sim, engine, x, real_step_s)
        target = out or Path("runs") / f"simulation-{Path(bundle).resolve().name}"
        summary = write_outputs(
            sim,
            target,
            timeline_step_s,
            real_runs,
            extra={"bundle": str(b.directory), "profile": dev.name, "profile_sources": dev.sources},
        )
        print_summary(console, summary)
