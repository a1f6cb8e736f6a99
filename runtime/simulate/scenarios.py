"""The scenarios simulated side by side, each driven by the runtime's own policy objects, and the
energies per path they drain by."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..calibration import Calibration
from ..measured_costs import MeasuredPolicy, measured_manifest
from ..policies import BatteryPolicy, Policy, SchedulePolicy, paths_of, policy_from_manifest
from .config import SimConfig, SimulationError


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


def check_energies(ids: Sequence[str], energy_mj: Mapping[str, float]) -> dict[str, float]:
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
    manifest: Mapping[str, Any],
    energy_mj: Mapping[str, float],
    config: SimConfig,
    calibration: Calibration | None = None,
) -> list[Scenario]:
    """worst, best, schedule (the paper's adequate usage), battery, energy-budget; those whose
    table the manifest lacks are left out. With a `calibration`, the battery and schedule
    ladders are those on its measured costs (`measured_manifest`), and a decision where the
    manifest's ladder would have run a path measuring took off it says so."""
    left: Mapping[str, str] = {}
    before = with_energies(manifest, energy_mj)
    if calibration is not None:
        measured = measured_manifest(manifest, calibration)
        manifest, left = measured.manifest, measured.left
    m = with_energies(manifest, energy_mj)

    def table_policy(name: str) -> Policy:
        p = policy_from_manifest(m, name)
        return MeasuredPolicy(p, policy_from_manifest(before, name), left) if left else p

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
                table_policy("schedule"),
            )
        )
    if "battery" in tables:
        b = policy_from_manifest(m, "battery")
        assert isinstance(b, BatteryPolicy)
        levels = "/".join(f"{t:g}" for t, _ in b.levels)
        out.append(
            Scenario(
                "battery",
                f"thresholds {levels} %, {b.hysteresis_pct:g} % hysteresis",
                table_policy("battery"),
            )
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
