"""`NativeEngine` (JNI over ExecuTorch's C++ Module) on the shipped bundle, against the Python
runtime.

The native library is built from `android_bridge/native/` into `android_bridge/build/native`
by `build_native.sh` (about 10 s, no network) whenever it is missing or older than its sources.
Where g++, a JDK or executorch is missing the tests are skipped, unless
PRP_REQUIRE_ANDROID_BRIDGE=1, which makes them fail instead. The Java side is driven by
`NativeEngineCheck` (a test-only main) and reports in JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
from prp.runtime import AdaptiveModel, Bundle, PushedBattery
from prp.runtime.backends import make_backend

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "exported" / "smoke"
PTE = DEFAULT / "supernet.pte"
NATIVE = ROOT / "android_bridge" / "native"
BUILD = ROOT / "android_bridge" / "build" / "native"
PACKAGE = Path("org", "prpnas", "bridge")
SOURCES = [
    NATIVE / "prp_native.cpp",
    NATIVE / "build_native.sh",
    NATIVE / "java" / PACKAGE / "NativeEngine.java",
    NATIVE / "test" / "java" / PACKAGE / "NativeEngineCheck.java",
    ROOT / "android_bridge" / "src" / "main" / "java" / PACKAGE / "InferenceEngine.java",
]
OUTPUTS = [BUILD / "libprp_native.so", BUILD / "classes", BUILD / "test-classes"]


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("PRP_REQUIRE_ANDROID_BRIDGE"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def native() -> Path:
    """The build folder, (re)built when missing or older than its sources."""
    for tool in ("g++", "javac", "java"):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} not found: the native engine needs g++ and a JDK")
    if importlib.util.find_spec("executorch") is None:
        _unavailable("executorch is not installed")
    newest_source = max(p.stat().st_mtime for p in SOURCES)
    if not all(p.exists() and p.stat().st_mtime >= newest_source for p in OUTPUTS):
        done = subprocess.run(
            ["bash", str(NATIVE / "build_native.sh"), str(BUILD)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"build_native.sh failed:\n{done.stderr[-4000:]}"
    return BUILD


def check(build: Path, *args: str, library: Path | None = None, jvm: tuple[str, ...] = ()) -> dict:
    """Runs NativeEngineCheck and returns its JSON report."""
    classpath = os.pathsep.join([str(build / "classes"), str(build / "test-classes")])
    lib = library or build / "libprp_native.so"
    done = subprocess.run(
        ["java", f"-Dprp.native.lib={lib}", *jvm, "-cp", classpath]
        + ["org.prpnas.bridge.NativeEngineCheck", *args],
        capture_output=True,
        text=True,
        errors="replace",  # ExecuTorch logs a corrupt program's raw bytes
        timeout=180,
    )
    assert done.returncode == 0, f"java exited with {done.returncode}:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    """One real CIFAR-10 test image per class (the subset shipped with the trainer), normalised
    by the runtime's own `prepare`, plus two rows of random normalised values."""
    from prp.trainer.datasets import load_dataset

    images = load_dataset(None, limit_per_class=1).test.images
    model = AdaptiveModel(DEFAULT, battery=PushedBattery(100), backend="onnxruntime")
    real = model.prepare(images)
    noise = np.random.default_rng(7).standard_normal((2, 3, 32, 32)).astype(np.float32)
    return np.ascontiguousarray(np.concatenate([real, noise]), dtype=np.float32)


def java_logits(
    build: Path, x: np.ndarray, out: Path, library: Path | None = None, jvm: tuple[str, ...] = ()
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    x.astype("<f4").tofile(out / "input.f32")
    report = check(
        build,
        "run",
        str(PTE),
        str(out / "input.f32"),
        str(len(x)),
        str(out),
        library=library,
        jvm=jvm,
    )
    assert report["batch_equals_rows"], "a batch [N, 3, 32, 32] must give the rows' logits"
    report["logits"] = {
        m: np.fromfile(out / f"{m}.f32", dtype="<f4").reshape(len(x), -1) for m in report["methods"]
    }
    return report


def test_every_path_matches_the_python_runtime(native: Path, inputs: np.ndarray, tmp_path) -> None:
    bundle = Bundle.load(DEFAULT)
    report = java_logits(native, inputs, tmp_path)
    assert report["methods"] == sorted(p["method"] for p in bundle.paths)
    assert report["input_shape"] == bundle.data["input"]["shape"]
    executorch = make_backend(bundle, "executorch")
    onnx = make_backend(bundle, "onnxruntime")
    for path in bundle.paths:
        java = report["logits"][path["method"]]
        assert java.shape == (len(inputs), len(bundle.data["classes"]))
        # The same libexecutorch, optimized kernels and XNNPACK delegate (the wheel's shared
        # libraries) run the same program on the same bits in both processes, so the logits are
        # required to be identical, not merely close: measured max |difference| 0.0.
        np.testing.assert_array_equal(java, executorch.run(path["id"], inputs))
        # ONNX Runtime computes with other kernels; the bound of the runtime's own tests.
        np.testing.assert_allclose(java, onnx.run(path["id"], inputs), rtol=0, atol=1e-4)


def test_xnnpack_weight_cache_is_on_by_default_and_changes_no_logit(
    native: Path, inputs: np.ndarray, tmp_path
) -> None:
    """With the cache, methods share packed weights by name (bench/weight_cache.py measures the
    memory); every logit stays what each method computes with weights of its own."""
    on = java_logits(native, inputs, tmp_path / "on")
    off = java_logits(native, inputs, tmp_path / "off", jvm=("-Dprp.weightCache=off",))
    assert on["weight_cache"] is True and off["weight_cache"] is False
    for method, logits in on["logits"].items():
        np.testing.assert_array_equal(logits, off["logits"][method])


def test_active_residency_loads_one_method_at_a_time_and_changes_no_logit(
    native: Path, inputs: np.ndarray, tmp_path
) -> None:
    """With `Residency.ACTIVE` each switch unloads the method last run and loads the next (the
    memory it saves: bench/weight_cache.py); every method computes what it computes loaded up
    front."""
    every = java_logits(native, inputs, tmp_path / "all")
    active = java_logits(native, inputs, tmp_path / "active", jvm=("-Dprp.residency=active",))
    assert every["residency"] == "ALL" and active["residency"] == "ACTIVE"
    assert active["methods"] == every["methods"]
    for method, logits in every["logits"].items():
        np.testing.assert_array_equal(active["logits"][method], logits)


def test_with_the_weight_cache_a_program_named_by_counter_is_open_alone(
    native: Path, tiny_bundles: dict[str, Path]
) -> None:
    """ExecuTorch 1.5.1's cache keys packed weights by name only, and bundles exported before
    content names name their weights alike (`w0`, ...): two such programs open at once ran each
    other's weights (wrong logits, NaN, or a crash in XNNPACK). With the cache on, such a
    program is opened only while no other is open, and no other while it is, in one message
    naming it and the fix; closing it lets the next load; with the cache off, all stay open."""
    counter0, counter1, fresh = (
        str(tiny_bundles[k] / "supernet.pte") for k in ("counter0", "counter1", "seed0")
    )
    for first, second, counted in (
        (counter0, counter1, counter1),
        (counter0, fresh, counter0),
        (fresh, counter0, counter0),
    ):
        on = check(native, "together", first, second)
        assert on["weight_cache"] is True and on["results"][0] == "ok"
        refused = on["results"][1]
        assert refused.startswith("java.lang.IllegalStateException: cannot open"), refused
        assert f"and {counted} names its weights by something other than their bytes" in refused
        assert "(e.g. 'w0'" in refused and "export that bundle again" in refused
        assert "setWeightCache(false)" in refused
        assert on["after_closing"].startswith("ok")
        off = check(native, "together", first, second, jvm=("-Dprp.weightCache=off",))
        assert off["weight_cache"] is False and off["results"] == ["ok", "ok"]


class CountedKeys:
    """How prp-export named weights before content names: `w0`, `w1`, ... in order of first
    appearance, alike in every bundle (what `lowering.pte._ContentKeys` replaced)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def __call__(self, digest: str) -> str:
        return self.names.setdefault(digest, f"w{len(self.names)}")


@pytest.fixture(scope="module")
def tiny_bundles(tmp_path_factory: pytest.TempPathFactory, data) -> dict[str, Path]:
    """Tiny bundles of trained runs of seeds 0 and 1 (different weights): `seed0`, `seed1`,
    exported now, so their weights are named by their bytes; `seed0_top2`, the seed-0 run's top
    2 paths (the same bytes, so the same names, as the seed-0 bundle's); and `counter0`,
    `counter1`, the same runs exported with the names of older bundles (`CountedKeys`)."""
    from dataclasses import replace

    import prp.trainer.lowering.pte as pte
    from prp.trainer.config import preset
    from prp.trainer.export import export_bundle
    from prp.trainer.train import Trainer

    out = tmp_path_factory.mktemp("tiny-bundles")
    bundles = {}
    for seed in (0, 1):
        run = out / f"run{seed}"
        trainer = Trainer(replace(preset("tiny"), seed=seed), run, data=data)
        trainer.write_front(trainer.run())
        bundles[f"seed{seed}"] = export_bundle(run, out / f"seed{seed}", top=3, data=data)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pte, "_ContentKeys", CountedKeys)
            bundles[f"counter{seed}"] = export_bundle(run, out / f"counter{seed}", top=3, data=data)
    bundles["seed0_top2"] = export_bundle(out / "run0", out / "seed0_top2", top=2, data=data)
    return bundles


def test_programs_named_by_content_are_open_together_each_running_its_own_weights(
    native: Path, inputs: np.ndarray, tiny_bundles: dict[str, Path], tmp_path
) -> None:
    """With the cache on, programs whose weights are named by their bytes load side by side:
    two different bundles, and a third that shares the first's weights (the same names, so the
    same packed weights in the cache). Each method's logits are the Python runtime's for its own
    bundle, bit for bit, and stay so after the first program is closed."""
    from prp.trainer.lowering import pte_named_data

    kinds = ["seed0", "seed1", "seed0_top2"]
    ptes = [tiny_bundles[k] / "supernet.pte" for k in kinds]
    names = {k: set(pte_named_data(p)) for k, p in zip(kinds, ptes, strict=True)}
    assert names["seed0_top2"] <= names["seed0"]  # the case of one packed weight, two programs
    assert names["seed0"] != names["seed1"]
    inputs.astype("<f4").tofile(tmp_path / "input.f32")
    report = check(
        native,
        "open-run",
        str(tmp_path / "input.f32"),
        str(len(inputs)),
        str(tmp_path),
        *map(str, ptes),
    )
    assert report["weight_cache"] is True and report["same_after_closing_first"] is True
    logits = {}
    for k, (kind, methods) in enumerate(zip(kinds, report["methods"], strict=True)):
        bundle = Bundle.load(tiny_bundles[kind])
        assert methods == sorted(p["method"] for p in bundle.paths)
        python = make_backend(bundle, "executorch")
        for path in bundle.paths:
            java = np.fromfile(tmp_path / str(k) / f"{path['method']}.f32", dtype="<f4")
            logits[kind, path["id"]] = java.reshape(len(inputs), -1)
            np.testing.assert_array_equal(logits[kind, path["id"]], python.run(path["id"], inputs))
    assert not np.array_equal(logits["seed0", "path_0"], logits["seed1", "path_0"])


def method_ids() -> list[str]:
    """The program's methods, as the bundle's manifest lists them (one per path)."""
    return [p["method"] for p in json.loads((DEFAULT / "manifest.json").read_text())["paths"]]


def test_misuse_gives_clear_errors(native: Path) -> None:
    report = check(native, "errors", str(PTE))
    iae, ise = "java.lang.IllegalArgumentException: ", "java.lang.IllegalStateException: "
    known = f"the program has: {', '.join(method_ids())}"
    assert report["unknown_method"] == f"{iae}unknown method 'path_99'; {known}"
    assert report["input_shape_unknown"] == f"{iae}unknown method 'nope'; {known}"
    assert report["wrong_size"] == f"{iae}input has 3071 values; shape [1, 3, 32, 32] needs 3072"
    takes = "method path_0 takes float32 [1, 3, 32, 32] (or a batch [N, ...] of such rows)"
    assert report["wrong_shape"] == f"{iae}{takes}; got shape [1, 3, 31, 33]"
    assert report["wrong_rank"] == f"{iae}{takes}; got shape [3072]"
    assert report["null_input"].startswith(iae)
    assert report["still_runs"] == "ok 10 values"  # a refused call leaves the engine usable
    closed = f"{ise}NativeEngine for {PTE} is closed"
    assert report["after_close"] == closed and report["input_shape_after_close"] == closed


def corrupted(tmp_path: Path, offset: int, length: int) -> Path:
    """A copy of the program with `length` random bytes written at `offset`."""
    data = bytearray(PTE.read_bytes())
    rng = np.random.default_rng(offset)
    data[offset : offset + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    path = tmp_path / f"corrupt_{offset}.pte"
    path.write_bytes(bytes(data))
    return path


def test_corrupt_and_missing_programs_are_refused(native: Path, tmp_path) -> None:
    truncated = tmp_path / "truncated.pte"
    truncated.write_bytes(PTE.read_bytes()[: PTE.stat().st_size * 2 // 3])
    tiny = tmp_path / "tiny.pte"
    tiny.write_bytes(b"not a program\n")
    absent = tmp_path / "absent.pte"
    manifest = DEFAULT / "manifest.json"
    cannot = "java.io.IOException: cannot load ExecuTorch program "
    expected = {
        str(truncated): f"{cannot}{truncated}: Error::InvalidProgram (0x23): not a valid "
        "ExecuTorch program (truncated or corrupt file?)",
        str(tiny): f"{cannot}{tiny}: Error::InvalidArgument",
        str(manifest): f"{cannot}{manifest}: Error::InvalidProgram",
        str(absent): f"java.io.FileNotFoundException: no ExecuTorch program at {absent}",
        str(PTE): f"ok [{', '.join(method_ids())}]",
    }
    report = check(native, "open", *expected)
    for path, result in expected.items():
        assert report[path].startswith(result), (path, report[path])

    # Random bytes over the program's flatbuffer (its length is in the file's extended header)
    # and over its XNNPACK blobs and weights: the file is refused with an IOException or, where
    # only weights changed, loads; the process never crashes (it did, on the flatbuffer, before
    # the loader's verifier was turned on; a crash here is a non-zero exit of the JVM, which
    # `check` reports). Weights cannot be checked by the runtime: that is what the manifest's
    # sha256 is for; the flatbuffer is, so most corruptions there are refused.
    head = PTE.read_bytes()[:32]
    assert head[4:8] == b"ET12" and head[8:12] == b"eh00", head  # the format this test knows
    program = int.from_bytes(head[16:24], "little")  # flatbuffer bytes, from offset 0
    size = PTE.stat().st_size
    in_program = list(range(0, program - 32, max(program // 30, 1)))
    offsets = in_program + list(range(program, size - 64, max((size - program) // 50, 1)))
    report = check(native, "open", *(str(corrupted(tmp_path, o, 32)) for o in offsets))
    results = list(report.values())
    assert len(results) == len(offsets)
    assert all(r.startswith(("java.io.IOException: cannot load ", "ok ")) for r in results)
    refused = [r.startswith("java.io.IOException") for r in results[: len(in_program)]]
    assert sum(refused) >= len(in_program) // 2, sum(refused)


@pytest.mark.parametrize("residency", ["all", "active"])
def test_concurrent_runs_equal_single_threaded_ones(
    native: Path, inputs: np.ndarray, tmp_path, residency: str
) -> None:
    """Threads calling the five methods at once; with residency active every call of another
    method than the last switches the loaded one under the others' feet."""
    x = inputs[:4]
    x.astype("<f4").tofile(tmp_path / "input.f32")
    threads, rounds = 8, 10
    report = check(
        native,
        "threads",
        str(PTE),
        str(tmp_path / "input.f32"),
        "4",
        "8",
        "10",
        jvm=(f"-Dprp.residency={residency}",),
    )
    assert report["failures"] == []
    assert report["calls"] == report["expected_calls"] == threads * rounds * 5 * len(x)
    assert report["mismatches"] == 0
    # close() while every thread is running: runs in flight finish with correct results, later
    # ones get IllegalStateException, and nothing else happens.
    assert report["close_race_failures"] == [] and report["close_race_wrong_results"] == 0
    assert report["close_race_closed_errors"] == threads


def test_library_needs_only_the_executorch_runtime(native: Path) -> None:
    if shutil.which("ldd") is None:
        _unavailable("ldd not found")
    listing = subprocess.run(
        ["ldd", str(native / "libprp_native.so")], capture_output=True, text=True, check=True
    ).stdout
    assert "not found" not in listing
    for lib in ("libexecutorch.so", "libexecutorch_kernels_optimized.so"):
        assert lib in listing
    assert "libexecutorch_backend_xnnpack.so" in listing
    assert "libtorch" not in listing and "libpython" not in listing


def test_cmake_desktop_build_gives_the_same_logits(
    native: Path, inputs: np.ndarray, tmp_path
) -> None:
    if shutil.which("cmake") is None:
        _unavailable("cmake not found (pip install cmake, or the system package)")
    import executorch

    root = next(iter(executorch.__path__))
    build = tmp_path / "cmake"
    for command in (
        ["cmake", "-S", str(NATIVE), "-B", str(build), f"-DEXECUTORCH_ROOT={root}"],
        ["cmake", "--build", str(build)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    x = inputs[:3]
    with_cmake = java_logits(native, x, tmp_path / "a", library=build / "libprp_native.so")
    with_script = java_logits(native, x, tmp_path / "b")
    for method, logits in with_script["logits"].items():
        np.testing.assert_array_equal(with_cmake["logits"][method], logits)
