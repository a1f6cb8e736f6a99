"""The battery-drain simulator on the shipped bundle: bookkeeping, scenarios, speed, outputs,
real mode through AdaptiveModel, and the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bundle_variants import (
    KINDS,
    SMOKE,
    bundle_of,
    schedule_order,
    schedule_pick,
    schedule_within,
)
from prp.runtime import Bundle
from prp.runtime.policies import PIXEL3_LIKE_POWER, ladder_policies
from prp.runtime.profiles import PIXEL3, ProfileError, get_profile
from prp.runtime.simulate import (
    SimConfig,
    Simulation,
    SimulationError,
    manifest_energies,
    simulate,
    simulate_real,
    write_outputs,
)

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "prp-simulate"

# A workload where inference is most of the draw (about 77-80 %), so that the choice of path
# matters: with the phone's 1 W baseline and 30 inferences/s it is under 0.1 %.
HEAVY_BASELINE_W = 0.1


def front_rate(bundle: Bundle) -> float:
    """Inferences per second at which the paper's schedule (the bundle's own table) over
    `front_energies` uses 90 % of the battery in 24 h: the most accurate path alone then runs out,
    the schedule lasts (and so the cheapest path). Derived, so a re-exported bundle keeps the
    case."""
    energies = front_energies(bundle)
    every = bundle.data["policies"]["schedule"]["switch_every_h"]
    order = schedule_order(bundle.data)
    # Hours on each level of the schedule within the day; the last level runs to the end.
    ends = [(k + 1) * every for k in range(len(order) - 1)] + [24.0]
    hours = [max(min(end, 24.0) - min(k * every, 24.0), 0.0) for k, end in enumerate(ends)]
    mj_h = sum(h * energies[p] for h, p in zip(hours, order, strict=True))
    capacity_wh = SimConfig.from_profile(PIXEL3).capacity_j / 3600.0
    return (0.9 * capacity_wh - 24.0 * HEAVY_BASELINE_W) / (mj_h * 1e-3)


@pytest.fixture(scope="module", params=KINDS)
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The shipped bundle, and the same bundle with the exporter's ladder tables (issue 16)."""
    return Bundle.load(bundle_of(request.param, tmp_path_factory))


def front_energies(bundle: Bundle) -> dict[str, float]:
    """The manifest's energies reassigned so that cost falls with accuracy, as along a Pareto
    front. The shipped bundle's most accurate path is also its cheapest, so worst = best there."""
    energies = manifest_energies(bundle.data)
    return dict(zip(energies, sorted(energies.values(), reverse=True), strict=True))


def heavy(bundle: Bundle, **overrides: float) -> SimConfig:
    workload = {"baseline_w": HEAVY_BASELINE_W, "inferences_per_s": front_rate(bundle)}
    return SimConfig.from_profile(PIXEL3, **{**workload, **overrides})


@pytest.fixture(scope="module")
def shipped(bundle: Bundle) -> Simulation:
    return simulate(bundle.data, SimConfig.from_profile(PIXEL3))


@pytest.fixture(scope="module")
def front(bundle: Bundle) -> Simulation:
    return simulate(bundle.data, heavy(bundle), front_energies(bundle))


def test_pixel3_profile_matches_the_runtime_default_and_unknown_names_fail() -> None:
    p = get_profile("pixel3")
    assert (p.capacity_mah, p.voltage_v) == (2915.0, 3.85)
    assert p.capacity_j == pytest.approx(PIXEL3_LIKE_POWER.capacity_j)
    assert p.baseline_w == PIXEL3_LIKE_POWER.baseline_w
    assert p.inferences_per_s == PIXEL3_LIKE_POWER.inferences_per_s
    with pytest.raises(ProfileError, match="pixel3"):
        get_profile("iphone")


def test_config_rejects_bad_numbers() -> None:
    for bad in (
        {"horizon_h": -1.0},
        {"step_s": 0.0},
        {"baseline_w": -0.5},
        {"inferences_per_s": float("nan")},
        {"start_pct": 120.0},
        {"step_s": 7.0},  # 24 h is not a whole number of 7 s steps
    ):
        with pytest.raises(SimulationError):
            SimConfig.from_profile(PIXEL3, **bad)


def test_a_proxy_bundle_priced_as_its_target_network_says_so(bundle: Bundle) -> None:
    """A bundle whose energies price a larger network than its own (the default run's proxy
    priced by HW-NAS-Bench's figures, manifest `costs.energy.note`) carries that into the
    simulation's stated energy source; without the note the source is the device alone."""
    data = json.loads(json.dumps(bundle.data))
    plain = simulate(data, SimConfig.from_profile(PIXEL3)).energy_source
    assert plain == f"manifest ({data['costs']['energy']['device']})"
    data["costs"]["energy"] |= {"network": "the big network", "note": "this bundle is a proxy"}
    noted = simulate(data, SimConfig.from_profile(PIXEL3)).energy_source
    assert "the big network: this bundle is a proxy" in noted


@pytest.mark.parametrize("which", ["shipped", "front"])
def test_energy_bookkeeping_balances(
    which: str, bundle: Bundle, request: pytest.FixtureRequest
) -> None:
    sim: Simulation = request.getfixturevalue(which)  # of `bundle`, each of KINDS
    cap = sim.config.capacity_j
    for r in sim.runs:
        used = cap * (100.0 - r.battery_pct[-1]) / 100.0
        assert r.drawn_j == pytest.approx(used, abs=1e-6)
        # The battery's trajectory and the per-segment power bookkeeping agree.
        assert r.baseline_j + r.inference_j == pytest.approx(r.drawn_j, rel=1e-9, abs=1e-6)
        on_s = sum(s.duration_s for s in r.segments)
        assert r.baseline_j == pytest.approx(sim.config.baseline_w * on_s)
        assert on_s == pytest.approx(r.on_s)
        assert np.all(np.diff(r.energy_j) <= 0) and r.energy_j.min() >= 0.0
    # A fixed path (worst: the most accurate) drains at one power: it empties at exactly
    # capacity / power.
    worst = sim.run("worst")
    p_w = sim.config.baseline_w + sim.config.inference_w(next(iter(sim.energy_mj.values())))
    if worst.died_s is not None:
        assert worst.died_s == pytest.approx(cap / p_w, rel=1e-12)


def test_shipped_workload_inference_share_follows_the_energies(shipped: Simulation) -> None:
    # Every run spends between what the cheapest and the dearest path alone would: its share of
    # inference and the hour it empties lie between theirs (with the shipped bundle, 30 x 0.02-0.04
    # mJ per second, about 1 mW against the 1 W baseline: it empties after about 11.2 h).
    config = shipped.config
    powers = [config.inference_w(e) for e in shipped.energy_mj.values()]
    low, high = min(powers), max(powers)
    for r in shipped.runs:
        share = r.inference_j / r.drawn_j
        assert low / (config.baseline_w + low) * (1 - 1e-9) <= share, r.name
        assert share <= high / (config.baseline_w + high) * (1 + 1e-9), r.name
        assert r.died_s is not None, r.name  # the 1 W baseline alone empties it within the day
        assert config.capacity_j / (config.baseline_w + high) <= r.died_s + config.step_s, r.name
        assert r.died_s <= config.capacity_j / (config.baseline_w + low) + config.step_s, r.name


def test_worst_drains_fastest_and_best_slowest(front: Simulation, shipped: Simulation) -> None:
    worst, best = front.run("worst").battery_pct, front.run("best").battery_pct
    for r in front.runs:
        assert np.all(worst <= r.battery_pct + 1e-9), r.name
        assert np.all(best >= r.battery_pct - 1e-9), r.name
    assert worst[-1] < best[-1]
    # With the shipped energies the cheapest path still drains slowest.
    best = shipped.run("best").battery_pct
    for r in shipped.runs:
        assert np.all(best >= r.battery_pct - 1e-9), r.name


def test_schedule_switches_every_5_hours_along_the_manifest_order(
    front: Simulation, bundle: Bundle
) -> None:
    every = bundle.data["policies"]["schedule"]["switch_every_h"]
    levels = schedule_within(bundle.data, front.config.horizon_h)
    assert len(levels) >= 2, f"the schedule {schedule_order(bundle.data)} has no switch to check"
    run = front.run("schedule")
    assert run.lasted
    assert [s.to_path for s in run.switches] == levels
    assert [s.at_h for s in run.switches] == pytest.approx([k * every for k in range(len(levels))])
    assert run.hours_on_path()[levels[0]] == pytest.approx(every)


def test_battery_scenario_never_flaps(
    front: Simulation, shipped: Simulation, bundle: Bundle
) -> None:
    levels = bundle.data["policies"]["battery"]["levels"]
    threshold = {lv["path"]: lv["min_battery_pct"] for lv in levels}
    order = [lv["path"] for lv in levels]
    for sim in (front, shipped):
        run = sim.run("battery")
        assert run.switch_count <= len(order) - 1
        alive = run.path_index[run.path_index >= 0]
        rank = np.array([order.index(run.ids[i]) for i in alive])
        assert np.all(np.diff(rank) >= 0)  # only ever towards cheaper paths while discharging
        step_pct = 100 * max(s.power_w for s in run.segments) * sim.config.step_s
        step_pct /= sim.config.capacity_j
        for s in run.switches[1:]:  # each at the first step below the threshold it left
            assert s.from_path is not None
            t = threshold[s.from_path]
            assert t - step_pct <= s.battery_pct < t


@pytest.mark.parametrize("load", [0.9, 1.0, 1.09])
def test_energy_budget_reaches_the_horizon_when_the_cheapest_path_can(
    bundle: Bundle, load: float
) -> None:
    rate = load * front_rate(bundle)
    sim = simulate(bundle.data, heavy(bundle, inferences_per_s=rate), front_energies(bundle))
    assert not sim.run("worst").lasted and sim.run("best").lasted  # the case that matters
    budget = sim.run("energy-budget")
    assert budget.lasted
    # It runs paths no less accurate (by the manifest's ordering accuracy) than the cheapest.
    ordering = {p["id"]: p["accuracy"] for p in bundle.data["paths"]}
    assert budget.mean_accuracy(ordering) >= sim.run("best").mean_accuracy(ordering)
    assert budget.path_index.max() <= sim.run("best").path_index.min()
    assert budget.battery_pct[-1] < 0.01  # it spends the battery on accuracy, not leftovers


def test_asking_only_when_a_decision_can_change_equals_asking_every_step(
    bundle: Bundle,
) -> None:
    cases = [
        (SimConfig.from_profile(PIXEL3, step_s=10.0), None),
        (heavy(bundle, step_s=10.0), front_energies(bundle)),
        (heavy(bundle, step_s=10.0, start_pct=70.0, horizon_h=30.0), front_energies(bundle)),
    ]
    for config, energies in cases:
        fast = simulate(bundle.data, config, energies)
        slow = simulate(bundle.data, config, energies, every_step=True)
        for a, b in zip(fast.runs, slow.runs, strict=True):
            assert np.array_equal(a.path_index, b.path_index), a.name
            assert np.array_equal(a.energy_j, b.energy_j), a.name
            assert [(s.at_h, s.to_path) for s in a.switches] == [
                (s.at_h, s.to_path) for s in b.switches
            ]
            assert a.died_s == b.died_s
            assert a.policy_calls <= 20 < b.policy_calls


def test_a_day_at_one_second_asks_the_policy_only_where_it_can_change(bundle: Bundle) -> None:
    # Speed itself is measured in bench/simulate.py; here the reason it is fast: a day at 1 s is
    # 86,400 steps, and each scenario asks its policy a handful of times, not at every step.
    for config, energies in (
        (SimConfig.from_profile(PIXEL3), None),
        (heavy(bundle), front_energies(bundle)),
    ):
        sim = simulate(bundle.data, config, energies)
        assert config.steps == 86_400 and len(sim.runs) == 5
        for run in sim.runs:
            assert 1 <= run.policy_calls <= 200, (run.name, run.policy_calls)


def test_outputs_are_written_with_every_field(
    front: Simulation, bundle: Bundle, tmp_path: Path
) -> None:
    out = tmp_path / "sim"
    summary = write_outputs(front, out, timeline_every_s=60.0)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["scenarios"] == json.loads(json.dumps(summary["scenarios"]))
    names = [s["name"] for s in on_disk["scenarios"]]
    assert names == ["worst", "best", "schedule", "battery", "energy-budget"]
    for s in on_disk["scenarios"]:
        for key in (
            "empty_at_h",
            "battery_left_pct",
            "battery_saved_vs_worst_pct",
            "saved_window_h",
            "avg_test_accuracy_pct",
            "switches",
            "inference_share_pct",
            "hours_on_path",
            "switch_log",
        ):
            assert key in s, key
    by_name = {s["name"]: s for s in on_disk["scenarios"]}
    assert by_name["worst"]["battery_saved_vs_worst_pct"] == 0.0
    assert (
        by_name["best"]["battery_saved_vs_worst_pct"]
        > by_name["schedule"]["battery_saved_vs_worst_pct"]
        > 0
    )
    assert set(on_disk["definitions"]) >= {"battery_saved_vs_worst_pct", "avg_test_accuracy_pct"}
    rows = (out / "timeline.csv").read_text().splitlines()
    assert len(rows) == 24 * 60 + 2  # header, 0 min ... 1440 min
    header = rows[0].split(",")
    assert header[:3] == ["time_h", "worst_battery_pct", "worst_path"]
    last = dict(zip(header, rows[-1].split(","), strict=True))
    assert float(last["time_h"]) == 24.0 and last["worst_path"] == ""  # worst is empty by then
    assert last["schedule_path"] == schedule_pick(bundle.data, 24.0)
    if (out / "battery.png").exists():
        assert (out / "battery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert summary["plot_note"]
    assert not list(out.glob("*.tmp"))


def test_outputs_without_matplotlib_skip_only_the_plot(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.modules["matplotlib"] = None  # any `import matplotlib` now raises ImportError
        from pathlib import Path
        from prp.runtime import Bundle
        from prp.runtime.profiles import PIXEL3
        from prp.runtime.simulate import SimConfig, simulate, write_outputs
        sim = simulate(Bundle.load({str(SMOKE)!r}).data, SimConfig.from_profile(PIXEL3))
        summary = write_outputs(sim, Path({str(tmp_path)!r}))
        print(summary["plot_note"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "matplotlib is not installed" in out.stdout
    assert sorted(f.name for f in tmp_path.iterdir()) == ["summary.json", "timeline.csv"]
    assert json.loads((tmp_path / "summary.json").read_text())["files"]["plot"] is None


def test_real_mode_switches_agree_with_arithmetic_mode(bundle: Bundle) -> None:
    sim = simulate(bundle.data, heavy(bundle), front_energies(bundle))
    runs = simulate_real(bundle, sim, backend="onnxruntime", step_s=600.0)
    assert [r.name for r in runs] == [r.name for r in sim.runs]
    for r in runs:
        assert r.switches_match, r.name
        assert r.agreement_pct == 100.0, r.name
        assert r.drawn_j == pytest.approx(r.arithmetic.drawn_j, rel=1e-9)
        if r.died_s is not None:
            assert r.arithmetic.died_s == pytest.approx(r.died_s, rel=1e-9)
    switched = {r.name: [s.to_path for s in r.switches] for r in runs}
    tables = bundle.data["policies"]  # every level of each table, in order
    assert switched["schedule"] == schedule_within(bundle.data, sim.config.horizon_h)
    assert switched["battery"] == [lv["path"] for lv in tables["battery"]["levels"]]
    assert runs[0].died_s is not None and runs[0].predictions < 24 * 6


def test_simulator_imports_neither_torch_nor_the_trainer() -> None:
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None
        from prp.runtime import Bundle
        from prp.runtime.profiles import PIXEL3
        from prp.runtime.simulate import SimConfig, simulate
        sim = simulate(Bundle.load({str(SMOKE)!r}).data, SimConfig.from_profile(PIXEL3))
        assert not any(k.startswith("prp.trainer") for k in sys.modules)
        print("ok", len(sim.runs))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok 5" in out.stdout


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_cli_end_to_end(tmp_path: Path) -> None:
    out = run_cli("exported/smoke", "--out", str(tmp_path / "tmp"))
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ("timeline.csv", "summary.json"):
        assert (tmp_path / "tmp" / name).is_file()
    assert "worst" in out.stdout and "energy-budget" in out.stdout
    summary = json.loads((tmp_path / "tmp" / "summary.json").read_text())
    assert summary["config"]["capacity_mah"] == 2915.0 and summary["profile"] == "pixel3"


def test_cli_measured_energies_and_real_mode(tmp_path: Path) -> None:
    out = run_cli(
        "exported/smoke",
        "--energy",
        "measured",
        "--backend",
        "onnxruntime",
        "--real",
        "--real-step-s",
        "1800",
        "--baseline-w",
        "0.2",
        "--out",
        str(tmp_path / "m"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["energy_source"].startswith("measured here (onnxruntime")
    assert all(p["latency_ms"] > 0 for p in summary["paths"])
    assert summary["real"]["all_agree"] is True


def test_cli_energy_from_the_manifest_latency(tmp_path: Path) -> None:
    """--energy latency: energy per inference is the manifest's latency_ms (a device's latency
    table) x the stated power, and the ladders are derived again on it: a path that costs more
    there than a more accurate one leaves them, and the summary says why."""
    bundle = tmp_path / "priced"
    shutil.copytree(SMOKE, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    latency = {"path_0": 9.0, "path_1": 6.0, "path_2": 7.0, "path_3": 2.0, "path_4": 1.0}
    accuracy = {"path_0": 75.0, "path_1": 74.0, "path_2": 73.0, "path_3": 72.0, "path_4": 65.0}
    for p in manifest["paths"]:
        p["latency_ms"], p["accuracy"] = latency[p["id"]], accuracy[p["id"]]
    manifest.pop("ladder_tests", None)  # the ladder by dominance alone, whatever was tested
    manifest["policies"] = ladder_policies(manifest["paths"], manifest["objective"])
    manifest["costs"]["latency"] = {"unit": "ms", "device": "phone-x", "source": "a table"}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    out = run_cli(
        str(bundle), "--energy", "latency", "--power-w", "2", "--out", str(tmp_path / "s")
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    energies = {p["id"]: p["energy_mj"] for p in summary["paths"]}
    assert energies == pytest.approx({k: 2.0 * v for k, v in latency.items()})
    assert "phone-x" in summary["energy_source"] and "2 W" in summary["energy_source"]
    # path_2 (7 ms) costs more than the more accurate path_1 (6 ms): off the ladders.
    assert summary["calibration"]["ladder"] == ["path_0", "path_1", "path_3", "path_4"]
    assert "path_2" in summary["calibration"]["left_ladder"]
    runs = {sc["name"]: sc for sc in summary["scenarios"]}
    for name in ("battery", "schedule"):
        hours = runs[name]["hours_on_path"]
        assert sum(hours.values()) > 0 and hours.get("path_2", 0.0) == 0.0, (name, hours)
    # A bundle without latency figures is refused in one line.
    out = run_cli("exported/smoke", "--energy", "latency", "--out", str(tmp_path / "never"))
    assert out.returncode == 2 and "no latency_ms" in out.stdout + out.stderr
    assert not (tmp_path / "never").exists()


def test_cli_fails_cleanly(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(SMOKE, broken)
    (broken / "manifest.json").write_text("{ not json")
    cases = [
        (("missing-bundle",), "does not exist"),
        ((str(broken),), "damaged"),
        (("exported/smoke", "--profile", "nokia"), "unknown device profile"),
        (("exported/smoke", "--hours", "-3"), "horizon_h"),
        (("exported/smoke", "--rate", "nan"), "inferences_per_s"),
        (("exported/smoke", "--energy", "guess"), "--energy"),
    ]
    for args, message in cases:
        out = run_cli(*args, "--out", str(tmp_path / "never"))
        text = out.stdout + out.stderr
        assert out.returncode == 2, (args, text)
        assert message in text, (args, text)
        assert "Traceback" not in text
    assert not (tmp_path / "never").exists()


def test_replace_keeps_validation() -> None:
    with pytest.raises(SimulationError):
        replace(SimConfig.from_profile(PIXEL3), step_s=-1.0)
