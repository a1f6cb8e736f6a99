"""The Android bridge's Java library (android_bridge/), built by android_bridge/build.sh.

The JUnit suites run here; the Java policies and runtime are checked against a table the Python
runtime writes at test time; bundle errors are checked through the bridge's BundleCheck tool on
copies of the shipped bundle, with the method names of the real supernet.pte. Without a build the
tests are skipped ("run android_bridge/build.sh"); CI sets PRP_REQUIRE_ANDROID_BRIDGE=1, which
makes them fail instead.

What the tests expect comes from the bundle's manifest.json, so they run on the shipped bundle and
on variants of it (bundle_variants.py; the Java suites through -Dprp.bundle=DIR).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest
from bundle_variants import (
    KINDS,
    SMOKE,
    battery_level,
    battery_levels,
    bundle_of,
    front,
    read_manifest,
    schedule_pick,
    schedule_within,
    variant,
)
from prp.runtime import AdaptiveModel, PushedBattery
from prp.runtime.policies import ladder, passed_pairs, rungs_of

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = ROOT / "android_bridge"
BUILD = BRIDGE / "build"
BUNDLE = SMOKE
# A synthetic front of six paths, each more accurate one dearer: a six-level ladder, whatever
# ladder the shipped bundle has, for the checks of Java/Python agreement that need many levels.
FRONT_ACCURACY = [60.0, 57.5, 55.0, 52.5, 50.0, 47.5]
FRONT_COST = [0.06, 0.05, 0.04, 0.03, 0.02, 0.01]
SUITES = [
    "BatteryEnergyMeterTest",
    "BatteryReaderTest",
    "BundleFilesTest",
    "InputSpecTest",
    "LadderTest",
    "ManifestTest",
    "MeasuredCostsTest",
    "PathEnergyTest",
    "PathLatencyTest",
    "PoliciesTest",
    "SupernetRuntimeTest",
]


def _unavailable(message: str) -> NoReturn:
    message += "; run android_bridge/build.sh"
    if os.environ.get("PRP_REQUIRE_ANDROID_BRIDGE") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def classpath() -> str:
    """The built library's test classpath; skips (or fails, in CI) without a fresh build."""
    java = shutil.which("java")
    if java is None:
        _unavailable("no java on PATH")
    outputs = [BUILD / "prp-bridge.jar", BUILD / "test-classpath.txt", BUILD / "junit-classes.txt"]
    missing = [str(p.relative_to(ROOT)) for p in outputs if not p.is_file()]
    if missing:
        _unavailable(f"the Android bridge is not built ({', '.join(missing)} missing)")
    built = (BUILD / "prp-bridge.jar").stat().st_mtime
    trees = (BRIDGE / "src", BRIDGE / "native" / "java")  # what build.sh puts in the jar
    sources = [p for t in trees for p in t.rglob("*.java") if p.stat().st_mtime > built]
    if sources:
        _unavailable(f"the Android bridge build is older than {sources[0].relative_to(ROOT)}")
    return (BUILD / "test-classpath.txt").read_text().strip()


def java(classpath: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["java", "-cp", classpath, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def bundle_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundles of KINDS, and `front`: the shipped files with the synthetic six-path front."""
    dirs = {kind: bundle_of(kind, tmp_path_factory) for kind in KINDS}
    change = front(read_manifest(), FRONT_ACCURACY, FRONT_COST)
    dirs["front"] = variant(tmp_path_factory.mktemp("front") / "bundle", change)
    return dirs


def test_every_junit_suite_is_built(classpath: str) -> None:
    built = (BUILD / "junit-classes.txt").read_text().split()
    assert built == [f"org.prpnas.bridge.{s}" for s in SUITES]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("suite", SUITES)
def test_junit_suite_passes(
    classpath: str, bundle_dirs: dict[str, Path], suite: str, kind: str
) -> None:
    bundle = f"-Dprp.bundle={bundle_dirs[kind]}"
    run = java(classpath, bundle, "org.junit.runner.JUnitCore", f"org.prpnas.bridge.{suite}")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    ran = re.search(r"^OK \((\d+) tests?\)$", run.stdout, re.MULTILINE)
    assert ran is not None and int(ran.group(1)) >= 2, run.stdout[-2000:]


@pytest.fixture(scope="module")
def table_of(
    classpath: str, bundle_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """The conformance table of a bundle kind, written now by the Python runtime (make_table.py)."""
    tables: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in tables:
            out = tmp_path_factory.mktemp("conformance") / "table.json"
            script = BRIDGE / "conformance" / "make_table.py"
            manifest = bundle_dirs[kind] / "manifest.json"
            subprocess.run(
                [sys.executable, str(script), "--manifest", str(manifest), "--out", str(out)],
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
            )
            tables[kind] = out
        return tables[kind]

    return make


@pytest.fixture(scope="module")
def table_file(table_of: Callable[[str], Path]) -> Path:
    """The conformance table of the shipped bundle."""
    return table_of("shipped")


@pytest.mark.parametrize("kind", [*KINDS, "front"])
def test_java_policies_and_runtime_agree_with_python_on_every_row(
    classpath: str, bundle_dirs: dict[str, Path], table_of: Callable[[str], Path], kind: str
) -> None:
    bundle, table_file = bundle_dirs[kind], table_of(kind)
    table = json.loads(table_file.read_text())
    names = {c["name"] for c in table["cases"]}
    assert {"battery", "schedule", "energy-budget", "fixed"} <= names
    run = java(classpath, "org.prpnas.bridge.ConformanceCheck", str(bundle), str(table_file))
    assert run.returncode == 0, run.stdout + run.stderr
    rows = sum(len(c["rows"]) for c in table["cases"])
    steps = sum(len(t["steps"]) for t in table["traces"])
    assert f"{rows} rows, 0 mismatches" in run.stdout
    assert f"{len(table['traces'])} traces, {steps} steps, 0 mismatches" in run.stdout
    # Every case covers the whole grid: each battery level and hour, from each path and none.
    manifest = read_manifest(bundle)
    for case in table["cases"]:
        grid = [{r[k] for r in case["rows"]} for k in range(3)]
        assert grid[2] == {None, *(p["id"] for p in manifest["paths"])}, case["name"]
        assert len(case["rows"]) == len(grid[0]) * len(grid[1]) * len(grid[2]), case["name"]
    assert rows > 10_000
    # The table is not degenerate: the grid reaches every level of the bundle's battery table,
    # and every level of its schedule that starts within the grid's hours.
    picks = {c["name"]: {r[3] for r in c["rows"]} for c in table["cases"]}
    assert picks["battery"] == {path for _, path in battery_levels(manifest)}
    last_h = max(r[1] for r in next(c for c in table["cases"] if c["name"] == "schedule")["rows"])
    assert picks["schedule"] == set(schedule_within(manifest, last_h + 1e-9))
    # Several paths each: the synthetic 15-level schedule every table holds, and on the synthetic
    # six-level front every policy family (a shipped ladder may have fewer levels).
    several = ["schedule-fast"]
    if kind == "front":
        assert len(battery_levels(manifest)) == len(FRONT_ACCURACY)
        several += ["battery", "schedule", "energy-budget-heavy"]
    for name in several:
        assert len(picks[name]) >= 4, name


def test_java_ladders_agree_with_python_on_random_fronts(classpath: str, table_file: Path) -> None:
    """Issue 16: on random fronts (ties, duplicates, dominated paths) the Java loader refuses the
    tables Python's refuses, and on the exporter's tables builds Python's ladder and picks
    Python's path at every battery level and hour."""
    table = json.loads(table_file.read_text())
    ladders = table["ladders"]
    run = java(classpath, "org.prpnas.bridge.ConformanceCheck", str(BUNDLE), str(table_file))
    assert run.returncode == 0, run.stdout + run.stderr
    refused = [c for c in ladders if c["refused"]]
    accepted = [c for c in ladders if not c["refused"]]
    rows = sum(len(r) for c in accepted for r in c["rows"].values())
    assert (
        f"{len(ladders)} ladders ({len(refused)} refused), {rows} rows, 0 mismatches" in run.stdout
    )
    # The fronts hold what the rule is about: dominated paths left out, ties in accuracy, both
    # objectives, both kinds of broken table.
    assert len(accepted) >= 200 and rows > 100_000
    assert sum(len(c["ladder"]) < len(c["manifest"]["paths"]) for c in accepted) >= 100
    assert sum(len(c["ladder"]) >= 3 for c in accepted) >= 50
    assert {c["manifest"]["objective"] for c in accepted} == {"energy", "latency"}
    assert any(c["name"].endswith("-all-paths") for c in refused)
    assert any(c["refused"] == ["manifest.policies.schedule.order"] for c in refused)
    for c in accepted:  # Python's own picks: draining, never a dearer or off-ladder path
        field = {"energy": "energy_mj", "latency": "latency_ms"}[c["manifest"]["objective"]]
        cost = {p["id"]: p[field] for p in c["manifest"]["paths"]}
        drain = [r[3] for r in c["rows"]["battery"][1:202]]
        assert set(drain) <= set(c["ladder"]), c["name"]
        assert all(cost[b] <= cost[a] for a, b in zip(drain, drain[1:], strict=False)), c["name"]


def test_java_ladders_follow_the_paired_tests_as_python_does(table_file: Path) -> None:
    """Issue 30: on random fronts with random `ladder_tests` records (passed and failed tests,
    malformed pair records, no record) the Java ladder is Python's `ladder(rungs, passed_pairs(m))`
    and the Java loader refuses the tables Python's refuses with Python's sentences. The Java run
    of test_java_ladders_agree_with_python_on_random_fronts checks every case of the table; this
    checks that the table holds what the rule is about."""
    table = json.loads(table_file.read_text())
    accepted = [c for c in table["ladders"] if not c["refused"]]
    refused = [c for c in table["ladders"] if c["refused"]]
    recorded = [c for c in accepted if isinstance(c["manifest"].get("ladder_tests"), dict)]
    plain = {
        c["name"]: ladder(rungs_of(c["manifest"]["paths"], c["manifest"]["objective"]))
        for c in accepted
    }
    # Both kinds of front, and tests that change the ladder on many of them.
    assert len(recorded) >= 200 and len(accepted) - len(recorded) >= 200
    assert all(
        c["ladder"] == plain[c["name"]] for c in accepted if passed_pairs(c["manifest"]) is None
    )
    changed = [c for c in recorded if c["ladder"] != plain[c["name"]]]
    assert len(changed) >= 40 and sum(len(c["ladder"]) >= 2 for c in changed) >= 10
    # Malformed pair records, and pairs that are not lists.
    shapes = [c["manifest"]["ladder_tests"].get("pairs") for c in recorded]
    assert sum(not isinstance(pairs, list) for pairs in shapes) >= 5
    assert (
        sum(
            any(
                not isinstance(p, dict) or not isinstance(p.get("more_accurate"), bool)
                for p in pairs
            )
            for pairs in shapes
            if isinstance(pairs, list)
        )
        >= 20
    )
    for c in recorded:  # every kept rung beat every cheaper kept rung
        beats = passed_pairs(c["manifest"])
        assert beats is not None
        assert all((u, d) in beats for k, u in enumerate(c["ladder"]) for d in c["ladder"][k + 1 :])
    # Refused for the test rule alone: the plain ladder where a test failed, one failed pair.
    untested = [c for c in refused if c["name"].endswith("-untested")]
    failed = [c for c in refused if c["name"].endswith("-failed-pair")]
    assert len(untested) >= 40 and len(failed) >= 40
    assert all(len(c["refused"]) == 2 for c in untested)
    assert all(c["refused"] == ["manifest.policies.schedule.order"] for c in failed)
    for c in untested + failed:
        assert all("(manifest.ladder_tests)" in e for e in c["errors"]), c["name"]


def test_conformance_check_reports_a_disagreement(
    classpath: str, table_file: Path, tmp_path: Path
) -> None:
    table = json.loads(table_file.read_text())
    ids = [p["id"] for p in read_manifest()["paths"]]
    assert len(ids) >= 2, f"a disagreement needs a second path; the bundle has {ids}"

    def another(pid: str) -> str:
        return next(p for p in ids if p != pid)

    battery = next(c for c in table["cases"] if c["name"] == "battery")
    row = next(r for r in battery["rows"] if r[0] == 50.0 and r[2] is None)
    row[3] = another(row[3])
    table["traces"][0]["paths"][5] = another(table["traces"][0]["paths"][5])
    # One accepted front said to be refused, one battery pick changed on another, and on a third
    # the test of its top rung against its cheapest failed: the Java loader must now refuse both
    # tables (two disagreements: which tables, and the sentences).
    accepted = [c for c in table["ladders"] if not c["refused"]]
    accepted[0]["refused"] = ["manifest.policies.battery.levels"]
    pick = accepted[1]["rows"]["battery"][0]
    pick[3] = "path_0" if pick[3] != "path_0" else "path_1"
    tested = next(
        c
        for c in accepted[2:]
        if len(c["ladder"]) >= 2 and isinstance(c["manifest"].get("ladder_tests"), dict)
    )
    top, cheapest = tested["ladder"][0], tested["ladder"][-1]
    for p in tested["manifest"]["ladder_tests"]["pairs"]:
        if isinstance(p, dict) and (p.get("path"), p.get("cheaper")) == (top, cheapest):
            p["more_accurate"] = False
    (tmp_path / "bad.json").write_text(json.dumps(table))
    run = java(
        classpath, "org.prpnas.bridge.ConformanceCheck", str(BUNDLE), str(tmp_path / "bad.json")
    )
    assert run.returncode == 1
    assert "rows, 1 mismatches" in run.stdout and "steps, 1 mismatches" in run.stdout
    assert "battery battery=50.0 hours=" in run.stdout
    assert "refused), " in run.stdout and "rows, 4 mismatches" in run.stdout
    assert f"{accepted[0]['name']} refused tables" in run.stdout
    assert f"{tested['name']} refused tables" in run.stdout
    assert f"{tested['name']} errors" in run.stdout


def program_methods() -> list[str]:
    """The method names of the real supernet.pte, read by ExecuTorch's own Python runtime."""
    try:
        import executorch.runtime as runtime
    except ImportError:
        _unavailable("executorch is not installed (pip install -e '.[train]')")
    return sorted(runtime.Runtime.get().load_program(str(BUNDLE / "supernet.pte")).method_names)


def copy_bundle(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(BUNDLE, target)
    return target


def test_manifest_naming_a_method_the_program_lacks_is_refused(
    classpath: str, tmp_path: Path
) -> None:
    methods = ",".join(program_methods())
    good = java(classpath, "org.prpnas.bridge.BundleCheck", str(BUNDLE), "--methods", methods)
    assert good.returncode == 0, good.stderr
    assert "every path's method is present" in good.stdout

    bundle = copy_bundle(tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    last = manifest["paths"][-1]
    last["method"] = "not_a_method"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    run = java(classpath, "org.prpnas.bridge.BundleCheck", str(bundle), "--methods", methods)
    assert run.returncode == 2
    lacks = f"the program lacks the method of manifest path {last['id']} (method 'not_a_method')"
    assert lacks in run.stderr
    assert "manifest.json and supernet.pte disagree" in run.stderr
    assert "export the bundle again" in run.stderr


def test_corrupt_or_newer_bundles_are_refused(classpath: str, tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    text = (bundle / "manifest.json").read_text()

    (bundle / "manifest.json").write_text(text[: len(text) // 3])
    run = java(classpath, "org.prpnas.bridge.BundleCheck", str(bundle))
    assert run.returncode == 2
    assert "manifest.json is damaged" in run.stderr and "export the bundle again" in run.stderr
    assert len(run.stderr) < 500  # the syntax error, not the whole file

    manifest = json.loads(text)
    manifest["schema_version"] = 7
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    run = java(classpath, "org.prpnas.bridge.BundleCheck", str(bundle))
    assert run.returncode == 2
    assert "schema_version 7 is newer than this library reads (2)" in run.stderr

    (bundle / "manifest.json").write_text(text)
    with (bundle / "supernet.pte").open("r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    run = java(classpath, "org.prpnas.bridge.BundleCheck", str(bundle))
    assert run.returncode == 2
    assert "supernet.pte is corrupt or truncated" in run.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_bundle_check_reports_the_bundle(
    classpath: str, bundle_dirs: dict[str, Path], kind: str
) -> None:
    bundle = bundle_dirs[kind]
    args = ("--battery", "35", "--hours", "11")
    run = java(classpath, "org.prpnas.bridge.BundleCheck", str(bundle), *args)
    assert run.returncode == 0, run.stderr
    m = read_manifest(bundle)
    assert f"manifest: {len(m['paths'])} paths, {len(m['files'])} files, sha256 verified" in (
        run.stdout
    )
    assert f"policy battery: {battery_level(m, 35)[1]} (" in run.stdout
    assert f"policy schedule: {schedule_pick(m, 11)} (" in run.stdout


class NullBackend:
    name = "null"

    def run(self, path_id: str, x: np.ndarray) -> np.ndarray:
        return np.zeros((x.shape[0], 10), dtype=np.float32)


def test_image_preprocessing_matches_the_python_runtime_bit_for_bit(
    classpath: str, tmp_path: Path
) -> None:
    images = np.random.default_rng(3).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    (tmp_path / "images.u8").write_bytes(images.tobytes())
    run = java(
        classpath,
        "org.prpnas.bridge.PrepareDump",
        str(BUNDLE),
        str(tmp_path / "images.u8"),
        "3",
        str(tmp_path / "x.f32"),
    )
    assert run.returncode == 0, run.stderr
    java_x = np.fromfile(tmp_path / "x.f32", dtype="<f4").reshape(3, 3, 32, 32)
    model = AdaptiveModel(
        BUNDLE, policy="fixed", battery=PushedBattery(None), backend=NullBackend()
    )
    python_x = model.prepare(images)
    assert python_x.dtype == np.float32
    assert np.array_equal(java_x.view(np.uint32), python_x.view(np.uint32))


def test_executorch_engine_is_compiled_against_the_pinned_classes_jar(classpath: str) -> None:
    jar = BUILD / "cache" / "classes.jar"
    pinned = re.search(
        r'^CLASSES_JAR_SHA256="([0-9a-f]{64})"$', (BRIDGE / "build.sh").read_text(), re.M
    )
    assert pinned is not None
    if not jar.is_file():
        _unavailable(
            "ExecuTorch's classes.jar was not fetched (built with PRP_BRIDGE_SKIP_EXECUTORCH=1?)"
        )
    assert hashlib.sha256(jar.read_bytes()).hexdigest() == pinned.group(1)
    javap = shutil.which("javap")
    if javap is None:
        _unavailable("no javap on PATH (a JDK is needed)")
    code = subprocess.run(
        [
            javap,
            "-c",
            "-p",
            "-cp",
            f"{BUILD / 'prp-bridge.jar'}:{jar}",
            "org.prpnas.bridge.ExecuTorchEngine",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Compiled against ExecuTorch's real API: every method loaded at open, run by name.
    for member in (
        "Module.load:",
        "Module.getMethods:",
        "Module.loadMethod:",
        "Module.execute:",
        "Module.close:",
    ):
        assert f"org/pytorch/executorch/{member}" in code, member


def battery_walk(manifest: dict[str, Any]) -> list[float | None]:
    """Battery readings that walk the battery table down level by level (the middle of each),
    then back up through each hysteresis band (inside it: stay; past it: up one level), then no
    reading, then nearly full."""
    levels = battery_levels(manifest, at_least=2)
    margin = float(manifest["policies"]["battery"].get("hysteresis_pct", 3.0))
    t = [threshold for threshold, _ in levels]
    readings: list[float | None] = [100.0]
    readings += [(t[i - 1] + t[i]) / 2 for i in range(1, len(t))]
    for i in range(len(t) - 1, 0, -1):
        readings += [min(t[i - 1] + margin / 2, 100.0), min(t[i - 1] + margin + 0.5, 100.0)]
    return [*readings, None, 90.0]


@pytest.fixture(scope="module")
def native_library(classpath: str) -> Path:
    """libprp_native.so as build.sh built it (native/build_native.sh), not older than its source."""
    library = BUILD / "native" / "libprp_native.so"
    if not library.is_file():
        _unavailable(f"the native engine is not built ({library.relative_to(ROOT)} missing)")
    native = BRIDGE / "native"
    sources = [native / "prp_native.cpp", native / "build_native.sh"]
    if any(p.stat().st_mtime > library.stat().st_mtime for p in sources):
        _unavailable(f"{library.relative_to(ROOT)} is older than its sources")
    try:
        import executorch.runtime  # noqa: F401 - the Python side runs the same program
    except ImportError:
        _unavailable("executorch is not installed (the Python runtime's backend)")
    return library


@pytest.mark.parametrize("kind", KINDS)
def test_runtime_on_native_engine_matches_the_python_runtime_end_to_end(
    classpath: str, native_library: Path, tmp_path: Path, bundle_dirs: dict[str, Path], kind: str
) -> None:
    """exported/smoke loaded by the Java runtime (manifest validation, sha256 of every file),
    run through NativeEngine on real 8-bit CIFAR-10 images (preprocessed by the Java runtime),
    against AdaptiveModel on the ExecuTorch backend with the same images, pins and battery levels:
    same path for every call, same switch log, same labels, and logits equal to the bit."""
    from prp.trainer.datasets import load_dataset

    bundle = bundle_dirs[kind]
    images = np.ascontiguousarray(load_dataset("default", limit_per_class=1).test.images)
    assert images.dtype == np.uint8 and images.shape == (10, 32, 32, 3)
    (tmp_path / "images.u8").write_bytes(images.tobytes())
    # Down through every level of the table, back up through every hysteresis band, no reading.
    levels = battery_walk(read_manifest(bundle))
    run = java(
        classpath,
        f"-Dprp.native.lib={native_library}",
        "org.prpnas.bridge.NativeRuntimeCheck",
        str(bundle),
        str(tmp_path / "images.u8"),
        str(len(images)),
        str(tmp_path / "out"),
        *("none" if level is None else str(level) for level in levels),
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["engine"] == "NativeEngine"

    def java_logits(name: str) -> np.ndarray:
        return np.fromfile(tmp_path / "out" / f"{name}.f32", dtype="<f4").reshape(len(images), -1)

    battery = PushedBattery(None)
    model = AdaptiveModel(
        bundle, policy="battery", battery=battery, backend="executorch", clock=lambda: 0.0
    )
    assert report["paths"] == model.bundle.ids
    assert report["initial_path"] == model.current
    # The same libexecutorch, kernels and XNNPACK delegate run the same program on the same
    # normalised bits, one image at a time in both runtimes: identical logits (measured max
    # |difference| 0.0), not merely close.
    for i, level in enumerate(levels):
        battery.push(level)
        python = model.predict(images)
        call = report["battery"][i]
        assert call["level"] == level
        assert call["path"] == python.path, f"battery {level}"
        assert call["labels"] == python.labels.tolist(), f"battery {level}"
        np.testing.assert_array_equal(java_logits(f"battery_{i}"), python.logits)
    ladder = [lv["path"] for lv in model.bundle.data["policies"]["battery"]["levels"]]
    assert {c["path"] for c in report["battery"]} == set(ladder)  # every level of the table
    for path in model.bundle.ids:
        model.switch_to(path, "check")
        python = model.predict(images)
        assert python.path == path and report["pinned"][path]["path"] == path
        assert report["pinned"][path]["labels"] == python.labels.tolist(), path
        np.testing.assert_array_equal(java_logits(path), python.logits)
    switches = [[s.from_path, s.to_path, s.battery_pct] for s in model.switches]
    assert report["switches"] == switches
    # Real images, a real model: not a constant output.
    assert len(set(report["pinned"][model.bundle.ids[0]]["labels"])) >= 2


def test_measured_costs_give_the_python_runtimes_paths(
    classpath: str, bundle_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """A calibration the Python runtime writes, read by the bridge (`BundleCheck
    --calibration`): the battery and schedule policies on the measured costs choose the paths
    Python's `measured_policy` chooses, at every threshold of both tables and around them; a
    calibration of another bundle is refused in one line and the manifest's costs are used."""
    from prp.runtime import Bundle
    from prp.runtime.calibration import (
        LATENCY_X_POWER,
        Calibration,
        PathCost,
        manifest_sha256,
        save_calibration,
    )
    from prp.runtime.measured_costs import measured_manifest, measured_policy
    from prp.runtime.policies import Context

    bundle = Bundle.load(bundle_dirs["front"])
    m = bundle.data
    field = "energy_mj" if m["objective"] == "energy" else "latency_ms"
    costs = {p["id"]: float(p[field]) for p in m["paths"]}
    rungs = ladder(rungs_of(m["paths"], m["objective"]))
    costs[rungs[2]] = (costs[rungs[0]] + costs[rungs[1]]) / 2  # costlier than the rung above
    cal = Calibration(
        manifest_sha256=manifest_sha256(bundle),
        bundle="front",
        backend="test",
        device={},
        created="",
        energy_source=LATENCY_X_POWER,
        energy_note="",
        power_w=1.0,
        paths={pid: PathCost(c, c, c, 10, c, None) for pid, c in costs.items()},
    )
    path = save_calibration(cal, tmp_path / "cal.json")
    measured = measured_manifest(m, cal)
    assert rungs[2] in measured.left
    levels = {lv["min_battery_pct"] for lv in m["policies"]["battery"]["levels"]}
    levels |= {lv["min_battery_pct"] for lv in measured.manifest["policies"]["battery"]["levels"]}
    for t in sorted(levels):
        for pct in (t - 0.01, t, t + 0.01):
            if not 0 <= pct <= 100:
                continue
            hours = pct / 5  # 0-20 h: every slot of the schedule
            run = java(
                classpath,
                "org.prpnas.bridge.BundleCheck",
                str(bundle.directory),
                "--battery",
                repr(pct),
                "--hours",
                repr(hours),
                "--calibration",
                str(path),
            )
            assert run.returncode == 0, run.stderr
            assert "costs: measured (test" in run.stdout
            for name in ("battery", "schedule"):
                want = measured_policy(m, cal, name).decide(Context(pct, hours, None)).path
                assert f"policy {name}: {want} (" in run.stdout, (name, pct, run.stdout)
    foreign = json.loads(path.read_text())
    foreign["manifest_sha256"] = "0" * 64
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    run = java(
        classpath,
        "org.prpnas.bridge.BundleCheck",
        str(bundle.directory),
        "--battery",
        "50",
        "--calibration",
        str(tmp_path / "foreign.json"),
    )
    assert run.returncode == 0, run.stderr
    line = [s for s in run.stdout.splitlines() if s.startswith("costs:")]
    assert len(line) == 1 and "another bundle" in line[0] and "manifest's costs" in line[0]
    assert f"policy battery: {battery_level(m, 50)[1]} (" in run.stdout
