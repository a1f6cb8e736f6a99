"""prp-profile: per-op tables measured here by real ExecuTorch / ONNX Runtime runs, resumed after
an interruption, refused for another space, checked against whole paths, trained against."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from prp.trainer.config import preset
from prp.trainer.costs import LUTCostModel, get_cost_model, price_supernet
from prp.trainer.device_profile import (
    OpProgram,
    ProfileError,
    RaplCounter,
    assemble_table,
    measure,
    op_programs,
    partial_path,
    profile_space,
    read_profile,
    validate_table,
    validation_figures,
)
from prp.trainer.device_profile.validation import affine_fit, live_sum
from prp.trainer.errors import LUTKeyError, PRPError
from prp.trainer.export import export_bundle, path_module
from prp.trainer.spaces import Priced, get_space, list_spaces
from prp.trainer.supernet import Supernet
from prp.trainer.train import Trainer
from torch import nn

FAST = {"warmup": 1, "repeats": 3}  # enough to exercise the timing, cheap on 2 cores


@pytest.mark.parametrize("name", list_spaces())
def test_signatures_cover_every_path(name: str, tmp_path: Path) -> None:
    supernet = Supernet(get_space(name, size="tiny"))
    programs = op_programs(supernet)
    values = {s: float(k + 1) for k, s in enumerate(sorted(programs))}  # distinct, by hand
    lut = tmp_path / "t.json"
    lut.write_text(json.dumps({"unit": "ms", "ops": values}))
    priced = price_supernet(supernet, get_cost_model("lut", "latency", path=lut))
    # Every live (slot, op) has a price, so every path of the space has one.
    assert np.isfinite(priced.per_op[supernet.op_mask.numpy()]).all()
    # Independently of the trace: hooks on each path's own network see only profiled
    # signatures, and their values add up to the table's price of the path.
    rng = np.random.default_rng(0)
    seen: list[str | None] = []

    def hook(m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen.append(m.signature(tuple(args[0].shape), tuple(out.shape)))  # type: ignore[operator]

    for _ in range(8):
        path = supernet.sample_uniform(rng)
        net = supernet.standalone(path).eval()
        seen.clear()
        hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, Priced)]
        with torch.no_grad():
            net(torch.zeros(1, *supernet.space.input_shape))
        for h in hooks:
            h.remove()
        sigs = [s for s in seen if s is not None]
        assert set(sigs) <= set(programs)
        live = supernet.space.live_slots(np.array([path]))
        if live is None or live.all():
            assert priced(path) == pytest.approx(sum(values[s] for s in sigs))
        else:  # a dead op is not priced (exactly: test_lut_prices_what_the_program_runs)
            assert priced(path) <= sum(values[s] for s in sigs)


def test_lut_prices_what_the_exported_program_runs(tmp_path: Path) -> None:
    """An NB201 edge whose result never reaches the cell's output is dropped from the exported
    program; the lut model prices each path over exactly the ops its program still runs."""
    supernet = Supernet(get_space("nb201", size="tiny")).eval()
    programs = op_programs(supernet)
    # Powers of two: a price equals a sum only where the same signatures are summed.
    values = {s: float(2**k) for k, s in enumerate(sorted(programs))}
    lut = tmp_path / "t.json"
    lut.write_text(json.dumps({"unit": "ms", "ops": values}))
    priced = price_supernet(supernet, get_cost_model("lut", "latency", path=lut))
    space, shape = supernet.space, (1, *supernet.space.input_shape)
    by_hand = [  # NB201 op names per edge 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
        # node 2 is zero (both edges none): its edge to 3 runs on zeros; node 1 feeds no one
        ("avg_pool_3x3", "none", "none", "avg_pool_3x3", "none", "nor_conv_1x1"),
        # node 3 takes only none edges: nothing of the cell runs
        ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "none", "none", "none"),
        # node 2 feeds only a none edge: the two convs into it are dead, node 1's too
        ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "nor_conv_1x1", "none", "none"),
        ("none",) * 6,
        ("nor_conv_3x3",) * 6,
    ]
    rng = np.random.default_rng(0)
    paths = [space.from_op_names(n) for n in by_hand]
    paths += [supernet.sample_uniform(rng) for _ in range(10)]
    every_op = dataclasses.replace(priced, live=None)  # the plain per-op sum
    for path in paths:
        runs = live_sum(path_module(supernet, path), shape, values)
        assert priced(path) == runs, space.op_names(path)
    assert priced.many(paths) == pytest.approx([priced(p) for p in paths])
    assert all(priced(p) < every_op(p) for p in paths[:3])  # the by-hand cases do drop ops
    assert priced(paths[4]) == every_op(paths[4])  # all convs: every op runs


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    """A real tiny NB201 profile, interrupted after 3 signatures and resumed."""
    out = tmp_path_factory.mktemp("profile") / "tiny.json"
    space = get_space("nb201", size="tiny")
    first: list[str] = []

    def stop_after_three(sig: str, done: int, total: int) -> None:
        first.append(sig)
        if len(first) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        profile_space(space, out, progress=stop_after_three, **FAST)
    kept = read_profile(partial_path(out))
    second: list[str] = []
    table = profile_space(space, out, progress=lambda s, d, t: second.append(s), **FAST)
    return out, table, first, kept, second


def test_interrupted_profile_resumes(tiny_table) -> None:
    out, table, first, kept, second = tiny_table
    programs = op_programs(Supernet(get_space("nb201", size="tiny")))
    measured = {s for s, p in programs.items() if not p.free}
    assert not kept["complete"] and set(kept["measurements"]) == set(first)
    # The rerun measured only what was missing, and kept the first run's figures as they were.
    assert set(second).isdisjoint(first) and set(second) | set(first) == measured
    for sig in first:
        assert table["measurements"][sig] == kept["measurements"][sig]
    assert table["complete"] and not partial_path(out).exists()
    assert table["backend"] == "executorch" and table["threads"] == 1
    assert table["unit"] == "ms" and table["device"] and table["date"] and table["provenance"]
    assert table["energy"]  # measured, or a sentence saying why not
    for m in table["measurements"].values():
        assert 0 < m["p25_ms"] <= m["median_ms"] <= m["p75_ms"]
    # Once complete, a rerun measures nothing.
    again: list[str] = []
    profile_space(get_space("nb201", size="tiny"), out, progress=lambda *a: again.append(a[0]))
    assert again == []


def test_table_prices_paths_and_trains(tiny_table, tmp_path, data) -> None:
    out, table, *_ = tiny_table
    space = get_space("nb201", size="tiny")
    supernet = Supernet(space)
    priced = price_supernet(supernet, get_cost_model("lut", "latency", path=out))
    assert priced.unit == "ms" and priced.device == table["device"]
    # What a path pays once (the call, the input's layout conversion) sits in one fixed op.
    method = table["method"]
    assert method["overhead_folded_into"] == "Stem_H32_W32_Cin3_Cout4"
    # Every 4-D shape at an op program's ends has its conversion measured (Head's output is 2-D).
    assert set(method["layout_conversion_ms"]) == {
        "1x3x32x32",
        "1x4x32x32",
        "1x8x16x16",
        "1x16x8x8",
    }
    cfg = replace(
        preset("tiny"),
        objective="latency",
        cost_model="lut",
        cost_lut=str(out),
        epochs_fair=1,
        epochs_pareto=1,
    )
    run_dir = tmp_path / "run"
    trainer = Trainer(cfg, run_dir, data=data)
    trainer.write_front(trainer.run())
    front = json.loads((run_dir / "front.json").read_text())
    assert front["cost_device"] == table["device"] and front["cost_unit"] == "ms"
    for p in front["paths"]:
        assert p["cost"] == pytest.approx(priced(p["path"]), rel=1e-9)
    # The same table as an extra cost source of an export: named with its device in
    # cost_sources beside the run's own tables, and pricing each path as the table does.
    bundle = export_bundle(run_dir, tmp_path / "bundle", top=2, data=data, price_with=[out])
    manifest = json.loads((bundle / "manifest.json").read_text())
    sources = {c["id"]: c for c in manifest["cost_sources"]}
    assert sources["latency_ms"]["policy_field"] == "latency_ms"
    assert sources["energy_mj"]["device"] == manifest["costs"]["energy"]["device"]
    (extra,) = [c for c in sources.values() if c["policy_field"] is None]
    assert (extra["objective"], extra["unit"], extra["device"]) == (
        "latency",
        "ms",
        table["device"],
    )
    assert str(out) in extra["source"]
    for p in manifest["paths"]:
        assert p["costs"][extra["id"]] == pytest.approx(priced(p["path"]), rel=1e-9)
        assert p["costs"]["latency_ms"] == p["latency_ms"]
        assert p["costs"]["energy_mj"] == p["energy_mj"]
    watts = tmp_path / "watts.json"
    watts.write_text(json.dumps({"unit": "W", "device": "x", "ops": {"a": 1.0}}))
    with pytest.raises(PRPError, match="unit is 'W'"):
        export_bundle(run_dir, tmp_path / "b2", top=2, data=data, price_with=[watts])
    assert not (tmp_path / "b2").exists()


def test_validation_runs_whole_paths(tiny_table, tmp_path) -> None:
    out, *_ = tiny_table
    copy = tmp_path / "t.json"
    shutil.copy(out, copy)
    v = validate_table(copy, paths=4, warmup=1, repeats=3, rounds=3)
    assert read_profile(copy)["validation"] == v
    predicted = [p["predicted_ms"] for p in v["per_path"]]
    measured = [p["measured_ms"] for p in v["per_path"]]
    assert len({tuple(p["path"]) for p in v["per_path"]}) == 4 and min(measured) > 0
    supernet = Supernet(get_space("nb201", size="tiny"))
    lut = get_cost_model("lut", "latency", path=copy)
    assert isinstance(lut, LUTCostModel)
    raw = price_supernet(supernet, dataclasses.replace(lut, correction=None))
    assert predicted == pytest.approx([raw(p["path"]) for p in v["per_path"]], abs=1e-6)
    figures = validation_figures(predicted, measured)
    assert v["kendall_tau_b"] == pytest.approx(figures["kendall_tau_b"], abs=1e-4)
    assert v["mape_pct"] == pytest.approx(figures["mape_pct"], abs=1e-3)
    # The fitted correction: least squares of measured on predicted, applied by the lut cost
    # model exactly where it lowers the 2-fold error.
    fix = v["correction"]
    # (refitted here from the figures as stored, rounded to 1e-6 ms: close, not equal)
    assert (fix["scale"], fix["offset_ms"]) == pytest.approx(
        affine_fit(predicted, measured), rel=1e-2, abs=1e-3
    )
    assert fix["applied"] == (
        fix["scale"] > 0 and figures["mape_pct_affine_2fold"] < figures["mape_pct"]
    )
    data = read_profile(copy)
    for applied in (True, False):
        data["validation"]["correction"] = {"scale": 2.0, "offset_ms": 0.5, "applied": applied}
        copy.write_text(json.dumps(data))
        priced = price_supernet(supernet, get_cost_model("lut", "latency", path=copy))
        want = [2.0 * raw(p["path"]) + 0.5 if applied else raw(p["path"]) for p in v["per_path"]]
        assert [priced(p["path"]) for p in v["per_path"]] == pytest.approx(want, abs=1e-9)
    # A new validation compares the table's own sums, not an earlier correction's.
    data["validation"]["correction"]["applied"] = True
    copy.write_text(json.dumps(data))
    again = validate_table(copy, paths=4, warmup=1, repeats=1, rounds=2)
    assert [p["predicted_ms"] for p in again["per_path"]] == pytest.approx(predicted, abs=1e-6)
    # Each path was timed in 3 rounds once all were lowered; the table meets their mean, and
    # the repeat figure compares the mean of the odd rounds with that of the even ones.
    rounds = np.array([p["rounds_ms"] for p in v["per_path"]])
    assert rounds.shape == (4, 3) and v["rounds"] == 3 and (rounds > 0).all()
    assert measured == pytest.approx(rounds.mean(axis=1), abs=1e-5)
    assert v["repeat"]["kendall_tau_b"] == pytest.approx(
        validation_figures(rounds[:, 1], (rounds[:, 0] + rounds[:, 2]) / 2)["kendall_tau_b"],
        abs=1e-4,
    )
    with pytest.raises(ProfileError, match="--rounds must be at least 2"):
        validate_table(copy, paths=4, warmup=1, repeats=3, rounds=1)


def _messages(text: str) -> set[str]:
    """The distinct lines of `text`, less the time and process id of glog-style lines."""
    glog = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ ")
    return {glog.sub("", line).strip() for line in text.splitlines() if line.strip()}


def test_prp_profile_keeps_third_party_output_in_a_log(tiny_table, tmp_path) -> None:
    # What ExecuTorch, torch and their native code print while lowering and running paths goes
    # to TABLE.log beside the table, not to the terminal; --verbose shows it there (issue 19).
    table = tmp_path / "t.json"
    shutil.copy(tiny_table[0], table)
    exe = shutil.which("prp-profile") or str(Path(sys.executable).parent / "prp-profile")
    args = [exe, "--validate", str(table), "--paths", "2", "--warmup", "0", "--repeats", "1"]
    args += ["--rounds", "2"]
    quiet = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    log = tmp_path / "t.json.log"
    logged = _messages(log.read_text())
    assert logged, "t.json.log holds none of the third-party output of the validation"
    assert quiet.stderr == "" and not logged & _messages(quiet.stdout)
    said = " ".join(quiet.stdout.split())
    assert "Kendall tau-b" in said and str(log) in said
    fix = read_profile(table)["validation"]["correction"]
    assert "mean of 2 rounds" in said and f"correction x {fix['scale']:.3f}" in said
    assert ("applies it" if fix["applied"] else "not applied") in said
    verbose = subprocess.run([*args, "--verbose"], capture_output=True, text=True, timeout=600)
    assert verbose.returncode == 0, verbose.stdout + verbose.stderr
    assert logged <= _messages(verbose.stderr) and _messages(log.read_text()) == logged


def test_table_of_another_space_is_refused(tiny_table, tmp_path) -> None:
    out, *_ = tiny_table
    before = out.read_bytes()
    with pytest.raises(ProfileError, match=r"holds a table for space nb201 \(tiny\), not fbnet"):
        profile_space(get_space("fbnet", size="tiny"), out, **FAST)
    with pytest.raises(ProfileError, match=r"table for space nb201 \(tiny\), not --space fbnet"):
        validate_table(out, paths=2, space="fbnet")
    with pytest.raises(LUTKeyError, match=r"measured for space nb201 \(tiny\).*has no entry"):
        price_supernet(
            Supernet(get_space("fbnet", size="tiny")), get_cost_model("lut", "latency", path=out)
        )
    assert out.read_bytes() == before
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": 1}')
    with pytest.raises(ProfileError, match="is not a prp-profile table"):
        profile_space(get_space("nb201", size="tiny"), foreign, **FAST)
    assert foreign.read_text() == '{"mine": 1}'
    exe = shutil.which("prp-profile") or str(Path(sys.executable).parent / "prp-profile")
    cli = subprocess.run(
        [exe, "--validate", str(out), "--space", "fbnet"], capture_output=True, text=True
    )
    assert cli.returncode == 2 and "Traceback" not in cli.stdout + cli.stderr
    assert "error:" in cli.stdout and "not --space fbnet" in " ".join(cli.stdout.split())


def test_validation_arithmetic_on_a_hand_made_table() -> None:
    # Every path 0.5 ms slower than its sum: MAPE by hand, and a fitted offset removes it all.
    v = validation_figures([1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 3.5, 4.5])
    assert v["kendall_tau_b"] == pytest.approx(1.0)
    assert v["mape_pct"] == pytest.approx(100 * (0.5 / 1.5 + 0.5 / 2.5 + 0.5 / 3.5 + 0.5 / 4.5) / 4)
    assert v["mean_missing_ms"] == pytest.approx(0.5)
    assert v["mape_pct_with_offset_2fold"] == pytest.approx(0.0, abs=1e-12)
    assert v["mape_pct_affine_2fold"] == pytest.approx(0.0, abs=1e-9)
    # Every path 20 % slower plus 0.1 ms: an offset alone leaves an error, scale and offset none.
    sums = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    v = validation_figures(sums, [1.2 * s + 0.1 for s in sums])
    assert v["mape_pct_with_offset_2fold"] > 1.0
    assert v["mape_pct_affine_2fold"] == pytest.approx(0.0, abs=1e-9)
    assert affine_fit(sums, [1.2 * s + 0.1 for s in sums]) == pytest.approx((1.2, 0.1))
    assert affine_fit([2.0, 2.0], [2.5, 2.7]) == pytest.approx((1.0, 0.6))  # only an offset
    # One discordant pair of six: tau-b = (5 - 1) / 6.
    v = validation_figures([1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 3.0, 4.0])
    assert v["kendall_tau_b"] == pytest.approx(4 / 6)
    assert v["mape_pct"] == pytest.approx(100 * (0.5 + 1.0) / 4)
    with pytest.raises(ProfileError):
        validation_figures([1.0], [1.0])
    # The table from hand-made measurements. A call costs 0.01 ms; per shape, one identity conv
    # program minus (two minus one) minus the call is the layout conversion at both ends:
    # 1x4x8x8: 0.05 - 0.02 - 0.01 = 0.02, 1x3x8x8: 0.04 - 0.015 - 0.01 = 0.015. Each op loses
    # the call and half the conversion of its input and of its output; the stem, which every
    # path runs once, gets back the call and half the network input's conversion.
    m = nn.Identity()
    programs = {
        "stem": OpProgram("stem", m, (1, 3, 8, 8), (1, 4, 8, 8), uses=1, fixed=True),
        "conv": OpProgram("conv", m, (1, 4, 8, 8), (1, 4, 8, 8), uses=3),
        "skip": OpProgram("skip", m, (1, 4, 8, 8), (1, 4, 8, 8), free=True),
    }
    measured = {"stem": {"median_ms": 0.05}, "conv": {"median_ms": 0.21}}
    baselines = {
        "1x4x8x8": {"one": {"median_ms": 0.05}, "two": {"median_ms": 0.07}},
        "1x3x8x8": {"one": {"median_ms": 0.04}, "two": {"median_ms": 0.055}},
    }
    call = {"median_ms": 0.01}
    ops, target = assemble_table(programs, measured, call, baselines, (1, 3, 8, 8))
    assert target == "stem"
    stem = 0.05 - 0.01 - 0.015 / 2 - 0.02 / 2 + 0.01 + 0.015 / 2
    assert ops == pytest.approx({"stem": stem, "conv": 0.21 - 0.01 - 0.02, "skip": 0.0})
    # Without layout baselines only the call overhead moves.
    ops, _ = assemble_table(programs, measured, call)
    assert ops == pytest.approx({"stem": 0.05, "conv": 0.20, "skip": 0.0})


def test_onnxruntime_backend_times_an_op() -> None:
    op = get_space("nb201", size="tiny").build().cells[0].edges[0].candidates[3]  # 3x3 conv
    t = measure(op, (1, 4, 32, 32), "onnxruntime", threads=1, **FAST)
    assert 0 < t.p25_ms <= t.median_ms <= t.p75_ms and t.repeats == 3


def test_rapl_counter_reads_package_zones_across_a_wrap(tmp_path: Path) -> None:
    zone = tmp_path / "intel-rapl:0"
    (tmp_path / "intel-rapl:0:0").mkdir(parents=True)  # a sub-zone: counted in its package
    (tmp_path / "intel-rapl:0:0" / "energy_uj").write_text("7\n")
    (tmp_path / "intel-rapl:0:0" / "max_energy_range_uj").write_text("999\n")
    (tmp_path / "intel-rapl:1").mkdir()  # no readable counter
    zone.mkdir(exist_ok=True)
    (zone / "energy_uj").write_text("900\n")
    (zone / "max_energy_range_uj").write_text("999\n")
    rapl = RaplCounter.find(tmp_path)
    assert rapl is not None and rapl.files == (zone / "energy_uj",)
    start = rapl.read()
    (zone / "energy_uj").write_text("100\n")  # wrapped past 999
    assert rapl.microjoules_since(start) == 200
    assert RaplCounter.find(tmp_path / "absent") is None
