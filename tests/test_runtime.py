"""The runtime on the shipped bundle: no torch, policies, thread safety, bad input."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from bundle_variants import (
    KINDS,
    SMOKE,
    battery_level,
    battery_levels,
    battery_pick,
    bundle_of,
    read_manifest,
    schedule_order,
    schedule_pick,
)
from prp.runtime import (
    AdaptiveModel,
    BatteryPolicy,
    Bundle,
    BundleError,
    Context,
    EnergyBudgetPolicy,
    FixedPolicy,
    InputError,
    PolicyError,
    PowerModel,
    PsutilBattery,
    PushedBattery,
    SchedulePolicy,
    SysfsBattery,
    policy_from_manifest,
)


@pytest.fixture(scope="module", params=KINDS)
def bundle_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped bundle, and the same bundle with the exporter's ladder tables (issue 16)."""
    return bundle_of(request.param, tmp_path_factory)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_runtime_works_where_torch_cannot_be_imported(bundle_dir: Path) -> None:
    manifest = read_manifest(bundle_dir)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        import prp.runtime as rt
        m = rt.AdaptiveModel({str(bundle_dir)!r}, battery=rt.PushedBattery(90), backend="auto")
        p = m.predict(np.zeros((2, 32, 32, 3), dtype=np.uint8))
        assert m.backend.name == "onnxruntime", m.backend.name
        assert "torch" not in [k for k, v in sys.modules.items() if v is not None]
        assert not any(k.startswith("prp.trainer") for k in sys.modules)
        print("ok", p.path, p.logits.shape)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    expected = f"ok {battery_pick(manifest, 90)} (2, {len(manifest['classes'])})"
    assert expected in out.stdout


def test_battery_policy_levels_and_hysteresis() -> None:
    policy = BatteryPolicy(((80, "a"), (50, "b"), (0, "c")), hysteresis_pct=3)
    assert policy.decide(Context(None, 0, None)).path == "a"
    assert policy.decide(Context(100, 0, None)).path == "a"
    assert policy.decide(Context(79.9, 0, "a")).path == "b"
    assert policy.decide(Context(20, 0, "b")).path == "c"
    # Charging back over 50 % is not enough to leave c: it takes 53 %.
    assert policy.decide(Context(51, 0, "c")).path == "c"
    assert policy.decide(Context(53, 0, "c")).path == "b"
    assert policy.decide(Context(95, 0, "c")).path == "a"
    # A reading wobbling around a threshold switches once, not on every wobble.
    current, switches = "a", 0
    for pct in [81, 79.5, 80.5, 79.8, 80.2, 79.9, 81.5, 80.1, 79.7]:
        new = policy.decide(Context(pct, 0, current)).path
        switches += new != current
        current = new
    assert switches == 1 and current == "b"
    with pytest.raises(PolicyError, match="must descend"):
        BatteryPolicy(((10, "a"), (50, "b"), (0, "c")))
    with pytest.raises(PolicyError, match="start at 0"):
        BatteryPolicy(((80, "a"), (20, "b")))


def test_schedule_energy_budget_and_fixed_policies() -> None:
    schedule = SchedulePolicy(("a", "b", "c"), switch_every_h=5)
    assert [schedule.decide(Context(50, h, None)).path for h in (0, 4.99, 5, 9.9, 10, 30)] == [
        "a",
        "a",
        "b",
        "b",
        "c",
        "c",
    ]
    # 1 Wh battery: 3600 J. Baseline 0.1 W; 10 inferences/s at 10, 5, 1 mJ: 0.2, 0.15, 0.11 W.
    power = PowerModel(capacity_mah=1000, voltage_v=1.0, baseline_w=0.1, inferences_per_s=10)
    budget = EnergyBudgetPolicy({"a": 10.0, "b": 5.0, "c": 1.0}, power, target_h=8)
    assert budget.hours_left("a", 100) == pytest.approx(5.0)
    assert budget.hours_left("c", 100) == pytest.approx(1 / 0.11)
    assert budget.decide(Context(100, 0, None)).path == "c"  # only c lasts 8 h
    assert budget.decide(Context(100, 3, None)).path == "a"  # 5 h needed: a lasts 5 h
    assert budget.decide(Context(60, 4.5, None)).path == "b"  # re-planned: b lasts 4 h >= 3.5
    assert budget.decide(Context(5, 0, None)).path == "c"  # nothing lasts: cheapest
    # A reading below every threshold, and a margin that takes the level below 0, end on the
    # cheapest path instead of failing.
    low = BatteryPolicy(((1.0, "a"), (0.0, "b")), hysteresis_pct=3.0)
    assert low.decide(Context(-0.5, 0, None)).path == "b"
    assert low.decide(Context(2.0, 0, "b")).path == "b"  # 2 - 3 < 0: stays, no StopIteration
    assert low.decide(Context(4.0, 0, "b")).path == "a"
    # Bundles list paths by accuracy, not by energy: the fallback is the cheapest, wherever it is.
    unordered = EnergyBudgetPolicy({"a": 10.0, "b": 1.0, "c": 5.0}, power, target_h=8)
    assert unordered.decide(Context(5, 0, None)).path == "b"
    assert FixedPolicy("b").decide(Context(1, 99, "a")).path == "b"


def test_policies_from_the_manifest(bundle_dir: Path) -> None:
    manifest = Bundle.load(bundle_dir).data
    levels = battery_levels(manifest)
    battery = policy_from_manifest(manifest, "battery")
    assert battery.decide(Context(None, 0, None)).path == levels[0][1]
    assert battery.decide(Context(100, 0, None)).path == levels[0][1]
    assert battery.decide(Context(0, 0, None)).path == levels[-1][1]
    for threshold, path in levels:  # each level from its own threshold on
        assert battery.decide(Context(threshold, 0, None)).path == path
    schedule = policy_from_manifest(manifest, "schedule")
    every = manifest["policies"]["schedule"]["switch_every_h"]
    for k, path in enumerate(schedule_order(manifest)):  # the ladder, not every path (issue 16)
        assert schedule.decide(Context(None, k * every, None)).path == path
    assert schedule.decide(Context(None, 11, None)).path == schedule_pick(manifest, 11)
    assert policy_from_manifest(manifest, "energy-budget").name == "energy-budget"
    with pytest.raises(PolicyError, match="lacks"):
        policy_from_manifest(manifest, "fixed", fixed="not_a_path")
    with pytest.raises(PolicyError, match="unknown policy 'greedy'"):
        policy_from_manifest(manifest, "greedy")


@pytest.mark.parametrize("backend", ["onnxruntime", "executorch"])
def test_concurrent_predict_during_switches_never_mixes_paths(
    backend: str, bundle_dir: Path
) -> None:
    battery_levels(read_manifest(bundle_dir), at_least=2)  # else there is no switch to race
    battery = PushedBattery(100)
    model = AdaptiveModel(bundle_dir, battery=battery, backend=backend)
    x = images(3)
    reference = {pid: model.run_path(pid, x) for pid in model.bundle.ids}
    errors: list[BaseException] = []
    results = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(15):
                pred = model.predict(x)
                with lock:
                    results.append(pred)
                # A backend may hold the GIL for a whole call, and four workers calling back to
                # back can then starve the switcher on a loaded machine (one path seen in 60
                # calls, once, in CI): a pause lets it push between calls.
                done.wait(0.002)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    done = threading.Event()

    def switcher() -> None:
        k = 0
        while not done.is_set():
            battery.push(float((k * 37) % 101))
            k += 1
            done.wait(0.0005)

    threads = [threading.Thread(target=worker) for _ in range(4)] + [
        threading.Thread(target=switcher)
    ]
    for t in threads:
        t.start()
    for t in threads[:-1]:
        t.join()
    done.set()
    threads[-1].join()
    assert not errors
    assert len(results) == 60 and len({r.path for r in results}) >= 2
    for r in results:
        np.testing.assert_allclose(r.logits, reference[r.path], atol=1e-5)


def test_backends_agree_and_switches_are_logged(bundle_dir: Path) -> None:
    levels = battery_levels(read_manifest(bundle_dir), at_least=2)
    top, bottom = levels[0][1], levels[-1][1]
    battery = PushedBattery(100)
    et = AdaptiveModel(bundle_dir, battery=battery, backend="executorch")
    ort = AdaptiveModel(bundle_dir, battery=battery, backend="onnxruntime")
    x = images(4, seed=1)
    for pid in et.bundle.ids:
        np.testing.assert_allclose(et.run_path(pid, x), ort.run_path(pid, x), atol=1e-4)
    battery.push(0)
    assert et.predict(x).path == bottom
    assert [s.to_path for s in et.switches] == [top, bottom]
    pinned = next(pid for pid in et.bundle.ids if pid != bottom)
    et.switch_to(pinned)
    assert et.predict(x).path == pinned and et.switches[-1].reason == "manual"
    et.follow_policy()
    assert et.predict(x).path == bottom
    with pytest.raises(PolicyError, match="no path 'not_a_path'"):
        et.switch_to("not_a_path")


def test_wrong_input_gives_clear_errors() -> None:
    model = AdaptiveModel(SMOKE, battery=PushedBattery(50), backend="onnxruntime")
    with pytest.raises(InputError, match=r"uint8 images must be \(N, 32, 32, 3\)"):
        model.predict(np.zeros((1, 28, 28, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="dtype float64 is not supported"):
        model.predict(np.zeros((1, 3, 32, 32)))
    with pytest.raises(InputError, match=r"float32 input must be \(N, 3, 32, 32\)"):
        model.predict(np.zeros((1, 32, 32, 3), dtype=np.float32))
    with pytest.raises(InputError, match="NaN"):
        model.predict(np.full((1, 3, 32, 32), np.nan, dtype=np.float32))
    classes = len(model.bundle.classes)
    assert model.predict(np.zeros((32, 32, 3), dtype=np.uint8)).logits.shape == (1, classes)


def test_corrupt_and_newer_bundles_are_refused(tmp_path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(SMOKE, bad)
    graph = read_manifest()["paths"][0]["onnx"]
    (bad / graph).write_bytes(b"")
    with pytest.raises(BundleError, match=f"{re.escape(graph)} is corrupt or truncated"):
        AdaptiveModel(bad, backend="onnxruntime")
    newer = tmp_path / "newer"
    shutil.copytree(SMOKE, newer)
    # Whatever version the shipped bundle has (1 before issue 16's re-export, 2 after).
    text = re.sub(
        r'"schema_version": \d+', '"schema_version": 9', (newer / "manifest.json").read_text()
    )
    (newer / "manifest.json").write_text(text)
    with pytest.raises(BundleError, match="newer than this runtime reads"):
        Bundle.load(newer)
    with pytest.raises(BundleError, match="does not exist"):
        Bundle.load(tmp_path / "missing")


def test_battery_sources(tmp_path) -> None:
    root = tmp_path / "power_supply"
    (root / "AC").mkdir(parents=True)
    (root / "AC" / "type").write_text("Mains\n")
    (root / "BAT0").mkdir()
    (root / "BAT0" / "type").write_text("Battery\n")
    (root / "BAT0" / "capacity").write_text("57\n")
    assert SysfsBattery(root).read() == 57.0
    assert SysfsBattery(tmp_path / "none").read() is None
    level = PsutilBattery().read()  # None on this battery-less machine, a level on a laptop
    assert level is None or 0 <= level <= 100
    pushed = PushedBattery()
    assert pushed.read() is None
    pushed.push(42)
    assert pushed.read() == 42
    with pytest.raises(ValueError, match="within 0-100"):
        pushed.push(140)
    # No reading at all: the most accurate path runs, and predict still works.
    model = AdaptiveModel(SMOKE, battery=PushedBattery(None), backend="onnxruntime")
    assert model.predict(images(1)).path == battery_pick(read_manifest(), None)


def test_prp_run_cli(tmp_path, bundle_dir: Path) -> None:
    from PIL import Image

    for k, arr in enumerate(images(2, seed=3)):
        Image.fromarray(arr).save(tmp_path / f"img{k}.png")
    exe = shutil.which("prp-run") or str(Path(sys.executable).parent / "prp-run")
    out = subprocess.run(
        [exe, str(bundle_dir), str(tmp_path), "--battery", "30", "--backend", "onnxruntime"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    threshold, path = battery_level(read_manifest(bundle_dir), 30)  # the table's level at 30 %
    assert "img0.png" in out.stdout and path in out.stdout, out.stdout
    assert f"battery 30.0 % >= {threshold:g} %: {path}" in out.stdout, out.stdout
    bad = subprocess.run(
        [exe, str(tmp_path / "nope"), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert bad.returncode == 2 and "does not exist" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_other_onnx_sessions_in_the_process_still_work_after_the_runtime_loads() -> None:
    # The ONNX Runtime backend sets ONNX Runtime's process-wide global thread pool; a host app's
    # own session (or the exporter's checks) made with onnx_session_options() must still load.
    # Run in a fresh interpreter so the order of tests cannot hide it.
    graph = SMOKE / read_manifest()["paths"][0]["onnx"]
    code = f"""
import onnxruntime as ort
from prp.runtime import AdaptiveModel, PushedBattery
from prp.runtime.backends import onnx_session_options
AdaptiveModel({str(SMOKE)!r}, battery=PushedBattery(50), backend="onnxruntime")
try:
    ort.InferenceSession({str(graph)!r}, providers=["CPUExecutionProvider"])
    print("plain session loaded")
except Exception as e:
    print("plain session refused:", "global thread pool" in str(e))
s = ort.InferenceSession(
    {str(graph)!r}, onnx_session_options(), providers=["CPUExecutionProvider"]
)
print("with options:", len(s.get_inputs()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "plain session refused: True" in out.stdout  # why the helper exists
    assert "with options: 1" in out.stdout
