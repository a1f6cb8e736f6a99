"""Switching policies: which path to run now, given the battery and the clock.

Every policy is plain data (the manifest's `policies` tables) plus a pure `decide` function, so
the simulator and the Android bridge apply exactly the same decisions. Paths are referred to by
id (`path_0` most accurate ... `path_{S-1}` cheapest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class PolicyError(ValueError):
    """A policy table that does not fit the bundle."""


@dataclass(frozen=True)
class Context:
    """What a policy may look at."""

    battery_pct: float | None  # None where no battery can be read (a desktop)
    elapsed_h: float  # hours since the model was loaded (or the simulated day began)
    current: str | None  # the path in use now


@dataclass(frozen=True)
class Decision:
    path: str
    reason: str


class Policy(Protocol):
    @property
    def name(self) -> str: ...

    def decide(self, ctx: Context) -> Decision: ...


@dataclass(frozen=True)
class FixedPolicy:
    path: str
    name: str = "fixed"

    def decide(self, ctx: Context) -> Decision:
        return Decision(self.path, f"fixed policy: always {self.path}")


@dataclass(frozen=True)
class BatteryPolicy:
    """The most accurate path whose `min_battery_pct` the battery reaches, with hysteresis.

    `levels` are (min_battery_pct, path), most accurate first, thresholds descending, the last at
    0. Going down happens as soon as the battery falls below a level's threshold; going back up to
    a more accurate path only once the battery is `hysteresis_pct` above that path's threshold
    (charging), so a reading that wobbles around a threshold does not flap between paths.
    Without a battery reading, the most accurate path runs.
    """

    levels: tuple[tuple[float, str], ...]
    hysteresis_pct: float = 3.0
    name: str = "battery"

    def __post_init__(self) -> None:
        if not self.levels:
            raise PolicyError("battery policy needs at least one level")
        thresholds = [t for t, _ in self.levels]
        if thresholds != sorted(thresholds, reverse=True):
            raise PolicyError(f"battery thresholds must descend, got {thresholds}")
        if thresholds[-1] > 0:
            raise PolicyError(f"the last battery level must start at 0 %, got {thresholds[-1]}")
        if self.hysteresis_pct < 0:
            raise PolicyError(f"hysteresis must be >= 0, got {self.hysteresis_pct}")

    def _index(self, pct: float) -> int:
        # Below every threshold (a negative reading, or the hysteresis margin taken off a low
        # one): the cheapest path.
        return next((i for i, (t, _) in enumerate(self.levels) if pct >= t), len(self.levels) - 1)

    def decide(self, ctx: Context) -> Decision:
        if ctx.battery_pct is None:
            return Decision(self.levels[0][1], "no battery reading: most accurate path")
        pct = ctx.battery_pct
        target = self._index(pct)
        ids = [p for _, p in self.levels]
        if ctx.current in ids:
            cur = ids.index(ctx.current)
            if target < cur:  # would move up to a more accurate path: needs the margin
                target = self._index(pct - self.hysteresis_pct)
                target = min(target, cur)
            if target == cur:
                t = self.levels[cur][0]
                return Decision(ids[cur], f"battery {pct:.1f} % >= {t:g} %: stay on {ids[cur]}")
        t = self.levels[target][0]
        return Decision(ids[target], f"battery {pct:.1f} % >= {t:g} %: {ids[target]}")


@dataclass(frozen=True)
class SchedulePolicy:
    """The paper's adequate battery usage: switch every `switch_every_h` hours along `order`
    (most to least accurate), then stay on the last."""

    order: tuple[str, ...]
    switch_every_h: float = 5.0
    name: str = "schedule"

    def __post_init__(self) -> None:
        if not self.order:
            raise PolicyError("schedule policy needs at least one path")
        if self.switch_every_h <= 0:
            raise PolicyError(f"switch_every_h must be > 0, got {self.switch_every_h}")

    def decide(self, ctx: Context) -> Decision:
        k = min(int(max(ctx.elapsed_h, 0.0) // self.switch_every_h), len(self.order) - 1)
        return Decision(
            self.order[k], f"schedule: hour {ctx.elapsed_h:.2f}, slot {k} of {len(self.order)}"
        )


@dataclass(frozen=True)
class PowerModel:
    """What the energy budget needs to project drain: the battery and the workload."""

    capacity_mah: float
    voltage_v: float
    baseline_w: float  # the phone's own draw besides inference
    inferences_per_s: float

    @property
    def capacity_j(self) -> float:
        return self.capacity_mah * 3.6 * self.voltage_v

    def power_w(self, energy_mj: float) -> float:
        return self.baseline_w + self.inferences_per_s * energy_mj * 1e-3


@dataclass(frozen=True)
class EnergyBudgetPolicy:
    """The most accurate path whose projected drain still lasts until `target_h` hours after the
    start; re-planned at every decision from the battery reading now."""

    energy_mj: Mapping[str, float]  # per path, most accurate first
    power: PowerModel
    target_h: float = 24.0
    name: str = "energy-budget"
    order: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.energy_mj:
            raise PolicyError("energy-budget policy needs the energy of every path")
        if not self.order:
            object.__setattr__(self, "order", tuple(self.energy_mj))

    def hours_left(self, path: str, battery_pct: float) -> float:
        joules = self.power.capacity_j * max(battery_pct, 0.0) / 100.0
        return joules / self.power.power_w(self.energy_mj[path]) / 3600.0

    def decide(self, ctx: Context) -> Decision:
        if ctx.battery_pct is None:
            return Decision(self.order[0], "no battery reading: most accurate path")
        needed = max(self.target_h - ctx.elapsed_h, 0.0)
        for path in self.order:
            hours = self.hours_left(path, ctx.battery_pct)
            if hours >= needed:
                return Decision(
                    path, f"budget: {path} lasts {hours:.1f} h >= {needed:.1f} h still needed"
                )
        cheapest = min(self.order, key=lambda p: self.energy_mj[p])
        return Decision(cheapest, f"budget: no path lasts {needed:.1f} h; cheapest ({cheapest})")


def paths_of(manifest: Mapping[str, Any]) -> list[str]:
    return [p["id"] for p in manifest["paths"]]


def policy_from_manifest(
    manifest: Mapping[str, Any],
    name: str | None = None,
    power: PowerModel | None = None,
    target_h: float = 24.0,
    fixed: str | None = None,
) -> Policy:
    """A policy from the manifest's tables: battery, schedule, energy-budget or fixed."""
    ids = paths_of(manifest)
    tables = manifest["policies"]
    name = name or tables.get("default", "battery")

    def known(pid: str) -> str:
        if pid not in ids:
            raise PolicyError(f"policy names path {pid!r}, which the bundle lacks ({ids})")
        return pid

    if name == "battery":
        t = tables["battery"]
        levels = tuple((float(lv["min_battery_pct"]), known(lv["path"])) for lv in t["levels"])
        return BatteryPolicy(levels, float(t.get("hysteresis_pct", 3.0)))
    if name == "schedule":
        t = tables["schedule"]
        return SchedulePolicy(tuple(known(p) for p in t["order"]), float(t["switch_every_h"]))
    if name == "energy-budget":
        energies = {p["id"]: p["energy_mj"] for p in manifest["paths"]}
        if any(e is None for e in energies.values()):
            raise PolicyError(
                "the bundle has no energy per path; the energy-budget policy needs it"
            )
        return EnergyBudgetPolicy(energies, power or PIXEL3_LIKE_POWER, target_h)
    if name == "fixed":
        return FixedPolicy(known(fixed or ids[0]))
    raise PolicyError(
        f"unknown policy {name!r}; policies are: battery, schedule, energy-budget, fixed"
    )


def battery_levels_for(ids: Sequence[str]) -> list[dict[str, Any]]:
    """Evenly spaced thresholds: the most accurate path on a full battery, the cheapest at 0 %."""
    s = len(ids)
    return [
        {"min_battery_pct": round(100.0 * (s - 1 - i) / s, 2), "path": pid}
        for i, pid in enumerate(ids)
    ]


# A Pixel-3-like phone under a continuous camera workload (the paper's app). Baseline power: a
# screen-on phone running a camera preview draws on the order of 1 W; stated, not measured.
PIXEL3_LIKE_POWER = PowerModel(
    capacity_mah=2915, voltage_v=3.85, baseline_w=1.0, inferences_per_s=30.0
)
