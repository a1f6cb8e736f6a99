"""Switching policies: which path to run now, given the battery and the clock.

Every policy is plain data (the manifest's `policies` tables) plus a pure `decide` function, so
the simulator and the Android bridge apply exactly the same decisions. Paths are referred to by
id (`path_0` most accurate ... `path_{S-1}` least accurate).

The battery and schedule tables walk down one **ladder** (`ladder`): the non-dominated paths on
(accuracy, the objective's cost), most accurate first, each level strictly cheaper than the one
above. Dominated paths stay in the bundle (a fixed policy can still name them) but are never on a
ladder, so draining the battery never trades accuracy for a higher cost. Where the bundle records
paired tests on held-out images (`ladder_tests`), a path is on the ladder only if its test found
it more accurate than every cheaper path on it: an accuracy gap within the noise of the images
that measured it is no reason to pay more. The bundle loader refuses manifests (schema 2 on)
whose tables break that rule (`ladder_errors`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .power import PowerModel
from .profiles import PIXEL3


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
    """Evenly spaced thresholds over ladder `ids`: the first on a full battery, the last at 0 %."""
    s = len(ids)
    return [
        {"min_battery_pct": round(100.0 * (s - 1 - i) / s, 2), "path": pid}
        for i, pid in enumerate(ids)
    ]


# The manifest field each objective's cost is read from, and its unit.
COST_FIELDS: dict[str, tuple[str, str]] = {
    "energy": ("energy_mj", "mJ"),
    "latency": ("latency_ms", "ms"),
}
# Manifests from this schema on must hold ladder-shaped tables; older bundles (exported before
# the rule) load as they are, with their tables unchecked.
LADDER_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Rung:
    """One path as the ladder sees it."""

    id: str
    accuracy: float
    cost: float


def dominates(a: Rung, b: Rung) -> bool:
    """`a` is at least as accurate and at least as cheap as `b`, and strictly better in one."""
    return (
        a.accuracy >= b.accuracy
        and a.cost <= b.cost
        and (a.accuracy > b.accuracy or a.cost < b.cost)
    )


def ladder(rungs: Sequence[Rung], beats: TestedPairs | None = None) -> list[str]:
    """The ladder's path ids: the non-dominated paths, most accurate first, each strictly
    cheaper than the one before. Of paths with equal accuracy only the cheapest can be on it; of
    exact duplicates (same accuracy and cost) only the first given.

    With `beats` (the bundle's recorded paired tests, `passed_pairs`), a path also needs to be
    measurably more accurate than every cheaper path on the ladder: walking up from the
    cheapest, a path is kept only if (it, cheaper) is in `beats` for every path kept so far."""
    order = sorted(range(len(rungs)), key=lambda k: (-rungs[k].accuracy, rungs[k].cost, k))
    out: list[str] = []
    cheapest = math.inf
    for k in order:
        # Everything before k is at least as accurate; k is on the ladder only if it is cheaper
        # than all of them (otherwise one of them dominates or duplicates it).
        if rungs[k].cost < cheapest:
            out.append(rungs[k].id)
            cheapest = rungs[k].cost
    if beats is None:
        return out
    kept: list[str] = []
    for pid in reversed(out):  # cheapest first
        if all((pid, below) in beats for below in kept):
            kept.append(pid)
    return kept[::-1]


# (path id, cheaper path id) pairs whose paired test found the first more accurate.
TestedPairs = frozenset[tuple[str, str]]


def passed_pairs(manifest: Mapping[str, Any]) -> TestedPairs | None:
    """The pairs of `manifest["ladder_tests"]` whose test passed, or None where the bundle
    records no tests (bundles exported before the rule: the ladder is then the non-dominated
    paths alone). A malformed record counts as no passed test for that pair."""
    tests = manifest.get("ladder_tests")
    if not isinstance(tests, dict):
        return None
    pairs = tests.get("pairs")
    passed = set()
    for pair in pairs if isinstance(pairs, list) else []:
        if isinstance(pair, dict) and pair.get("more_accurate") is True:
            upper, lower = pair.get("path"), pair.get("cheaper")
            if isinstance(upper, str) and isinstance(lower, str):
                passed.add((upper, lower))
    return frozenset(passed)


def cost_field(objective: str) -> str:
    """The path field that holds the cost of `objective` (`energy_mj`, `latency_ms`)."""
    if objective not in COST_FIELDS:
        raise PolicyError(
            f"unknown objective {objective!r}; the policy tables are ordered by the cost of "
            f"one of: {', '.join(COST_FIELDS)}"
        )
    return COST_FIELDS[objective][0]


def rungs_of(
    paths: Sequence[Mapping[str, Any]], objective: str, where: str = "paths"
) -> list[Rung]:
    """Every path's (id, accuracy, cost of `objective`); PolicyError where one is missing."""
    field_name = cost_field(objective)
    out = []
    for k, p in enumerate(paths):
        acc, cost = p.get("accuracy"), p.get(field_name)
        for key, value in (("accuracy", acc), (field_name, cost)):
            if not _finite(value):
                raise PolicyError(
                    f"{where}[{k}].{key} is {value!r}; the policy tables are ordered by accuracy "
                    f"and {field_name} (the objective is {objective}), so every path needs both "
                    "as finite numbers: export the bundle again"
                )
        out.append(Rung(str(p.get("id")), float(p["accuracy"]), float(p[field_name])))
    return out


def ladder_policies(
    paths: Sequence[Mapping[str, Any]], objective: str, beats: TestedPairs | None = None
) -> dict[str, Any]:
    """The default `policies` tables over the ladder of manifest `paths` (with the paired tests
    `beats`, where recorded): battery thresholds evenly spaced (most accurate path on a full
    battery, cheapest at 0 %) and the paper's schedule (one level down every 5 hours)."""
    ids = ladder(rungs_of(paths, objective), beats)
    return {
        "default": "battery",
        "battery": {"hysteresis_pct": 3.0, "levels": battery_levels_for(ids)},
        "schedule": {"switch_every_h": 5.0, "order": ids},
    }


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _table_ids(tables: Mapping[str, Any], name: str) -> list[Any] | None:
    """The path ids a battery or schedule table lists, in order (None when it is malformed)."""
    table = tables.get(name)
    if not isinstance(table, dict):
        return None
    if name == "battery":
        levels = table.get("levels")
        if not isinstance(levels, list) or not all(isinstance(lv, dict) for lv in levels):
            return None
        return [lv.get("path") for lv in levels]
    order = table.get("order")
    return list(order) if isinstance(order, list) else None


_TABLES = {"battery": "battery.levels", "schedule": "schedule.order"}


def ladder_errors(manifest: Mapping[str, Any]) -> list[str]:
    """Every way the manifest's battery and schedule tables break the ladder rule: a dominated
    path, or a level that does not cost strictly less than the one above it (cost = the
    objective's). Empty for schema versions before LADDER_SCHEMA_VERSION. A malformed table, an
    unknown path id or a non-numeric accuracy is left to the schema check (`validate_manifest`)."""
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version < LADDER_SCHEMA_VERSION:
        return []
    objective, paths = manifest.get("objective"), manifest.get("paths")
    tables = manifest.get("policies")
    if not (isinstance(paths, list) and isinstance(tables, dict)):
        return []
    if not all(isinstance(p, dict) and _finite(p.get("accuracy")) for p in paths):
        return []
    if objective not in COST_FIELDS:
        return [
            f"manifest.objective must be one of {list(COST_FIELDS)} (its cost orders the "
            f"policy tables), got {objective!r}"
        ]
    field_name, unit = COST_FIELDS[objective]
    missing = [k for k, p in enumerate(paths) if not _finite(p.get(field_name))]
    if missing:
        return [
            f"manifest.paths[{k}].{field_name} is {paths[k].get(field_name)!r}, but the "
            f"objective is {objective}: every path needs its {field_name} to order the policy "
            "tables; export the bundle again"
            for k in missing
        ]
    rungs = rungs_of(paths, objective, "manifest.paths")
    by_id: dict[str, Rung] = {}
    for r in rungs:
        by_id.setdefault(r.id, r)  # as the Java bridge: the first of a repeated id
    best_first = sorted(rungs, key=lambda r: (-r.accuracy, r.cost))
    beats = passed_pairs(manifest)
    fix = f"the ladder by {field_name} is {', '.join(ladder(rungs, beats))}"
    errors = []
    for name, table in _TABLES.items():
        ids = _table_ids(tables, name)
        problems = []
        above: Rung | None = None
        listed = [pid for pid in ids or [] if isinstance(pid, str) and pid in by_id]
        for k, pid in enumerate(listed):
            untested = [c for c in listed[k + 1 :] if beats is not None and (pid, c) not in beats]
            if untested:
                problems.append(
                    f"{pid} is not measurably more accurate than cheaper {', '.join(untested)} "
                    "(manifest.ladder_tests)"
                )
        for pid in ids or []:
            rung = by_id.get(pid) if isinstance(pid, str) else None
            if rung is None:
                continue
            dom = next((r for r in best_first if dominates(r, rung)), None)
            if dom is not None:
                problems.append(
                    f"{pid} ({_show(rung, unit)}) is dominated by {dom.id} ({_show(dom, unit)})"
                )
            elif above is not None and not rung.cost < above.cost:
                problems.append(
                    f"{pid} ({rung.cost:g} {unit}) does not cost less than {above.id} above it "
                    f"({above.cost:g} {unit})"
                )
            above = rung
        if problems:
            errors.append(
                f"manifest.policies.{table} is not a ladder (each level strictly cheaper, no "
                f"dominated path): {', '.join(problems)}; {fix}: export the bundle again or list "
                "only those paths"
            )
    return errors


def _show(rung: Rung, unit: str) -> str:
    return f"{rung.accuracy:g} %, {rung.cost:g} {unit}"


# A Pixel-3-like phone under a continuous camera workload (the paper's app): the pixel3 profile's
# battery and workload, where the figures and their sources are.
PIXEL3_LIKE_POWER = PIXEL3.power_model()
