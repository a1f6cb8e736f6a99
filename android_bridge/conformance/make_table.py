"""Write the conformance table the Java bridge must reproduce, using the Python runtime itself.

Three parts, all computed by `prp.runtime` (never re-implemented here):

- `cases`: a policy (built by `policy_from_manifest`, from the bundle's tables or from a variant
  of them) and, for every (battery level, clock time, previous path) on a grid, the path its
  `decide` picks. The grid holds no-reading (None), every threshold, a hair below it, threshold
  plus hysteresis and a hair either side, and schedule boundaries.
- `traces`: an `AdaptiveModel` driven step by step (clock, pushed battery, manual switches) on a
  backend that does nothing, recording the path of every call and the switch log, so the Java
  runtime's "ask again when the reading changes or every second" is checked too.
- `ladders`: seeded random fronts (accuracy and cost drawn from coarse grids, so ties, exact
  duplicates and dominated paths are common), each as a manifest of the current schema. About half
  carry a random `ladder_tests` record (`random_ladder_tests`): each (path, cheaper path) test
  passed or failed at random, now and then a malformed pair record (which counts as no passed
  test) or a `pairs` that is not a list (no test passed); the others have none (the plain
  non-dominated ladder). With the tables the exporter
  writes (`ladder_policies(paths, objective, passed_pairs(m))`): the ladder
  (`ladder(rungs, passed_pairs(m))`) and what the battery policy (the battery drained from 100 %
  to 0 and charged back) and the schedule pick. With tables that break the ladder rule (every
  path, as exporters before schema 2 wrote; a reversed schedule; where tests are recorded, the
  plain non-dominated ladder when a test on it failed, and a schedule of one failed pair): which
  tables `validate_manifest` refuses and its sentences, so the Java loader must refuse the same
  tables with the same sentences.

    python android_bridge/conformance/make_table.py --manifest exported/smoke/manifest.json \
        --out build/conformance.json
"""

from __future__ import annotations

import argparse
import copy
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
from prp.runtime import AdaptiveModel, Bundle, PushedBattery, validate_manifest
from prp.runtime.bundle import SCHEMA_VERSION
from prp.runtime.policies import (
    PIXEL3_LIKE_POWER,
    Context,
    PowerModel,
    battery_levels_for,
    ladder,
    ladder_policies,
    passed_pairs,
    paths_of,
    policy_from_manifest,
    rungs_of,
)

# An inference-dominated phone: most accurate paths cost far more than cheap ones, so the energy
# budget walks through several paths over the grid (with the shipped bundle's near-equal energies
# it would pick path_0 everywhere).
HEAVY_POWER = PowerModel(capacity_mah=3000, voltage_v=3.85, baseline_w=0.5, inferences_per_s=30.0)

TIMES_H = [0.0, 0.05, 0.3, 0.5, 0.7, 0.9, 1.0, 1.3, 2.5, 4.999999, 5.0, 5.0000001, 9.99, 10.0]
TIMES_H += [12.0, 14.5, 15.0, 19.999, 20.0, 21.7, 23.99, 24.0, 24.5, 27.0, 30.0]


def _power_dict(power: PowerModel) -> dict[str, float]:
    return {
        "capacity_mah": power.capacity_mah,
        "voltage_v": power.voltage_v,
        "baseline_w": power.baseline_w,
        "inferences_per_s": power.inferences_per_s,
    }


def case_specs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The policies to tabulate: the four defaults, then variants that reach the edge cases."""
    ids = paths_of(manifest)
    n = len(ids)
    shipped = manifest["policies"]
    # The shipped table's own paths (its ladder from schema 2 on), with other thresholds.
    table_ids = [lv["path"] for lv in shipped["battery"]["levels"]]
    uneven = [90.0, 55.5, 30.0, 12.25, 5.0, 2.0][: len(table_ids) - 1] + [0.0]
    battery_uneven = {
        "default": "battery",
        "battery": {
            "hysteresis_pct": 7.5,
            "levels": [
                {"min_battery_pct": t, "path": p} for t, p in zip(uneven, table_ids, strict=True)
            ],
        },
        "schedule": shipped["schedule"],
    }
    battery_no_margin = copy.deepcopy(shipped)
    battery_no_margin["battery"]["hysteresis_pct"] = 0.0
    # Every 0.1 h down a 15-level ladder: Python's float floor division gives 4, 8, 9 and 12 at
    # 0.5, 0.9, 1.0 and 1.3 h, where floor(t / 0.1) gives 5, 9, 10 and 13.
    front = synthetic_paths(
        manifest, [80.0 - 2.5 * k for k in range(15)], [15.0 - k for k in range(15)]
    )
    schedule_fast = ladder_policies(front, manifest["objective"])
    schedule_fast["default"] = "schedule"
    schedule_fast["schedule"]["switch_every_h"] = 0.1
    falling = {pid: round(40.0 - 35.0 * k / max(n - 1, 1), 6) for k, pid in enumerate(ids)}
    # The cheapest path is not the last one, and two tie: the fallback takes the first minimum.
    uneven_energy = {pid: [30.0, 25.0, 4.0, 20.0, 4.0][k % 5] for k, pid in enumerate(ids)}
    return [
        {"name": "default", "policy": None},
        {"name": "battery", "policy": "battery"},
        {"name": "schedule", "policy": "schedule"},
        {
            "name": "energy-budget",
            "policy": "energy-budget",
            "power": _power_dict(PIXEL3_LIKE_POWER),
        },
        {"name": "fixed", "policy": "fixed"},
        {"name": "fixed-last", "policy": "fixed", "fixed": ids[-1]},
        {"name": "battery-uneven", "policy": "battery", "policies": battery_uneven},
        {"name": "battery-no-margin", "policy": "battery", "policies": battery_no_margin},
        {
            "name": "schedule-fast",
            "policy": "schedule",
            "policies": schedule_fast,
            "manifest": {"paths": front, "schema_version": SCHEMA_VERSION},
        },
        with_ladder(
            manifest,
            {
                "name": "energy-budget-heavy",
                "policy": "energy-budget",
                "power": _power_dict(HEAVY_POWER),
                "energy_mj": falling,
            },
        ),
        with_ladder(
            manifest,
            {
                "name": "energy-budget-fallback",
                "policy": "energy-budget",
                "power": _power_dict(HEAVY_POWER),
                "target_h": 30.0,
                "energy_mj": uneven_energy,
            },
        ),
    ]


def with_ladder(manifest: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with tables over the ladder of its changed energies, which the shipped tables may
    not follow (from schema 2 on the loaders would refuse them)."""
    m = variant(manifest, spec)
    return {**spec, "policies": ladder_policies(m["paths"], m["objective"])}


def synthetic_paths(
    manifest: dict[str, Any], accuracy: list[float], cost: list[float]
) -> list[dict[str, Any]]:
    """Path entries `path_0`... with these accuracies and (objective) costs, the other fields
    copied from the manifest's first path (the cases parse manifests, they run no program)."""
    field = {"energy": "energy_mj", "latency": "latency_ms"}[manifest["objective"]]
    # Without the (optional, bulky) list of ONNX initializers.
    template = {k: v for k, v in manifest["paths"][0].items() if k != "onnx_initializers"}
    return [
        {**template, "id": f"path_{k}", "method": f"path_{k}", "accuracy": a, field: c}
        for k, (a, c) in enumerate(zip(accuracy, cost, strict=True))
    ]


def variant(manifest: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The manifest as the case sees it (top-level fields, its policy tables or path energies
    replaced)."""
    m = copy.deepcopy(manifest)
    m.update(copy.deepcopy(spec.get("manifest", {})))
    if "policies" in spec:
        m["policies"] = spec["policies"]
    for p in m["paths"]:
        if p["id"] in spec.get("energy_mj", {}):
            p["energy_mj"] = spec["energy_mj"][p["id"]]
    return m


def valid_variant(manifest: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """`variant`, which the runtime's loader must accept (the Java side parses it too)."""
    m = variant(manifest, spec)
    errors = validate_manifest(m)
    if errors:
        raise ValueError(f"case {spec['name']}: the variant manifest is invalid: {errors}")
    return m


def build_policy(manifest: dict[str, Any], spec: dict[str, Any]) -> Any:
    power = PowerModel(**spec["power"]) if "power" in spec else None
    return policy_from_manifest(
        valid_variant(manifest, spec),
        spec["policy"],
        power=power,
        target_h=spec.get("target_h", 24.0),
        fixed=spec.get("fixed"),
    )


def battery_grid(manifest: dict[str, Any], specs: list[dict[str, Any]]) -> list[float | None]:
    """No reading, a coarse sweep, and every threshold of every battery table with its margins."""
    levels: set[float] = {0.0, 0.5, 1.0, 7.0, 33.3, 50.0, 99.0, 100.0}
    for spec in specs:
        tables = variant(manifest, spec)["policies"]
        table = tables.get("battery")
        if table is None or spec["policy"] not in (None, "battery"):
            continue
        h = float(table.get("hysteresis_pct", 3.0))
        for lv in table["levels"]:
            t = float(lv["min_battery_pct"])
            for v in (t, t - 0.01, t + 0.01, t + h, t + h - 0.01, t + h + 0.01):
                if 0.0 <= v <= 100.0:
                    levels.add(v)
            levels.add(float(np.nextafter(t, -np.inf)) if t > 0 else t)
    for lo, hi in ((79.0, 84.0), (0.0, 100.0)):
        rng = random.Random(int(lo))
        levels.update(round(rng.uniform(lo, hi), 3) for _ in range(12))
    grid: list[float | None] = [None]
    grid.extend(sorted(levels))
    return grid


def tabulate(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    specs = case_specs(manifest)
    batteries = battery_grid(manifest, specs)
    currents: list[str | None] = [None, *paths_of(manifest)]
    cases = []
    for spec in specs:
        policy = build_policy(manifest, spec)
        rows = []
        for b in batteries:
            for t in TIMES_H:
                for cur in currents:
                    rows.append([b, t, cur, policy.decide(Context(b, t, cur)).path])
        cases.append({**spec, "rows": rows})
    return cases


class NullBackend:
    """A backend that runs nothing: the traces check choices, not logits."""

    name = "null"

    def __init__(self, classes: int) -> None:
        self.classes = classes

    def run(self, path_id: str, x: np.ndarray) -> np.ndarray:
        return np.zeros((x.shape[0], self.classes), dtype=np.float32)


def trace_steps(seed: int, policy: str) -> list[list[Any]]:
    """Clock (h), battery (% or None) and action per step: predictions at sub-second and longer
    gaps, a draining battery with wobbles, a manual pin and a release."""
    rng = random.Random(seed)
    clock, battery = 0.0, 100.0
    if policy == "schedule":
        clock = 5.0 - 0.5 / 3600.0  # half a second before the first switch: the cache matters
    steps: list[list[Any]] = []
    for k in range(160):
        # Mostly sub-second gaps, so many decisions come from the cache or from a new reading.
        gap_s = rng.choice([0.05, 0.1, 0.3, 0.6, 0.9, 1.0, 1.5, 60.0, 1800.0])
        clock += gap_s / 3600.0
        if rng.random() < 0.5:
            battery = max(0.0, min(100.0, round(battery + rng.uniform(-6.0, 2.0), 2)))
        reading: float | None = None if 40 <= k < 46 else battery
        action = "predict"
        if k == 70:
            action = "switch_to:path_" + str(rng.randrange(3))
        elif k == 90:
            action = "follow"
        steps.append([clock, reading, action])
    return steps


def run_trace(bundle: Bundle, policy: str, steps: list[list[Any]]) -> dict[str, Any]:
    now = [steps[0][0]]
    battery = PushedBattery(steps[0][1])
    model = AdaptiveModel(
        bundle,
        policy=policy,
        battery=battery,
        backend=NullBackend(len(bundle.classes)),
        clock=lambda: now[0],
    )
    image = np.zeros((1, *model.input_shape), dtype=np.float32)
    paths = []
    for clock, reading, action in steps:
        now[0] = clock
        battery.push(reading)
        if action.startswith("switch_to:"):
            model.switch_to(action.split(":", 1)[1])
        elif action == "follow":
            model.follow_policy()
        paths.append(model.predict(image).path)
    switches = [[s.at_h, s.from_path, s.to_path] for s in model.switches]
    return {"policy": policy, "steps": steps, "paths": paths, "switches": switches}


def traces(bundle_dir: Path) -> list[dict[str, Any]]:
    bundle = Bundle.load(bundle_dir)
    out = []
    for seed, policy in enumerate(("battery", "schedule", "energy-budget", "fixed")):
        out.append(run_trace(bundle, policy, trace_steps(seed, policy)))
    return out


# Coarse grids: random fronts drawn from them hold ties in accuracy, ties in cost, exact
# duplicates and dominated paths. 0.1 + 0.2 and 0.3 are different doubles: both languages must
# read them apart.
ACCURACY_GRID = [50.0, 49.5, 48.25, 48.0, 47.0, 46.5, 45.0, 40.0, 10.0]
COST_GRID = [0.3, 0.1 + 0.2, 0.25, 0.2, 0.125, 0.1, 0.05, 1.0, 2.0, 0.0]
BATTERY_SWEEP = [round(100.0 - 0.5 * k, 1) for k in range(201)]  # 100 % down to 0 %


def random_front(rng: random.Random, manifest: dict[str, Any]) -> dict[str, Any]:
    """Manifest fields for 1-8 paths drawn from the grids (most accurate first, ties in any
    cost order), priced on a random objective (the other cost left as it may be: missing)."""
    n = rng.randint(1, 8)
    objective = rng.choice(["energy", "latency"])
    accuracy = sorted((rng.choice(ACCURACY_GRID) for _ in range(n)), reverse=True)
    cost = [rng.choice(COST_GRID) for _ in range(n)]
    paths = synthetic_paths({**manifest, "objective": objective}, accuracy, cost)
    other = "latency_ms" if objective == "energy" else "energy_mj"
    for p in paths:
        p[other] = rng.choice([None, rng.choice(COST_GRID)])
    return {"paths": paths, "objective": objective, "schema_version": SCHEMA_VERSION}


# Pair records that look like a passed test but are not one (Python's `passed_pairs` skips them):
# more_accurate not JSON true, path or cheaper missing or not a string, not an object at all.
MALFORMED_PAIRS = [
    lambda up, low: {"path": up, "cheaper": low, "more_accurate": "true"},
    lambda up, low: {"path": up, "cheaper": low, "more_accurate": 1},
    lambda up, low: {"path": up, "cheaper": low, "more_accurate": 1.0},
    lambda up, low: {"path": up, "cheaper": low, "more_accurate": None},
    lambda up, low: {"path": up, "more_accurate": True},
    lambda up, low: {"path": up, "cheaper": None, "more_accurate": True},
    lambda up, low: {"path": 0, "cheaper": low, "more_accurate": True},
    lambda up, low: {"path": [up], "cheaper": low, "more_accurate": True},
    lambda up, low: [up, low, True],
    lambda up, low: f"{up} > {low}",
    lambda up, low: None,
]


def test_record(rng: random.Random, upper: str, lower: str, passed: bool) -> dict[str, Any]:
    """One pair record as the exporter writes it (the counts and p-value only look the part: the
    rule reads `more_accurate` alone)."""
    only_upper, only_lower = rng.randint(0, 40), rng.randint(0, 40)
    p_value = rng.uniform(0.0, 0.05) if passed else rng.uniform(0.05, 1.0)
    return {
        "path": upper,
        "cheaper": lower,
        "only_path_right": only_upper,
        "only_cheaper_right": only_lower,
        "p_value": p_value,
        "more_accurate": passed,
    }


def random_ladder_tests(rng: random.Random, fields: dict[str, Any]) -> dict[str, Any]:
    """A random `ladder_tests` record for the front `fields`: mostly a test for every (path,
    strictly cheaper path), each passed with a per-front chance, malformed pair records mixed in
    (some in place of the real one) and a few stray pairs (reversed, unknown ids); now and then
    `pairs` not a list. (A `ladder_tests` that is not an object fails the loaders' schema check,
    which ManifestTest covers.)"""
    record: dict[str, Any] = {
        "method": "exact McNemar test, one-sided (random conformance record)",
        "alpha": 0.05,
        "images": 1000,
        "split": "held-out validation images",
    }
    if rng.random() < 0.08:
        return {**record, "pairs": rng.choice([None, {}, "all", 3])}
    field = {"energy": "energy_mj", "latency": "latency_ms"}[fields["objective"]]
    cost = [(p["id"], p[field]) for p in fields["paths"]]
    chance = rng.choice([0.4, 0.7, 0.9, 1.0])
    malformed = rng.choice([0.0, 0.0, 0.1, 0.3])
    pairs: list[Any] = []
    for upper, upper_cost in cost:
        for lower, lower_cost in cost:
            if not lower_cost < upper_cost:
                continue
            if rng.random() < malformed:
                pairs.append(rng.choice(MALFORMED_PAIRS)(upper, lower))
                if rng.random() < 0.5:
                    continue  # the malformed record instead of the real one: no passed test
            pairs.append(test_record(rng, upper, lower, rng.random() < chance))
            if rng.random() < 0.05:  # a stray pair the rule never asks about
                stray = rng.choice([(lower, upper), (upper, "path_99"), (upper, upper)])
                pairs.append(test_record(rng, *stray, True))
    rng.shuffle(pairs)
    return {**record, "pairs": pairs}


def failed_pair(rng: random.Random, plain: list[str], beats: frozenset[tuple[str, str]]) -> Any:
    """A (path, cheaper path) of the plain ladder without a passed test, or None."""
    failed = [
        (upper, lower)
        for k, upper in enumerate(plain)
        for lower in plain[k + 1 :]
        if (upper, lower) not in beats
    ]
    return rng.choice(failed) if failed else None


def ladder_rows(m: dict[str, Any]) -> tuple[list[list[Any]], list[list[Any]]]:
    """What Python's battery policy picks with no reading, draining from 100 % to 0 and charging
    back (each step from the path picked before), and what the schedule picks over its slots."""
    battery = policy_from_manifest(m, "battery")
    rows: list[list[Any]] = [[None, 0.0, None, battery.decide(Context(None, 0.0, None)).path]]
    current: str | None = None
    for pct in [*BATTERY_SWEEP, *reversed(BATTERY_SWEEP)]:
        chosen = battery.decide(Context(pct, 0.0, current)).path
        rows.append([pct, 0.0, current, chosen])
        current = chosen
    schedule = policy_from_manifest(m, "schedule")
    every = m["policies"]["schedule"]["switch_every_h"]
    hours = [k * every + d for k in range(len(m["paths"]) + 2) for d in (-1e-6, 0.0)]
    timed = [[50.0, h, None, schedule.decide(Context(50.0, h, None)).path] for h in hours]
    return rows, timed


def ladder_cases(manifest: dict[str, Any], count: int, seed: int) -> list[dict[str, Any]]:
    """`count` random fronts, about half with paired tests, with the exporter's tables (accepted:
    the ladder and the policies' choices) and, where they break the rule, other tables (refused:
    which tables, and Python's sentences)."""
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        fields = random_front(rng, manifest)
        if rng.random() < 0.5:
            fields["ladder_tests"] = random_ladder_tests(rng, fields)
        # As the loaders read it: JSON, so a Python value JSON cannot tell apart is not judged.
        fields = json.loads(json.dumps(fields))
        ids = paths_of(fields)
        rungs = rungs_of(fields["paths"], fields["objective"])
        beats = passed_pairs(fields)
        plain, on_ladder = ladder(rungs), ladder(rungs, beats)
        good = {**fields, "policies": ladder_policies(fields["paths"], fields["objective"], beats)}
        spec = {"name": f"ladder-{i}", "manifest": good}
        battery, schedule = ladder_rows(valid_variant(manifest, spec))
        rows = {"battery": battery, "schedule": schedule}
        cases.append({**spec, "ladder": on_ladder, "refused": [], "errors": [], "rows": rows})
        broken = []
        if on_ladder != ids:  # the tables exporters wrote before schema 2: every path
            old = {"battery": {"levels": battery_levels_for(ids)}, "schedule": {"order": ids}}
            broken.append(("all-paths", old))
        if len(on_ladder) > 1:
            broken.append(("reversed", {"schedule": {"order": on_ladder[::-1]}}))
        if beats is not None and plain != on_ladder:  # the exporter's tables before the tests
            untested = ladder_policies(fields["paths"], fields["objective"])
            broken.append(("untested", {t: untested[t] for t in ("battery", "schedule")}))
        failed = failed_pair(rng, plain, beats) if beats is not None else None
        if failed is not None:
            broken.append(("failed-pair", {"schedule": {"order": list(failed)}}))
        for kind, tables in broken:
            policies = copy.deepcopy(good["policies"])
            for name, table in tables.items():
                policies[name].update(table)
            bad = {"name": f"ladder-{i}-{kind}", "manifest": {**fields, "policies": policies}}
            errors = validate_manifest(variant(manifest, bad))
            refused = [f"manifest.policies.{t}" for t in ("battery.levels", "schedule.order")]
            refused = [
                w for w in refused if any(e.startswith(w + " is not a ladder") for e in errors)
            ]
            if len(refused) != len(errors) or not refused:
                raise ValueError(f"case {bad['name']}: expected ladder errors only, got {errors}")
            cases.append(
                {**bad, "ladder": on_ladder, "refused": refused, "errors": errors, "rows": {}}
            )
    return cases


def make_table(manifest_path: Path, ladders: int = 600, seed: int = 0) -> dict[str, Any]:
    # The cases are fronts and tables of their own (some with random paired tests): they start
    # from the manifest without its recorded tests, which are about its own paths.
    manifest = json.loads(manifest_path.read_text())
    manifest.pop("ladder_tests", None)
    return {
        "manifest": str(manifest_path),
        "cases": tabulate(manifest),
        "traces": traces(manifest_path.parent),
        "ladders": ladder_cases(manifest, ladders, seed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, default=Path("exported/smoke/manifest.json"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ladders", type=int, default=600, help="random fronts to tabulate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random fronts")
    args = parser.parse_args(argv)
    table = make_table(args.manifest, args.ladders, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table))
    rows = sum(len(c["rows"]) for c in table["cases"])
    steps = sum(len(t["steps"]) for t in table["traces"])
    refused = sum(bool(c["refused"]) for c in table["ladders"])
    message = (
        f"{args.out}: {len(table['cases'])} policies, {rows} rows; {steps} trace steps; "
        f"{len(table['ladders'])} ladders, {refused} of them refused"
    )
    print(message)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
