"""prp-profile on a phone: a kit built here (`prp-profile --kit`), measured by the Android bridge's
`OpProfiler` through `NativeEngine` (JNI over ExecuTorch's C++ runtime: the engine a desktop has
where a phone has `ExecuTorchEngine`), read back by the trainer's `lut` cost model.

Needs the bridge built by android_bridge/build.sh (the fixtures of test_android_bridge.py: skipped
without a fresh build, failed instead under PRP_REQUIRE_ANDROID_BRIDGE=1).
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from prp.trainer.costs import get_cost_model, price_supernet
from prp.trainer.device_profile import (
    KIT_MANIFEST,
    KIT_PROGRAM,
    ProfileError,
    assemble_table,
    op_programs,
    profile_app,
    read_profile,
    validate_table,
    write_kit,
)
from prp.trainer.spaces import get_space
from prp.trainer.supernet import Supernet
from test_android_bridge import ROOT, classpath, java, native_library  # noqa: F401 - fixtures
from typer.testing import CliRunner

SPACE = ("nb201", "tiny")


def prp_profile(*args: str) -> tuple[int, str]:
    """The prp-profile command line, in this process (torch is imported already)."""
    result = CliRunner().invoke(profile_app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            "prp-profile raised instead of printing an error"
        ) from result.exception
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real kit of tiny NB201, written by the prp-profile command line (lowering its 22
    programs takes most of this file's time)."""
    kit_dir = tmp_path_factory.mktemp("kit") / "nb201-tiny"
    space = ["--space", SPACE[0], "--size", SPACE[1]]
    code, output = prp_profile(*space, "--kit", str(kit_dir), "--warmup", "3", "--repeats", "9")
    assert code == 0 and f"wrote {kit_dir / KIT_PROGRAM}" in output, output
    code, output = prp_profile(*space, "--kit", str(kit_dir), "--out", str(kit_dir / "t.json"))
    assert code == 2 and "error: give one of --out" in output and "Traceback" not in output
    return kit_dir


def profile_on_native(
    cp: str, library: Path, kit_dir: Path, out: Path, *options: str
) -> dict[str, object]:
    """NativeProfileCheck's report: the table written, or the ProfileException's message."""
    run = java(
        cp, f"-Dprp.native.lib={library}", "org.prpnas.bridge.NativeProfileCheck",
        str(kit_dir), str(out), *options,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_phone_profiler_writes_the_table_the_trainer_reads(
    classpath: str,  # noqa: F811
    native_library: Path,  # noqa: F811
    kit: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "phone.json"
    report = profile_on_native(classpath, native_library, kit, out, "--repeats", "5")
    assert "error" not in report, report
    table = read_profile(out)  # prp-profile's own reader: format, version, space, measurements
    kit_data = json.loads((kit / KIT_MANIFEST).read_text())
    assert table["space"] == kit_data["space"]
    assert table["complete"] and table["objective"] == "latency" and table["unit"] == "ms"
    assert table["backend"] == "executorch-native" and table["threads"] == report["threads"] == 1
    assert table["device"] and table["date"] and table["provenance"]["engine"] == "NativeEngine"
    assert table["method"]["warmup"] == 3 and table["method"]["repeats"] == 5  # kit, option

    # Every signature the trainer's op tracing produces is priced, with a real measurement.
    space = get_space(*SPACE)
    supernet = Supernet(space)
    programs = op_programs(supernet)
    assert set(table["ops"]) == set(programs)
    measured = {s for s, p in programs.items() if not p.free}
    assert set(table["measurements"]) == measured and report["signatures"] == len(programs)
    for sig, m in table["measurements"].items():
        assert 0 < m["p25_ms"] <= m["median_ms"] <= m["p75_ms"] < math.inf, sig
        assert m["repeats"] == 5 and m["uses"] == programs[sig].uses
    assert all(math.isfinite(v) and v >= 0 for v in table["ops"].values())
    assert sum(table["ops"].values()) > 0

    # The Java corrections are prp-profile's, to the bit: assemble_table on the Java figures.
    method = table["method"]
    ops, target = assemble_table(
        programs,
        table["measurements"],
        method["call_overhead"],
        method["layout_baselines"],
        (1, *space.input_shape),
    )
    assert target == method["overhead_folded_into"] == "Stem_H32_W32_Cin3_Cout4"
    assert ops == pytest.approx(table["ops"], rel=0, abs=1e-12)
    assert set(method["layout_conversion_ms"]) == {k["shape"] for k in kit_data["layout_baselines"]}

    # prp-train's cost model prices every path of the space from it.
    priced = price_supernet(supernet, get_cost_model("lut", "latency", path=out))
    assert priced.unit == "ms" and priced.device == table["device"]
    every = list(itertools.product(*(range(len(s.ops)) for s in space.slots)))
    assert len(every) == space.num_paths
    costs = priced.many(every)
    assert np.isfinite(costs).all() and (costs > 0).all()
    # --validate runs paths here, so it says it cannot check another device's table.
    with pytest.raises(ProfileError, match="backend 'executorch-native', on another device"):
        validate_table(out, paths=2)


def test_phone_profiler_refuses_another_space_and_foreign_files(
    classpath: str,  # noqa: F811
    native_library: Path,  # noqa: F811
    kit: Path,
    tmp_path: Path,
) -> None:
    def error(kit_dir: Path, out: Path, *options: str) -> str:
        report = profile_on_native(classpath, native_library, kit_dir, out, *options)
        assert "error" in report, report
        return " ".join(str(report["error"]).split())

    out = tmp_path / "phone.json"
    message = error(kit, out, "--space", "fbnet", "--size", "tiny")
    assert message == (
        f"org.prpnas.bridge.ProfileException: profile kit {kit} is for space nb201 (tiny), not "
        f"fbnet (tiny): its programs would not price that space; build one with prp-profile "
        f"--space fbnet --size tiny --kit DIR"
    )
    assert not out.exists()

    # A table of another space, or a file that is no table, is never overwritten.
    other = tmp_path / "fbnet.json"
    other.write_text(json.dumps({"format": "prp-profile", "space": {"name": "fbnet"}}))
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"mine": 1}')
    for path, says in [
        (other, "holds a table for space fbnet (?), not nb201 (tiny)"),
        (foreign, "is not a prp-profile table"),
    ]:
        before = path.read_bytes()
        assert says in error(kit, path), path
        assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fbnet.json", "notes.json"]  # no temp

    # Another program than the kit's (a bundle's), and a kit whose program was swapped.
    bundle = ROOT / "exported" / "smoke" / "supernet.pte"
    message = error(kit, out, "--program", str(bundle))
    assert (
        "the engine's program has no method call_overhead" in message and "open the kit" in message
    )
    swapped = tmp_path / "swapped"
    shutil.copytree(kit, swapped)
    shutil.copy(bundle, swapped / KIT_PROGRAM)
    message = error(swapped, out)
    assert (
        f"{swapped / KIT_PROGRAM} is not the program {swapped / KIT_MANIFEST} describes" in message
    )
    assert "build the kit with prp-profile --space S --kit DIR" in message
    assert not out.exists()


def test_kit_never_overwrites_files_it_did_not_write(tmp_path: Path) -> None:
    space = get_space(*SPACE)
    mine = tmp_path / "kit"
    mine.mkdir()
    (mine / KIT_MANIFEST).write_text('{"mine": 1}')
    with pytest.raises(ProfileError, match="is not a prp-profile kit"):
        write_kit(space, mine)
    assert (mine / KIT_MANIFEST).read_text() == '{"mine": 1}'
    (mine / KIT_MANIFEST).unlink()
    (mine / KIT_PROGRAM).write_bytes(b"mine")
    with pytest.raises(ProfileError, match="no kit.json says prp-profile wrote it"):
        write_kit(space, mine)
    assert (mine / KIT_PROGRAM).read_bytes() == b"mine"
    with pytest.raises(ProfileError, match="is not a folder"):
        write_kit(space, mine / KIT_PROGRAM)
