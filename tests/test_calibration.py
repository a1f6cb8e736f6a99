"""Self-calibration (issue 32): energy meters on fake sysfs trees, per-path latency and energy
measured as the runtime runs, the calibration file, policies on measured costs, and a real
calibration of the shipped bundle with both backends."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bundle_variants import SMOKE, battery_level, read_manifest, to_ladder, variant
from prp.runtime import AdaptiveModel, Bundle, PushedBattery
from prp.runtime.calibrate import calibrate_model
from prp.runtime.calibration import (
    LATENCY_X_POWER,
    Calibration,
    CalibrationError,
    PathCost,
    calibration_from,
    default_calibration_file,
    kendall_tau_b,
    load_calibration,
    manifest_sha256,
    rank_agreement,
    save_calibration,
)
from prp.runtime.energy import PowerSupplyMeter, RaplMeter, find_meter
from prp.runtime.measured_costs import (
    binomial_tail,
    measured_manifest,
    measured_policy,
    paired_tests_both_ways,
)
from prp.runtime.measuring import Recorder, Window, attribute_energy
from prp.runtime.policies import (
    EnergyBudgetPolicy,
    FixedPolicy,
    ladder,
    ladder_errors,
    rungs_of,
)
from prp.runtime.simulate import SimConfig, simulate


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


# ------------------------------------------------------------------------ fake sysfs trees
def battery_tree(root: Path, power_now: bool = False, status: str = "Discharging") -> Path:
    """A power_supply class folder: AC adapter, and BAT0 at 1.25 A x 4.0 V (5 W)."""
    write(root / "AC" / "type", "Mains")
    write(root / "AC" / "online", "0")
    bat = root / "BAT0"
    write(bat / "type", "Battery")
    write(bat / "status", status)
    write(bat / "capacity", "57")
    write(bat / "current_now", "1250000")
    write(bat / "voltage_now", "4000000")
    if power_now:
        write(bat / "power_now", "7000000")  # 7 W: power_now wins over current x voltage
    return bat


def test_battery_current_and_voltage_are_integrated_into_joules(tmp_path: Path) -> None:
    bat = battery_tree(tmp_path)
    meter = PowerSupplyMeter.find(tmp_path)
    assert meter is not None and meter.folder == bat and meter.source == "power_supply:BAT0"
    clock = Clock()
    meter.clock = clock
    assert meter.power_w() == pytest.approx(5.0)
    assert meter.read_j() == 0.0
    clock.t += 2.0
    assert meter.read_j() == pytest.approx(10.0)
    write(bat / "current_now", "-2500000")  # some drivers sign the discharge: 10 W now
    clock.t += 1.0
    assert meter.read_j() == pytest.approx(10.0 + 0.5 * (5.0 + 10.0))
    write(bat / "status", "Charging")  # on AC the battery reports what charges it
    clock.t += 1.0
    assert meter.read_j() is None
    write(bat / "status", "Discharging")
    clock.t += 5.0
    before = meter.read_j()  # the gap is not made up for: the integral restarts here
    clock.t += 1.0
    assert meter.read_j() == pytest.approx(before + 10.0)


def test_battery_power_now_wins_and_a_mains_supply_is_no_meter(tmp_path: Path) -> None:
    battery_tree(tmp_path / "a", power_now=True)
    meter = PowerSupplyMeter.find(tmp_path / "a")
    assert meter is not None and meter.power_w() == pytest.approx(7.0)
    write(tmp_path / "b" / "AC" / "type", "Mains")
    write(tmp_path / "b" / "BAT1" / "type", "Battery")  # a battery with no power files
    write(tmp_path / "b" / "BAT1" / "capacity", "80")
    assert PowerSupplyMeter.find(tmp_path / "b") is None
    assert find_meter(tmp_path / "no-rapl", tmp_path / "b") is None


def rapl_tree(root: Path, energy_uj: int = 1_000, top: int = 262_143_328_850) -> Path:
    """powercap with one package zone (and a core sub-zone, which the package counts)."""
    pkg = root / "intel-rapl:0"
    write(pkg / "name", "package-0")
    write(pkg / "energy_uj", str(energy_uj))
    write(pkg / "max_energy_range_uj", str(top))
    write(root / "intel-rapl:0:0" / "energy_uj", "5")
    write(root / "intel-rapl:0:0" / "max_energy_range_uj", str(top))
    return pkg


def test_rapl_counts_packages_only_and_unwraps(tmp_path: Path) -> None:
    pkg = rapl_tree(tmp_path, energy_uj=999_000, top=999_999)
    meter = RaplMeter.find(tmp_path)
    assert meter is not None and meter.files == (pkg / "energy_uj",)
    assert meter.read_j() == 0.0
    write(pkg / "energy_uj", "999500")
    assert meter.read_j() == pytest.approx(0.5e-3)
    write(pkg / "energy_uj", "2000")  # wrapped at 10^6 uJ: 500 + 2000 uJ more
    assert meter.read_j() == pytest.approx(3.0e-3)
    battery_tree(tmp_path / "ps")
    assert isinstance(find_meter(tmp_path, tmp_path / "ps"), RaplMeter)  # RAPL first
    # A zone whose counter cannot be read (root-only on most machines) is no meter.
    (pkg / "energy_uj").unlink()
    (pkg / "energy_uj").mkdir()
    assert RaplMeter.find(tmp_path) is None
    assert isinstance(find_meter(tmp_path, tmp_path / "ps"), PowerSupplyMeter)


# ---------------------------------------------------------------------- the recorder
def test_latency_statistics_skip_warm_up_stay_bounded_and_resist_outliers() -> None:
    rec = Recorder(["a", "b"], warmup_calls=3, keep=8)
    assert rec.latency("a") is None
    for _ in range(3):
        rec.record("a", 5.0)  # warm-up: slow first calls, left out
    assert rec.latency("a") is None
    for k in range(1000):
        rec.record("a", 0.002 if k % 10 else 0.5, images=2)  # 1 ms per image, rare outliers
    lat = rec.latency("a")
    assert lat is not None and lat.samples == 8 and lat.calls == 1000
    assert lat.median_ms == pytest.approx(1.0)
    assert rec._rings[0].maxlen == 8  # noqa: SLF001 - the memory bound itself
    assert rec.latency("b") is None


def drive_rapl(
    tmp_path: Path, energy_mj: dict[str, float], turns: list[str], noise_j: float = 0.0
) -> Recorder:
    """A recorder reading a fake RAPL counter that the test advances as a device would:
    3 W of baseline, plus each path's energy per image; `turns` of 1.2 s each, a path run at
    one image per 10 ms or idle."""
    pkg = rapl_tree(tmp_path)
    meter = RaplMeter.find(tmp_path)
    assert meter is not None
    clock = Clock()
    rec = Recorder(list(energy_mj), warmup_calls=0, meter=meter, window_s=1.0, clock=clock)
    rng = np.random.default_rng(0)
    counter_uj = 1_000.0
    for turn in turns:
        for _ in range(120):
            clock.t += 0.01
            counter_uj += 3.0 * 0.01 * 1e6 + rng.normal(0.0, noise_j) * 1e6
            if turn != "idle":
                counter_uj += energy_mj[turn] * 1e3
            write(pkg / "energy_uj", str(int(counter_uj)))
            if turn == "idle":
                rec.tick()
            else:
                rec.record(turn, 0.004)
    return rec


def test_energy_is_attributed_to_paths_from_rapl_windows(tmp_path: Path) -> None:
    truth = {"path_0": 12.0, "path_1": 5.0, "path_2": 2.0}
    rec = drive_rapl(tmp_path, truth, ["idle", *truth] * 6, noise_j=0.002)
    fit = rec.attribution()
    assert fit is not None and fit.windows >= 15 and fit.confident()
    assert fit.baseline_w == pytest.approx(3.0, rel=0.05)
    for pid, e in truth.items():
        assert abs(fit.energy_mj[pid] - e) <= max(fit.ci95_mj[pid], 0.05 * e), pid
        assert 0 < fit.ci95_mj[pid] < 0.5 * e
    # The calibration takes the meter's figures where the fit is confident, intervals and all.
    bundle = Bundle.load(SMOKE)
    ids = bundle.ids[:3]
    renamed = Recorder(ids, warmup_calls=0, meter=rec.meter)
    renamed.windows.extend(rec.windows)
    for k, pid in enumerate(ids):
        renamed.record(pid, 0.001 * (k + 1))
    three = replace(bundle, data={**bundle.data, "paths": bundle.data["paths"][:3]})
    cal = calibration_from(renamed, three, "test", power_w=1.5)
    assert cal.energy_source == "rapl" and cal.power_w is None and cal.fit is not None
    assert cal.paths[ids[0]].energy_mj == pytest.approx(fit.energy_mj["path_0"])
    assert cal.paths[ids[0]].energy_ci95_mj == pytest.approx(fit.ci95_mj["path_0"])


def test_windows_that_cannot_separate_paths_fall_back_to_latency_times_power(
    tmp_path: Path,
) -> None:
    # One path run at a steady pace all along: its images grow with the window's length, so
    # its energy and the baseline cannot be told apart.
    rec = drive_rapl(tmp_path, {"a": 4.0, "b": 1.0}, ["a"] * 10)
    assert attribute_energy(rec.ids, list(rec.windows)) is None  # b never ran
    windows = [Window(1.0 + 0.1 * k, 3.0 + 0.5 * k, (100 + 10 * k, 0)) for k in range(10)]
    assert attribute_energy(["a", "b"], windows) is None
    steady = [Window(1.0, 3.4, (100, 50)) for _ in range(10)]
    assert attribute_energy(["a", "b"], steady) is None  # every window alike: rank 1


# ------------------------------------------------------------------ the calibration file
def fake_calibration(bundle: Bundle, latency_ms: dict[str, float], power_w: float = 1.5):
    return Calibration(
        manifest_sha256=manifest_sha256(bundle),
        bundle=bundle.directory.name,
        backend="test",
        device={"host": "test"},
        created="now",
        energy_source=LATENCY_X_POWER,
        energy_note="stated",
        power_w=power_w,
        paths={pid: PathCost(ms, ms, ms, 10, ms * power_w, None) for pid, ms in latency_ms.items()},
    )


@pytest.fixture(scope="module")
def ladder_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The shipped bundle at the ladder schema (its tables as the exporter writes them)."""
    return Bundle.load(variant(tmp_path_factory.mktemp("ladder") / "b", to_ladder))


def test_bad_calibration_files_are_refused_in_one_line(tmp_path: Path, ladder_bundle) -> None:
    good = fake_calibration(ladder_bundle, dict.fromkeys(ladder_bundle.ids, 1.0))
    path = save_calibration(good, tmp_path / "c.json")
    assert load_calibration(path, ladder_bundle) == good
    data = json.loads(path.read_text())
    cases = {
        "foreign": {**data, "manifest_sha256": "0" * 64},
        "negative": json.loads(path.read_text().replace('"energy_mj": 1.5', '"energy_mj": -1.5')),
        "missing-path": {
            **data,
            "paths": {k: v for k, v in data["paths"].items() if k != "path_0"},
        },
        "not-ours": {"paths": {}},
    }
    messages = {}
    for name, content in cases.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
    (tmp_path / "nan.json").write_text(
        path.read_text().replace('"latency_ms": 1.0', '"latency_ms": NaN', 1)
    )
    for name in [*cases, "nan"]:
        with pytest.raises(CalibrationError) as e:
            load_calibration(tmp_path / f"{name}.json", ladder_bundle)
        messages[name] = str(e.value)
        assert "\n" not in messages[name] and "prp-calibrate" in messages[name]
    assert "another bundle" in messages["foreign"]
    assert "-1.5" in messages["negative"] and "NaN" in messages["nan"]
    assert "path_0" not in messages["missing-path"].split("bundle has")[0]
    # The model refuses it with the one line and plans with the manifest's costs.
    model = AdaptiveModel(
        ladder_bundle,
        battery=PushedBattery(50),
        backend="onnxruntime",
        calibration=tmp_path / "foreign.json",
    )
    assert model.calibration is None and "another bundle" in model.calibration_note
    assert (
        model.policy
        == AdaptiveModel(
            ladder_bundle, battery=PushedBattery(50), backend="onnxruntime", calibration=None
        ).policy
    )


# ------------------------------------------------------------ policies on measured costs
def costlier_than_the_rung_above(bundle: Bundle) -> tuple[dict[str, float], str, str]:
    """Latencies equal to the manifest's energies (x 1000), except the third rung of the
    ladder, measured costlier than the second (not the first): (latencies, that path, the one
    above it)."""
    manifest = bundle.data
    rungs = ladder(rungs_of(manifest["paths"], manifest["objective"]))
    costs = {p["id"]: p["energy_mj"] * 1000 for p in manifest["paths"]}
    first, second, third = rungs[:3]
    costs[third] = (costs[first] + costs[second]) / 2
    return costs, third, second


def test_a_path_measured_costlier_leaves_the_ladder_and_the_switch_log_says_why(
    ladder_bundle: Bundle,
) -> None:
    latency, gone, above = costlier_than_the_rung_above(ladder_bundle)
    cal = fake_calibration(ladder_bundle, latency)
    measured = measured_manifest(ladder_bundle.data, cal)
    assert gone in measured.manifest_ladder and gone not in measured.ladder
    assert f"costlier than {above}" in measured.left[gone]
    assert ladder_errors(measured.manifest) == []  # the new tables are ladders
    assert measured.manifest["policies"]["schedule"]["order"] == measured.ladder
    # At a level where the manifest's table runs `gone`, the model runs another path and says
    # why in its switch log.
    threshold, path = next(
        battery_level(ladder_bundle.data, pct)
        for pct in range(100, -1, -1)
        if battery_level(ladder_bundle.data, pct)[1] == gone
    )
    assert path == gone
    battery = PushedBattery(min(threshold + 1.0, 100.0))
    model = AdaptiveModel(ladder_bundle, battery=battery, backend="onnxruntime", calibration=cal)
    pred = model.predict(np.zeros((1, 32, 32, 3), dtype=np.uint8))
    assert pred.path != gone and f"{gone} left the ladder" in pred.reason
    assert f"{gone} left the ladder" in model.switches[-1].reason
    # Measured costs equal to the manifest's own ranking change nothing.
    same = fake_calibration(ladder_bundle, {p["id"]: p["energy_mj"] for p in ladder_bundle.paths})
    assert (
        measured_manifest(ladder_bundle.data, same).manifest["policies"]
        == (ladder_bundle.data["policies"])
    )


def test_the_energy_budget_plans_with_measured_energy(ladder_bundle: Bundle) -> None:
    latency = {pid: 2.0 + k for k, pid in enumerate(ladder_bundle.ids)}
    cal = fake_calibration(ladder_bundle, latency, power_w=2.0)
    policy = measured_policy(ladder_bundle.data, cal, "energy-budget")
    assert isinstance(policy, EnergyBudgetPolicy)
    assert dict(policy.energy_mj) == {pid: 2.0 * ms for pid, ms in latency.items()}
    model = AdaptiveModel(
        ladder_bundle,
        policy="energy-budget",
        battery=PushedBattery(30),
        backend="onnxruntime",
        calibration=cal,
    )
    assert isinstance(model.policy, EnergyBudgetPolicy)
    assert model.policy.energy_mj == policy.energy_mj
    assert "measured costs" in model.calibration_note


def test_recorded_paired_tests_are_read_both_ways() -> None:
    assert binomial_tail(0, 10) == 1.0
    assert binomial_tail(10, 10) == pytest.approx(2**-10)
    assert binomial_tail(15, 20) == pytest.approx(0.020694732666015625)
    # Real-size paths disagree on more held-out images than a float's 2**1023 can count.
    from scipy.stats import binomtest

    for k, n in ((800, 1500), (1100, 2000), (2100, 4000)):
        expected = binomtest(k, n, 0.5, alternative="greater").pvalue
        assert binomial_tail(k, n) == pytest.approx(expected, rel=1e-9, abs=1e-300)
    manifest = {
        "ladder_tests": {
            "alpha": 0.05,
            "pairs": [
                # By the manifest a is costlier than b; the test found b the more accurate.
                {
                    "path": "a",
                    "cheaper": "b",
                    "only_path_right": 2,
                    "only_cheaper_right": 20,
                    "more_accurate": False,
                },
                {
                    "path": "a",
                    "cheaper": "c",
                    "only_path_right": 30,
                    "only_cheaper_right": 3,
                    "more_accurate": True,
                },
                {
                    "path": "b",
                    "cheaper": "c",
                    "only_path_right": 5,
                    "only_cheaper_right": 6,
                    "more_accurate": False,
                },
            ],
        }
    }
    assert paired_tests_both_ways(manifest) == {("a", "c"), ("b", "a")}
    assert paired_tests_both_ways({}) is None


# -------------------------------------------------------------------------- simulation
def test_simulation_with_a_calibration_drains_by_measured_energy(ladder_bundle: Bundle) -> None:
    latency, gone, _ = costlier_than_the_rung_above(ladder_bundle)
    cal = fake_calibration(ladder_bundle, latency, power_w=0.01)
    config = SimConfig(3000.0, 3.85, 1.0, 30.0, horizon_h=24.0, step_s=10.0)
    sim = simulate(ladder_bundle.data, config, calibration=cal)
    assert sim.energy_mj == cal.energy_mj() and sim.calibration is cal
    assert "calibration" in sim.energy_source
    schedule = sim.run("schedule")
    assert gone not in {s.to_path for s in schedule.switches}
    slow = simulate(ladder_bundle.data, config, calibration=cal, every_step=True)
    for fast_run, slow_run in zip(sim.runs, slow.runs, strict=True):
        assert np.array_equal(fast_run.path_index, slow_run.path_index), fast_run.name
        assert fast_run.switches == slow_run.switches, fast_run.name
    reasons = [s.reason for r in sim.runs for s in r.switches]
    assert any(f"{gone} left the ladder" in r for r in reasons)


# ------------------------------------------------------------- real calibration, both backends
def test_kendall_tau_b() -> None:
    assert kendall_tau_b([1, 2, 3], [10, 20, 30]) == 1.0
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1.0
    assert kendall_tau_b([1, 2, 3, 4], [1, 1, 2, 3]) == pytest.approx(5 / math.sqrt(6 * 5))
    assert math.isnan(kendall_tau_b([1, 1], [1, 2]))


@pytest.mark.parametrize("backend", ["onnxruntime", "executorch"])
def test_a_real_calibration_of_the_shipped_bundle(backend: str, user_data_folder: Path) -> None:
    bundle = Bundle.load(SMOKE)
    model = AdaptiveModel(
        bundle,
        policy=FixedPolicy(bundle.ids[0]),
        battery=PushedBattery(None),
        backend=backend,
        calibration=None,
        energy_meter=None,
    )
    cal = calibrate_model(model, seconds=3.0)
    assert set(cal.paths) == set(bundle.ids) and cal.backend == backend
    for cost in cal.paths.values():
        assert 0 < cost.p25_ms <= cost.latency_ms <= cost.p75_ms and cost.samples > 10
        assert cost.energy_mj == pytest.approx(cost.latency_ms * model.power_w)
    assert cal.energy_source == LATENCY_X_POWER and "no energy reading" in cal.energy_note
    tau = rank_agreement(cal, bundle.data)
    assert -1.0 <= tau["energy_mj"] <= 1.0  # type: ignore[operator]
    # Saved where the runtime looks by default, it is what a new model plans with.
    path = model.save_calibration()
    assert path == default_calibration_file(bundle, backend)
    assert path.is_relative_to(user_data_folder)
    again = AdaptiveModel(bundle, battery=PushedBattery(50), backend=model.backend)
    assert again.calibration == load_calibration(path, bundle)
    path.unlink()


def test_prp_calibrate_and_prp_simulate_with_its_file(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "cal.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            shutil.which("prp-calibrate") or str(bin_dir / "prp-calibrate"),
            str(SMOKE),
            "--backend",
            "onnxruntime",
            "--seconds",
            "8",
            "--meter",
            "none",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Kendall tau-b" in done.stdout and f"wrote {out}" in done.stdout.replace("\n", "")
    cal = load_calibration(out, Bundle.load(SMOKE))
    sim_out = tmp_path / "sim"
    sim = [
        shutil.which("prp-simulate") or str(bin_dir / "prp-simulate"),
        str(SMOKE),
        "--step-s",
        "60",
        "--out",
        str(sim_out),
        "--calibration",
    ]
    done = subprocess.run([*sim, str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((sim_out / "summary.json").read_text())
    assert {p["id"]: p["energy_mj"] for p in summary["paths"]} == cal.energy_mj()
    assert summary["calibration"]["file"] == str(out)
    # A calibration of another bundle: one line, exit 2, the earlier results untouched.
    data = json.loads(out.read_text())
    (tmp_path / "foreign.json").write_text(json.dumps({**data, "manifest_sha256": "f" * 64}))
    before = (sim_out / "summary.json").read_bytes()
    done = subprocess.run(
        [*sim, str(tmp_path / "foreign.json")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 2 and "another bundle" in done.stdout
    # One message (rich wraps it at the console's width), no traceback.
    assert done.stdout.startswith("error: ") and done.stdout.count("error") == 1
    assert "Traceback" not in done.stderr
    assert (sim_out / "summary.json").read_bytes() == before
    bad = subprocess.run(
        [
            shutil.which("prp-calibrate") or str(bin_dir / "prp-calibrate"),
            str(SMOKE),
            "--seconds",
            "-1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert bad.returncode == 2 and "--seconds" in bad.stdout
    # The budget includes loading: one that loading would use up is refused before measuring.
    short = subprocess.run(
        [
            shutil.which("prp-calibrate") or str(bin_dir / "prp-calibrate"),
            str(SMOKE),
            "--backend",
            "onnxruntime",
            "--seconds",
            "0.5",
            "--out",
            str(tmp_path / "short.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert short.returncode == 2 and "loading took" in short.stdout, short.stdout
    assert not (tmp_path / "short.json").exists()


def test_prp_run_refuses_a_bad_calibration_and_uses_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"format": "prp-nas calibration", "version": 1}')
    np.save(tmp_path / "img.npy", np.zeros((32, 32, 3), dtype=np.uint8))
    exe = shutil.which("prp-run") or str(Path(sys.executable).parent / "prp-run")
    done = subprocess.run(
        [
            exe,
            str(SMOKE),
            str(tmp_path / "img.npy"),
            "--battery",
            "30",
            "--backend",
            "onnxruntime",
            "--calibration",
            str(tmp_path / "bad.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    _, path = battery_level(read_manifest(SMOKE), 30)
    assert path in done.stdout
    line = [s for s in done.stdout.splitlines() if s.startswith("costs:")]
    assert len(line) == 1 and "unusable" in line[0] and "manifest's costs" in line[0]


def test_why_a_path_left_names_what_took_its_place() -> None:
    paths = [
        {"id": "path_0", "accuracy": 75.0, "energy_mj": 3.0},
        {"id": "path_1", "accuracy": 70.0, "energy_mj": 2.0},
        {"id": "path_2", "accuracy": 70.0, "energy_mj": 1.0},
    ]
    manifest = {
        "objective": "energy",
        "paths": paths,
        "policies": {"schedule": {"switch_every_h": 5.0, "order": ["path_0", "path_2"]}},
    }
    costs = {"path_0": 3.0, "path_1": 2.0, "path_2": 2.0}  # measured: path_2 ties path_1
    cal = Calibration(
        manifest_sha256="0" * 64,
        bundle="b",
        backend="test",
        device={},
        created="",
        energy_source=LATENCY_X_POWER,
        energy_note="",
        power_w=1.0,
        paths={pid: PathCost(c, c, c, 1, c, None) for pid, c in costs.items()},
    )
    measured = measured_manifest(manifest, cal)
    assert measured.ladder == ["path_0", "path_1"]
    assert measured.left == {
        "path_2": "path_2 left the ladder: the same accuracy and measured cost as path_1 "
        "(2 mJ), which stays"
    }
    assert measured.joined["path_1"].startswith("path_1 joined the ladder: measured 2 mJ")
    assert measured.manifest["policies"]["schedule"]["order"] == ["path_0", "path_1"]


def test_a_calibration_that_is_no_file_is_refused(tmp_path: Path) -> None:
    bundle = Bundle.load(SMOKE)
    for path in (tmp_path, Path(os.devnull), tmp_path / "missing.json"):
        with pytest.raises(CalibrationError, match="prp-calibrate|cannot read"):
            load_calibration(path, bundle)


def test_a_dominated_path_measured_cheaper_joins_on_its_paired_test_read_backwards() -> None:
    """By the manifest, x costs more than y and is less accurate (off the ladder); the exporter
    tested (x, y), and y won 30 of 33 discordant images. Measured, x is the cheaper: it joins
    below y, whose win over it is that record read backwards, and the tables check as ladders."""
    manifest = {
        "schema_version": 2,
        "objective": "energy",
        "paths": [
            {"id": "y", "accuracy": 75.0, "energy_mj": 2.0},
            {"id": "x", "accuracy": 70.0, "energy_mj": 3.0},
        ],
        "policies": {
            "battery": {"hysteresis_pct": 3.0, "levels": [{"min_battery_pct": 0.0, "path": "y"}]},
            "schedule": {"switch_every_h": 5.0, "order": ["y"]},
        },
        "ladder_tests": {
            "alpha": 0.05,
            "pairs": [
                {
                    "path": "x",
                    "cheaper": "y",
                    "only_path_right": 3,
                    "only_cheaper_right": 30,
                    "more_accurate": False,
                }
            ],
        },
    }
    assert ladder_errors(manifest) == []
    costs = {"y": 2.0, "x": 1.0}
    cal = Calibration(
        manifest_sha256="0" * 64,
        bundle="b",
        backend="test",
        device={},
        created="",
        energy_source=LATENCY_X_POWER,
        energy_note="",
        power_w=1.0,
        paths={pid: PathCost(c, c, c, 1, c, None) for pid, c in costs.items()},
    )
    measured = measured_manifest(manifest, cal)
    assert measured.manifest_ladder == ["y"] and measured.ladder == ["y", "x"]
    assert ladder_errors(measured.manifest) == []
    levels = measured.manifest["policies"]["battery"]["levels"]
    assert [lv["path"] for lv in levels] == ["y", "x"]
    # Without the backwards reading, x could not stand below y.
    no_wins = json.loads(json.dumps(manifest))
    no_wins["ladder_tests"]["pairs"][0]["only_cheaper_right"] = 5
    assert measured_manifest(no_wins, cal).ladder == ["x"]
