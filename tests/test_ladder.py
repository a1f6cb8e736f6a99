"""The battery ladder (issue 16): the exporter's tables, the loader's check and the Python policies
walk down non-dominated paths only, each level strictly cheaper than the one above, on random
fronts with ties, exact duplicates and dominated paths. (The Java bridge is held to the same
fronts by the conformance table in test_android_bridge.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from bundle_variants import SMOKE
from hypothesis import given, settings
from hypothesis import strategies as st
from prp.runtime import (
    AdaptiveModel,
    BatteryPolicy,
    Bundle,
    BundleError,
    Context,
    validate_manifest,
)
from prp.runtime.bundle import SCHEMA_VERSION
from prp.runtime.policies import (
    COST_FIELDS,
    LADDER_SCHEMA_VERSION,
    Rung,
    battery_levels_for,
    dominates,
    ladder,
    policy_from_manifest,
    rungs_of,
)
from prp.trainer.export import default_policies

# The shipped manifest without its paired tests: here the ladder is the non-dominated paths
# (tests/test_ladder_tests.py adds the tests).
BASE = {
    k: v
    for k, v in json.loads((SMOKE / "manifest.json").read_text()).items()
    if k != "ladder_tests"
}

# Values from small grids make ties and exact duplicates common; free floats cover the rest.
# 0.1 + 0.2 and 0.3 are different doubles.
accuracies = st.one_of(
    st.sampled_from([50.0, 49.5, 48.0, 45.0, 10.0]), st.floats(0.0, 100.0, allow_nan=False)
)
costs = st.one_of(
    st.sampled_from([0.0, 0.1, 0.1 + 0.2, 0.3, 1.0]),
    st.floats(0.0, 1e3, allow_nan=False, allow_infinity=False),
)
fronts = st.lists(st.tuples(accuracies, costs), min_size=1, max_size=8)
objectives = st.sampled_from(sorted(COST_FIELDS))


def rungs(front: list[tuple[float, float]]) -> list[Rung]:
    return [Rung(f"p{k}", a, c) for k, (a, c) in enumerate(front)]


def manifest_for(front: list[tuple[float, float]], objective: str) -> dict[str, Any]:
    """The shipped manifest with `front` as its paths (most accurate first, ties in the order
    drawn) and the tables the exporter writes for them, at the current schema."""
    field = COST_FIELDS[objective][0]
    template = {k: v for k, v in BASE["paths"][0].items() if k != "onnx_initializers"}
    ordered = sorted(front, key=lambda p: -p[0])
    paths = [
        {**template, "id": f"path_{k}", "method": f"path_{k}", "accuracy": a, field: c}
        for k, (a, c) in enumerate(ordered)
    ]
    m = {**BASE, "schema_version": SCHEMA_VERSION, "objective": objective, "paths": paths}
    m["policies"] = default_policies(paths, objective)
    return m


def cost_of(m: dict[str, Any]) -> dict[str, float]:
    field = COST_FIELDS[m["objective"]][0]
    return {p["id"]: p[field] for p in m["paths"]}


def dominated(m: dict[str, Any]) -> set[str]:
    rs = rungs_of(m["paths"], m["objective"])
    return {b.id for b in rs if any(dominates(a, b) for a in rs)}


@given(fronts)
def test_ladder_is_the_non_dominated_paths_each_strictly_cheaper(
    front: list[tuple[float, float]],
) -> None:
    rs = rungs(front)
    on = ladder(rs)
    by_id = {r.id: r for r in rs}
    steps = [by_id[pid] for pid in on]
    assert steps, "a non-empty front has a ladder"
    for upper, lower in zip(steps, steps[1:], strict=False):
        assert lower.cost < upper.cost and lower.accuracy < upper.accuracy
    for r in steps:
        assert not any(dominates(o, r) for o in rs), r
    # Complete: every non-dominated path is on it, or an exact duplicate of one that is.
    values = {(r.accuracy, r.cost) for r in steps}
    for r in rs:
        if not any(dominates(o, r) for o in rs):
            assert (r.accuracy, r.cost) in values, r
    # Only (accuracy, cost) matter, not the order the paths come in.
    backwards = [by_id[pid] for pid in ladder(rs[::-1])]
    assert [(r.accuracy, r.cost) for r in backwards] == [(r.accuracy, r.cost) for r in steps]


@settings(max_examples=60, deadline=None)
@given(fronts, objectives)
def test_exported_tables_are_the_ladder_and_the_loader_accepts_them(
    front: list[tuple[float, float]], objective: str
) -> None:
    m = manifest_for(front, objective)
    on = ladder(rungs_of(m["paths"], objective))
    levels = m["policies"]["battery"]["levels"]
    assert [lv["path"] for lv in levels] == on
    assert m["policies"]["schedule"]["order"] == on
    s = len(on)  # evenly spaced over the levels that remain, the last at 0 %
    assert [lv["min_battery_pct"] for lv in levels] == [
        round(100.0 * (s - 1 - i) / s, 2) for i in range(s)
    ]
    assert validate_manifest(m) == []


@settings(max_examples=60, deadline=None)
@given(fronts, objectives)
def test_python_policies_never_pick_a_dearer_or_dominated_path_as_the_battery_drains(
    front: list[tuple[float, float]], objective: str
) -> None:
    m = manifest_for(front, objective)
    cost, bad = cost_of(m), dominated(m)
    battery = policy_from_manifest(m, "battery")
    for follow in (True, False):  # from the path in use (hysteresis), and fresh each time
        current: str | None = None
        last = float("inf")
        for k in range(401):
            chosen = battery.decide(Context(100.0 - 0.25 * k, 0.0, current)).path
            assert chosen not in bad and cost[chosen] <= last, (k, chosen)
            last, current = cost[chosen], chosen if follow else None
    schedule = policy_from_manifest(m, "schedule")
    last = float("inf")
    for k in range(4 * (len(front) + 2)):
        chosen = schedule.decide(Context(50.0, 1.25 * k, None)).path
        assert chosen not in bad and cost[chosen] <= last, (k, chosen)
        last = cost[chosen]


@settings(max_examples=60, deadline=None)
@given(fronts, objectives)
def test_the_loader_refuses_tables_that_are_not_a_ladder(
    front: list[tuple[float, float]], objective: str
) -> None:
    m = manifest_for(front, objective)
    ids = [p["id"] for p in m["paths"]]
    on = m["policies"]["schedule"]["order"]
    if on != ids:  # the tables every exporter before schema 2 wrote
        old = json.loads(json.dumps(m))
        old["policies"]["battery"]["levels"] = battery_levels_for(ids)
        old["policies"]["schedule"]["order"] = ids
        errors = validate_manifest(old)
        assert [e.split(" is not a ladder")[0] for e in errors] == [
            "manifest.policies.battery.levels",
            "manifest.policies.schedule.order",
        ]
        assert all(f"the ladder by {COST_FIELDS[objective][0]} is" in e for e in errors)
    if len(on) > 1:
        up = json.loads(json.dumps(m))
        up["policies"]["schedule"]["order"] = on[::-1]
        (error,) = validate_manifest(up)
        assert error.startswith("manifest.policies.schedule.order is not a ladder")
        assert f"does not cost less than {on[-1]} above it" in error


def shipped_paths() -> tuple[list[dict[str, Any]], str]:
    m = Bundle.load(SMOKE).data
    return m["paths"], m["objective"]


def test_the_shipped_front_gets_a_monotone_ladder() -> None:
    """The defect once seen in the shipped bundle: its tables (schema 1) walked every path, so at
    40 % the battery policy left path_1 for path_2, dearer and less accurate. The exporter's
    tables for the shipped paths leave every dominated path out."""
    paths, objective = shipped_paths()
    tables = default_policies(paths, objective)
    m = {**BASE, "schema_version": SCHEMA_VERSION, "paths": paths, "policies": tables}
    bad, cost = dominated(m), cost_of(m)
    assert not bad & {lv["path"] for lv in tables["battery"]["levels"]}
    assert not bad & set(tables["schedule"]["order"])
    battery = policy_from_manifest(m, "battery")
    picks = [battery.decide(Context(pct, 0.0, None)).path for pct in range(100, -1, -1)]
    assert all(cost[b] <= cost[a] for a, b in zip(picks, picks[1:], strict=False))
    assert validate_manifest(m) == []


def copy_with_tables(tmp_path: Path, version: int, ids: list[str]) -> Path:
    """A copy of the shipped bundle whose manifest has `version` and both tables over `ids`."""
    bundle = tmp_path / "bundle"
    shutil.copytree(SMOKE, bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    m["schema_version"] = version
    m.pop("ladder_tests", None)
    m["policies"]["battery"]["levels"] = battery_levels_for(ids)
    m["policies"]["schedule"]["order"] = ids
    (bundle / "manifest.json").write_text(json.dumps(m))
    return bundle


def test_a_bundle_whose_tables_break_the_ladder_is_refused_with_the_fix(tmp_path: Path) -> None:
    paths, objective = shipped_paths()
    ids = [p["id"] for p in paths]
    on = ladder(rungs_of(paths, objective))
    # Every path (as exporters wrote before schema 2) where one is off the ladder, else the
    # ladder upside down.
    bundle = copy_with_tables(tmp_path, LADDER_SCHEMA_VERSION, ids if on != ids else on[::-1])
    with pytest.raises(BundleError) as e:
        AdaptiveModel(bundle, backend="onnxruntime")
    message = str(e.value)
    assert "manifest.policies.battery.levels is not a ladder" in message
    assert f"the ladder by {COST_FIELDS[objective][0]} is {', '.join(on)}" in message
    assert "export the bundle again" in message
    if on != ids:
        off = next(pid for pid in ids if pid not in on)
        assert f"{off} (" in message and "is dominated by" in message


def test_bundles_before_the_ladder_schema_load_with_their_tables(tmp_path: Path) -> None:
    """Bundles exported before schema 2 (the shipped bundle until 2026-12-03) load as they are;
    the re-export gives them ladders."""
    ids = [p["id"] for p in shipped_paths()[0]]
    bundle = copy_with_tables(tmp_path, LADDER_SCHEMA_VERSION - 1, ids)
    battery = policy_from_manifest(Bundle.load(bundle).data, "battery")
    assert isinstance(battery, BatteryPolicy)
    assert [pid for _, pid in battery.levels] == ids
