"""The Android bridge's Java library (android_bridge/), built by android_bridge/build.sh.

The JUnit suites run here; the Java policies and runtime are checked against a table the Python
runtime writes at test time; bundle errors are checked through the bridge's BundleCheck tool on
copies of the shipped bundle, with the method names of the real supernet.pte. Without a build the
tests are skipped ("run android_bridge/build.sh"); CI sets PRP_REQUIRE_ANDROID_BRIDGE=1, which
makes them fail instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from prp.runtime import AdaptiveModel, PushedBattery

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = ROOT / "android_bridge"
BUILD = BRIDGE / "build"
BUNDLE = ROOT / "exported" / "default"
SUITES = [
    "BatteryReaderTest",
    "BundleFilesTest",
    "InputSpecTest",
    "LadderTest",
    "ManifestTest",
    "PoliciesTest",
    "SupernetRuntimeTest",
]


def _unavailable(message: str) -> None:
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


def test_every_junit_suite_is_built(classpath: str) -> None:
    built = (BUILD / "junit-classes.txt").read_text().split()
    assert built == [f"org.prpnas.bridge.{s}" for s in SUITES]


@pytest.mark.parametrize("suite", SUITES)
def test_junit_suite_passes(classpath: str, suite: str) -> None:
    run = java(classpath, "org.junit.runner.JUnitCore", f"org.prpnas.bridge.{suite}")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    ran = re.search(r"^OK \((\d+) tests?\)$", run.stdout, re.MULTILINE)
    assert ran is not None and int(ran.group(1)) >= 2, run.stdout[-2000:]


@pytest.fixture(scope="module")
def table_file(classpath: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The conformance table, written now by the Python runtime (make_table.py)."""
    out = tmp_path_factory.mktemp("conformance") / "table.json"
    script = BRIDGE / "conformance" / "make_table.py"
    manifest = BUNDLE / "manifest.json"
    subprocess.run(
        [sys.executable, str(script), "--manifest", str(manifest), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out


def test_java_policies_and_runtime_agree_with_python_on_every_row(
    classpath: str, table_file: Path
) -> None:
    table = json.loads(table_file.read_text())
    names = {c["name"] for c in table["cases"]}
    assert {"battery", "schedule", "energy-budget", "fixed"} <= names
    run = java(classpath, "org.prpnas.bridge.ConformanceCheck", str(BUNDLE), str(table_file))
    assert run.returncode == 0, run.stdout + run.stderr
    rows = sum(len(c["rows"]) for c in table["cases"])
    steps = sum(len(t["steps"]) for t in table["traces"])
    assert f"{rows} rows, 0 mismatches" in run.stdout
    assert f"{len(table['traces'])} traces, {steps} steps, 0 mismatches" in run.stdout
    assert rows > 100_000
    # The table is not degenerate: the grid makes each policy family choose several paths.
    for name in ("battery", "schedule", "energy-budget-heavy", "schedule-fast"):
        case = next(c for c in table["cases"] if c["name"] == name)
        assert len({r[3] for r in case["rows"]}) >= 4, name


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


def test_conformance_check_reports_a_disagreement(
    classpath: str, table_file: Path, tmp_path: Path
) -> None:
    table = json.loads(table_file.read_text())
    battery = next(c for c in table["cases"] if c["name"] == "battery")
    row = next(r for r in battery["rows"] if r[0] == 50.0 and r[2] is None)
    row[3] = "path_4" if row[3] != "path_4" else "path_0"
    table["traces"][0]["paths"][5] = (
        "path_3" if table["traces"][0]["paths"][5] != "path_3" else "path_1"
    )
    # One accepted front said to be refused, one battery pick changed on another.
    accepted = [c for c in table["ladders"] if not c["refused"]]
    accepted[0]["refused"] = ["manifest.policies.battery.levels"]
    pick = accepted[1]["rows"]["battery"][0]
    pick[3] = "path_0" if pick[3] != "path_0" else "path_1"
    (tmp_path / "bad.json").write_text(json.dumps(table))
    run = java(
        classpath, "org.prpnas.bridge.ConformanceCheck", str(BUNDLE), str(tmp_path / "bad.json")
    )
    assert run.returncode == 1
    assert "rows, 1 mismatches" in run.stdout and "steps, 1 mismatches" in run.stdout
    assert "battery battery=50.0 hours=" in run.stdout
    assert "refused), " in run.stdout and "rows, 2 mismatches" in run.stdout
    assert f"{accepted[0]['name']} refused tables" in run.stdout


def program_methods() -> list[str]:
    """The method names of the real supernet.pte, read by ExecuTorch's own Python runtime."""
    runtime = pytest.importorskip("executorch.runtime")
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
    manifest["paths"][4]["method"] = "path_9"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    run = java(classpath, "org.prpnas.bridge.BundleCheck", str(bundle), "--methods", methods)
    assert run.returncode == 2
    assert "the program lacks the method of manifest path path_4 (method 'path_9')" in run.stderr
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


def test_bundle_check_reports_the_shipped_bundle(classpath: str) -> None:
    run = java(classpath, "org.prpnas.bridge.BundleCheck", str(BUNDLE), "--battery", "35")
    assert run.returncode == 0, run.stderr
    assert "manifest: 5 paths, 7 files, sha256 verified" in run.stdout
    assert "policy battery: path_3" in run.stdout
    assert "policy schedule: path_0" in run.stdout


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
        pytest.skip("no javap on PATH")
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


def test_runtime_on_native_engine_matches_the_python_runtime_end_to_end(
    classpath: str, native_library: Path, tmp_path: Path
) -> None:
    """exported/default loaded by the Java runtime (manifest validation, sha256 of every file),
    run through NativeEngine on real 8-bit CIFAR-10 images (preprocessed by the Java runtime),
    against AdaptiveModel on the ExecuTorch backend with the same images, pins and battery levels:
    same path for every call, same switch log, same labels, and logits equal to the bit."""
    from prp.trainer.datasets import load_dataset

    images = np.ascontiguousarray(load_dataset("default", limit_per_class=1).test.images)
    assert images.dtype == np.uint8 and images.shape == (10, 32, 32, 3)
    (tmp_path / "images.u8").write_bytes(images.tobytes())
    # Thresholds 80/60/40/20 %, hysteresis 3 %: inside and past the hysteresis band both ways,
    # no reading, and back up.
    levels = [100.0, 79.0, 76.0, 50.0, 62.0, 64.0, 35.0, 10.0, 22.0, 24.0, None, 90.0]
    run = java(
        classpath,
        f"-Dprp.native.lib={native_library}",
        "org.prpnas.bridge.NativeRuntimeCheck",
        str(BUNDLE),
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
        BUNDLE, policy="battery", battery=battery, backend="executorch", clock=lambda: 0.0
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
    assert len(set(report["pinned"]["path_0"]["labels"])) >= 5
