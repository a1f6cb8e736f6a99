"""Arithmetic mode: each scenario's battery trajectory and decisions over the horizon, asking the
policy only at the steps where its answer can change (see the package docstring)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..calibration import Calibration
from ..measured_costs import MeasuredPolicy
from ..policies import (
    BatteryPolicy,
    Context,
    EnergyBudgetPolicy,
    FixedPolicy,
    Policy,
    SchedulePolicy,
    paths_of,
)
from .config import ACCURACY_KEY, SimConfig, SimulationError
from .scenarios import Scenario, check_energies, manifest_energies, scenarios_for


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
    if kind is MeasuredPolicy:
        assert isinstance(policy, MeasuredPolicy)
        # Its reason depends on the manifest's policy too: a change of either is a change.
        parts = [_signature(p, pct, elapsed_h) for p in (policy.inner, policy.manifest_policy)]
        if parts[0] is None or parts[1] is None:
            return None
        return np.concatenate([parts[0].astype(float), parts[1].astype(float)], axis=1)
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

    Over 80 lines because the stepping loop keeps its state (the last switch, the current
    segment, the look-ahead window) in locals; split up, that state would travel between
    functions at every decision.
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
    calibration: Calibration | None = None  # the measured costs it ran on, if any

    def run(self, name: str) -> ScenarioRun:
        return next(r for r in self.runs if r.name == name)


def simulate(
    manifest: Mapping[str, Any],
    config: SimConfig,
    energy_mj: Mapping[str, float] | None = None,
    energy_source: str | None = None,
    every_step: bool = False,
    calibration: Calibration | None = None,
) -> Simulation:
    """Every scenario over the horizon (arithmetic mode). `energy_mj` per path defaults to the
    manifest's, or, with a `calibration`, to its measured energies, with the ladders derived on
    its measured costs (`scenarios_for`)."""
    ids = paths_of(manifest)
    if calibration is not None and energy_mj is None:
        energy_mj = calibration.energy_mj()
        energy_source = energy_source or (
            f"calibration ({calibration.backend} on {calibration.device.get('host', '?')}): "
            f"{calibration.energy_note}"
        )
    if energy_mj is None:
        energies = manifest_energies(manifest)
        priced = manifest.get("costs", {}).get("energy") or {}
        device = priced.get("device", "unknown device")
        # A proxy bundle priced as the network its search targets says so (manifest `note`).
        note = priced.get("note")
        proxy = f"; priced as {priced.get('network')}: {note}" if note else ""
        energy_source = energy_source or f"manifest ({device}{proxy})"
    else:
        energies = dict(energy_mj)
    energies = check_energies(ids, energies)
    accuracy = {p["id"]: float(p.get(ACCURACY_KEY, p["accuracy"])) for p in manifest["paths"]}
    t0 = time.perf_counter()
    runs = [
        run_scenario(s, energies, config, every_step)
        for s in scenarios_for(manifest, energies, config, calibration)
    ]
    seconds = time.perf_counter() - t0
    sim = Simulation(config, energies, energy_source or "given", accuracy, runs, seconds)
    if calibration is not None:
        sim.calibration = calibration
        sim.latency_ms = calibration.latency_ms()
    return sim
