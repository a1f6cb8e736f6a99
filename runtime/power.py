"""The battery and the workload of a device: the one description that the energy-budget policy
(`policies.py`), the device profiles (`profiles.py`) and the simulator (`simulate/config.py`)
share. The profiles and the simulator's settings derive from `PowerModel`, so its fields, their
checks and the arithmetic on them are written once."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields


class PowerError(ValueError):
    """A battery or workload figure that is not a usable number; the message says which."""


# (field, value, valid, what a valid value is), as checked by `PowerModel.checks`.
Check = tuple[str, float, bool, str]


@dataclass(frozen=True)
class PowerModel:
    """A battery of `capacity_mah` x `voltage_v` that drains at `baseline_w` (the device's own
    draw besides inference) plus `inferences_per_s` x the energy per inference of the path that
    runs."""

    capacity_mah: float
    voltage_v: float
    baseline_w: float  # the device's own draw while the app runs, besides inference
    inferences_per_s: float  # the app's workload: a continuous stream of inferences

    def __post_init__(self) -> None:
        raise_first_failed(self.checks(), PowerError)

    def checks(self) -> list[Check]:
        """The battery and workload figures, each with whether it is valid."""
        return [
            ("capacity_mah", self.capacity_mah, self.capacity_mah > 0, "> 0"),
            ("voltage_v", self.voltage_v, self.voltage_v > 0, "> 0"),
            ("baseline_w", self.baseline_w, self.baseline_w >= 0, ">= 0"),
            ("inferences_per_s", self.inferences_per_s, self.inferences_per_s >= 0, ">= 0"),
        ]

    @property
    def capacity_j(self) -> float:
        return self.capacity_mah * 3.6 * self.voltage_v

    def inference_w(self, energy_mj: float) -> float:
        """Power the app's inferences draw at `energy_mj` per inference."""
        return self.inferences_per_s * energy_mj * 1e-3

    def power_w(self, energy_mj: float) -> float:
        """The whole draw while a path of `energy_mj` per inference runs."""
        return self.baseline_w + self.inference_w(energy_mj)

    def power_model(self) -> PowerModel:
        """The battery and workload alone (of a profile or simulator settings, say)."""
        return PowerModel(**{f.name: getattr(self, f.name) for f in fields(PowerModel)})


def raise_first_failed(checks: list[Check], error: type[ValueError]) -> None:
    """Raise `error` naming the first figure that is not finite or not valid."""
    for name, value, ok, want in checks:
        if not (math.isfinite(value) and ok):
            raise error(f"{name} must be a finite number {want}, got {value}")
