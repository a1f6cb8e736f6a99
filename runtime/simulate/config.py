"""The simulator's settings: the device and workload, and how finely to simulate them."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..power import PowerModel, raise_first_failed
from ..profiles import DeviceProfile

ACCURACY_KEY = "test_accuracy"  # held-out test accuracy the exporter measured for each path
ENERGY_SOURCES = ("manifest", "latency", "measured")


class SimulationError(ValueError):
    """Simulation settings or energies that cannot be simulated; the message says which."""


@dataclass(frozen=True)
class SimConfig(PowerModel):
    """The device's battery and workload (`PowerModel`'s fields), and how long and how finely to
    simulate them."""

    horizon_h: float = 24.0
    step_s: float = 1.0
    start_pct: float = 100.0

    def __post_init__(self) -> None:
        raise_first_failed(
            self.checks()
            + [
                ("horizon_h", self.horizon_h, self.horizon_h > 0, "> 0"),
                ("step_s", self.step_s, self.step_s > 0, "> 0"),
                ("start_pct", self.start_pct, 0 < self.start_pct <= 100, "within (0, 100]"),
            ],
            SimulationError,
        )
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
        values: dict[str, Any] = {f.name: getattr(profile, f.name) for f in fields(PowerModel)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def horizon_s(self) -> float:
        return self.horizon_h * 3600.0

    @property
    def steps(self) -> int:
        return round(self.horizon_s / self.step_s)
