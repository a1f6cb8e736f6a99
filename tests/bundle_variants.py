"""The shipped bundle, variants of it, and what its tables pick (issue 16).

Tests read what they expect from the bundle's own manifest.json, never from literals of one
export, so they hold for any valid bundle: exported/smoke is re-exported from time to time.
They prove it by running on the shipped bundle (its ladder holds only the paths a paired test
found more accurate than every cheaper one) and on `ladder`, the same files without those tests
(its battery and schedule tables walk every non-dominated path, strictly cheaper level by level,
as `prp-export` wrote them before the tests): other thresholds, more levels.
A variant changes manifest.json only, so every listed file's sha256 still holds.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from prp.runtime.policies import COST_FIELDS, LADDER_SCHEMA_VERSION, ladder_policies

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "exported" / "smoke"
KINDS = ("shipped", "ladder")


def read_manifest(bundle: Path = SMOKE) -> dict[str, Any]:
    return json.loads((bundle / "manifest.json").read_text())


def variant(target: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the shipped bundle at `target` with `change` applied to its manifest."""
    shutil.copytree(SMOKE, target)
    manifest = read_manifest(target)
    change(manifest)
    (target / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return target


def to_ladder(manifest: dict[str, Any]) -> None:
    """The manifest at the ladder schema without paired tests (as exported before them), with
    the tables the exporter then writes for its paths: every non-dominated path."""
    manifest.pop("ladder_tests", None)
    manifest["schema_version"] = LADDER_SCHEMA_VERSION
    manifest["policies"] = ladder_policies(manifest["paths"], manifest["objective"])


def front(
    manifest: dict[str, Any], accuracy: Sequence[float], cost: Sequence[float]
) -> Callable[[dict[str, Any]], None]:
    """A change that gives the manifest paths `path_0`... with these accuracies and objective
    costs (the other fields copied from its first path) and the exporter's tables over them: a
    front of any shape, for checks that run no program (policies, the Java/Python agreement)."""
    field = COST_FIELDS[manifest["objective"]][0]
    template = {k: v for k, v in manifest["paths"][0].items() if k != "onnx_initializers"}
    paths = [
        {**template, "id": f"path_{k}", "method": f"path_{k}", "accuracy": a, field: c}
        for k, (a, c) in enumerate(zip(accuracy, cost, strict=True))
    ]

    def change(m: dict[str, Any]) -> None:
        m["paths"] = paths
        to_ladder(m)

    return change


def bundle_of(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of bundle `kind` (one of KINDS)."""
    if kind == "shipped":
        return SMOKE
    if kind == "ladder":
        return variant(tmp_path_factory.mktemp("ladder") / "bundle", to_ladder)
    raise ValueError(f"unknown bundle kind {kind!r}; kinds are {KINDS}")


def battery_levels(manifest: dict[str, Any], at_least: int = 1) -> list[tuple[float, str]]:
    """(min_battery_pct, path) of the battery table, most accurate first; fails clearly where a
    test needs more levels than the bundle has."""
    levels = [
        (float(lv["min_battery_pct"]), lv["path"]) for lv in battery_table(manifest)["levels"]
    ]
    assert len(levels) >= at_least, (
        f"this test needs a battery table of at least {at_least} levels; the bundle has {levels}"
    )
    return levels


def battery_table(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["policies"]["battery"]


def battery_level(manifest: dict[str, Any], pct: float) -> tuple[float, str]:
    """The level a battery at `pct` reaches, coming from no path: the first whose threshold it
    is at or above, else the last."""
    levels = battery_levels(manifest)
    return next((lv for lv in levels if pct >= lv[0]), levels[-1])


def battery_pick(manifest: dict[str, Any], pct: float | None, current: str | None = None) -> str:
    """The path the battery table's documented rule picks: without a reading the first level;
    down at once; up to a more accurate level only `hysteresis_pct` above its threshold."""
    levels = battery_levels(manifest)
    if pct is None:
        return levels[0][1]
    ids = [p for _, p in levels]
    target = ids.index(battery_level(manifest, pct)[1])
    if current in ids and target < ids.index(current):
        margin = float(battery_table(manifest).get("hysteresis_pct", 3.0))
        target = min(ids.index(battery_level(manifest, pct - margin)[1]), ids.index(current))
    return ids[target]


def schedule_order(manifest: dict[str, Any]) -> list[str]:
    return list(manifest["policies"]["schedule"]["order"])


def schedule_pick(manifest: dict[str, Any], hours: float) -> str:
    """The schedule's path `hours` after the start: a level per `switch_every_h`, then the last."""
    order = schedule_order(manifest)
    every = float(manifest["policies"]["schedule"]["switch_every_h"])
    return order[min(int(max(hours, 0.0) // every), len(order) - 1)]


def schedule_within(manifest: dict[str, Any], horizon_h: float) -> list[str]:
    """The schedule's levels that start before `horizon_h`, in order."""
    every = float(manifest["policies"]["schedule"]["switch_every_h"])
    return [p for k, p in enumerate(schedule_order(manifest)) if k * every < horizon_h]
