"""The policies on measured costs: a bundle's manifest with a calibration's figures in place of
its modelled ones, its battery and schedule ladders derived again on them, and a policy whose
decisions say when the manifest's ladder would have run a path that measuring took off it.

A path leaves the ladder when, measured, it costs more than a cheaper path that is not less
accurate (it is dominated), or, where the bundle records paired accuracy tests, when it is not
measurably more accurate than a path now cheaper than it. The paired tests keep their rule
(`policies.ladder`): a pair the exporter tested in one direction only (costlier path first, by
the manifest's costs) is read both ways from its recorded counts, so a reordering by measured
cost is judged on the same images with the same test.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .calibration import Calibration
from .policies import (
    COST_FIELDS,
    Context,
    Decision,
    Policy,
    PolicyError,
    Rung,
    TestedPairs,
    battery_levels_for,
    dominates,
    ladder,
    passed_pairs,
    paths_of,
    policy_from_manifest,
    rungs_of,
)
from .power import PowerModel


def binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2): the exact one-sided McNemar p-value."""
    if n == 0:
        return 1.0
    # Integer true division: exact for any n (2.0**n overflows a float past n = 1023, and a
    # real-size bundle's paths disagree on more held-out images than that).
    return sum(math.comb(n, i) for i in range(k, n + 1)) / (1 << n)


def paired_tests_both_ways(manifest: Mapping[str, Any]) -> TestedPairs | None:
    """`passed_pairs`, plus each recorded pair tested the other way round (is the cheaper path,
    by the manifest, more accurate than the costlier one?) from the same counts at the record's
    level; None where the bundle records no tests."""
    beats = passed_pairs(manifest)
    if beats is None:
        return None
    return frozenset(beats | {(r["path"], r["cheaper"]) for r in reversed_tests(manifest)})


def reversed_tests(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `ladder_tests` records read the other way round that pass: (cheaper path, costlier
    path) by the manifest's costs, from the same counts, at the record's level."""
    tests = manifest.get("ladder_tests")
    if not isinstance(tests, dict):
        return []
    alpha = tests.get("alpha", 0.05)
    out = []
    pairs = tests.get("pairs")
    for pair in pairs if isinstance(pairs, list) else []:
        if not isinstance(pair, dict):
            continue
        upper, lower = pair.get("path"), pair.get("cheaper")
        only_upper, only_lower = pair.get("only_path_right"), pair.get("only_cheaper_right")
        if not all(isinstance(v, str) for v in (upper, lower)):
            continue
        if not all(isinstance(v, int) and v >= 0 for v in (only_upper, only_lower)):
            continue
        assert isinstance(only_upper, int) and isinstance(only_lower, int)
        p = binomial_tail(only_lower, only_upper + only_lower)
        if p < alpha:
            out.append(
                {
                    "path": str(lower),
                    "cheaper": str(upper),
                    "only_path_right": only_lower,
                    "only_cheaper_right": only_upper,
                    "p_value": p,
                    "more_accurate": True,
                    "reversed": True,
                }
            )
    return out


@dataclass(frozen=True)
class MeasuredManifest:
    """A manifest whose paths carry measured costs, and what that changed."""

    manifest: dict[str, Any]
    ladder: list[str]  # on measured cost
    manifest_ladder: list[str]  # the tables' ladder, on the manifest's costs
    left: dict[str, str]  # path -> why it is off the measured ladder
    joined: dict[str, str]  # path -> why it is on the measured ladder but not the manifest's


def measured_manifest(manifest: Mapping[str, Any], calibration: Calibration) -> MeasuredManifest:
    """A copy of `manifest` with each path's `latency_ms` and `energy_mj` measured, and, where
    the ladder on the objective's measured cost differs from the tables' ladder, battery levels
    evenly spaced and a schedule over the measured ladder (hysteresis and switch period kept)."""
    out = copy.deepcopy(dict(manifest))
    for p in out["paths"]:
        cost = calibration.paths[p["id"]]
        p["latency_ms"], p["energy_mj"] = cost.latency_ms, cost.energy_mj
    objective = str(manifest.get("objective"))
    if objective not in COST_FIELDS:
        raise PolicyError(f"unknown objective {objective!r}; expected one of {list(COST_FIELDS)}")
    unit = COST_FIELDS[objective][1]
    tables = out["policies"]
    old = _table_ladder(tables) or paths_of(manifest)
    beats = paired_tests_both_ways(manifest)
    rungs = rungs_of(out["paths"], objective)
    new = ladder(rungs, beats)
    by_id = {r.id: r for r in rungs}
    left = {pid: _why_left(by_id[pid], rungs, new, beats, unit) for pid in old if pid not in new}
    joined = {
        pid: f"{pid} joined the ladder: measured {by_id[pid].cost:.4g} {unit}, cheaper than "
        "every more accurate path"
        for pid in new
        if pid not in old
    }
    recorded = out.get("ladder_tests", {}).get("pairs") if beats is not None else None
    if isinstance(recorded, list):  # the tests read both ways, so the tables check as ladders
        out["ladder_tests"]["pairs"] = recorded + reversed_tests(manifest)
    if new != old:
        if "battery" in tables:
            tables["battery"]["levels"] = battery_levels_for(new)
        if "schedule" in tables:
            tables["schedule"]["order"] = list(new)
    return MeasuredManifest(out, new, old, left, joined)


def _table_ladder(tables: Mapping[str, Any]) -> list[str] | None:
    if "schedule" in tables:
        return [str(p) for p in tables["schedule"]["order"]]
    if "battery" in tables:
        return [str(lv["path"]) for lv in tables["battery"]["levels"]]
    return None


def _why_left(
    rung: Rung, rungs: list[Rung], new: list[str], beats: TestedPairs | None, unit: str
) -> str:
    # Of the paths that dominate it, the nearest above it: the least accurate, then cheapest.
    dom = next(
        (r for r in sorted(rungs, key=lambda r: (r.accuracy, r.cost)) if dominates(r, rung)),
        None,
    )
    if dom is not None:
        return (
            f"{rung.id} left the ladder: measured {rung.cost:.4g} {unit}, costlier than "
            f"{dom.id} ({dom.cost:.4g} {unit}), which is not less accurate "
            f"({dom.accuracy:g} % vs {rung.accuracy:g} %)"
        )
    twin = next(
        (r for r in rungs if r.id in new and (r.accuracy, r.cost) == (rung.accuracy, rung.cost)),
        None,
    )
    if twin is not None:
        return (
            f"{rung.id} left the ladder: the same accuracy and measured cost as {twin.id} "
            f"({rung.cost:.4g} {unit}), which stays"
        )
    cheaper = [
        pid
        for pid in new
        if next(r for r in rungs if r.id == pid).cost < rung.cost
        and beats is not None
        and (rung.id, pid) not in beats
    ]
    return (
        f"{rung.id} left the ladder: measured {rung.cost:.4g} {unit}, not measurably more "
        f"accurate than {', '.join(cheaper) or 'a cheaper path'}, which measured cheaper "
        "(manifest.ladder_tests)"
    )


@dataclass(frozen=True)
class MeasuredPolicy:
    """A policy built on measured costs (`inner`) beside the same policy on the manifest's
    (`manifest_policy`): it decides as `inner`, and where the manifest's policy would have run
    a path that left the ladder, the reason says why that path is not run."""

    inner: Policy
    manifest_policy: Policy
    left: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.inner.name

    def decide(self, ctx: Context) -> Decision:
        decision = self.inner.decide(ctx)
        if not self.left:
            return decision
        would = self.manifest_policy.decide(ctx).path
        if would != decision.path and would in self.left:
            return Decision(decision.path, f"{decision.reason}; {self.left[would]}")
        return decision


def measured_policy(
    manifest: Mapping[str, Any],
    calibration: Calibration,
    name: str | None = None,
    power: PowerModel | None = None,
    target_h: float = 24.0,
    fixed: str | None = None,
) -> Policy:
    """`policy_from_manifest` on the calibration's costs: the energy budget plans with measured
    energy, the battery and schedule ladders are derived on the measured cost."""
    measured = measured_manifest(manifest, calibration)
    inner = policy_from_manifest(measured.manifest, name, power, target_h, fixed)
    if not measured.left or inner.name not in ("battery", "schedule"):
        return inner  # only the ladders' tables change
    before = policy_from_manifest(manifest, name, power, target_h, fixed)
    return MeasuredPolicy(inner, before, measured.left)
