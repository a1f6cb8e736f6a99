"""Safety of the runtime on hostile or broken input (issue 18): bundles that reach outside their
folder, unlisted files, bad battery values, malformed manifests and images, unbounded memory.

Every test runs the real runtime on a copy of the shipped bundle (exported/smoke), changed the
way a damaged or malicious bundle would be.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_variants import SMOKE, battery_levels, battery_pick, read_manifest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prp.runtime import (
    AdaptiveModel,
    Bundle,
    BundleError,
    InputError,
    PolicyError,
    PushedBattery,
    policy_from_manifest,
)
from prp.runtime.bundle import load_manifest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
# What the tests expect comes from the shipped manifest, never from literals of one export.
SHIPPED = read_manifest(SMOKE)
LAST_GRAPH = SHIPPED["paths"][-1]["onnx"]  # the ONNX file of the least accurate path
N_CLASSES = len(SHIPPED["classes"])


def copy_bundle(where: Path) -> Path:
    out = where / "bundle"
    shutil.copytree(SMOKE, out)
    return out


def edit_manifest(bundle: Path, change: Callable[[dict[str, Any]], None]) -> None:
    manifest = bundle / "manifest.json"
    data = json.loads(manifest.read_text())
    change(data)
    manifest.write_text(json.dumps(data, indent=1))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def hard_timeout(seconds: float) -> Iterator[None]:
    """Fail, instead of hanging the suite, if the body blocks (on a FIFO, say)."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s: the loader blocked")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def prp_run(*args: str) -> tuple[int, str]:
    from prp.runtime.cli import run_app

    result = CliRunner().invoke(run_app, [*args, "--backend", "onnxruntime"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("prp-run raised instead of printing an error") from result.exception
    return result.exit_code, result.output


def npy_image(where: Path, seed: int = 0) -> Path:
    f = where / "image.npy"
    np.save(f, np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return f


# ---------------------------------------------------------------- 3. reads outside the bundle
@pytest.mark.parametrize("name", ["../outside.bin", "/etc/passwd", "/proc/kmsg", "x/../../y"])
def test_file_names_that_leave_the_bundle_are_refused_unread(tmp_path: Path, name: str) -> None:
    bundle = copy_bundle(tmp_path)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret bytes outside the bundle")
    # With the right digest the old loader accepted the file outright; /proc/kmsg hung it.
    digest = sha256(outside) if name == "../outside.bin" else "0" * 64
    edit_manifest(bundle, lambda m: m["files"].update({name: digest}))
    with hard_timeout(20), pytest.raises(BundleError, match="plain file name") as err:
        load_manifest(bundle)
    assert name in str(err.value)


def test_symlinks_out_of_the_bundle_and_special_files_are_refused(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret bytes outside the bundle")
    (bundle / "extra.bin").symlink_to(outside)
    edit_manifest(bundle, lambda m: m["files"].update({"extra.bin": sha256(outside)}))
    with pytest.raises(BundleError, match="extra.bin points outside the bundle folder"):
        load_manifest(bundle)

    # A FIFO (or a device) is never opened: opening a FIFO blocks until someone writes to it.
    fifo = copy_bundle(tmp_path / "fifo")
    (fifo / LAST_GRAPH).unlink()
    os.mkfifo(fifo / LAST_GRAPH)
    not_regular = f"{re.escape(LAST_GRAPH)} is not a regular file"
    with hard_timeout(20), pytest.raises(BundleError, match=not_regular):
        load_manifest(fifo)

    # A symlink that stays inside the bundle is fine: only escaping is refused.
    inside = copy_bundle(tmp_path / "inside")
    (inside / LAST_GRAPH).rename(inside / f"real_{LAST_GRAPH}")
    (inside / LAST_GRAPH).symlink_to(f"real_{LAST_GRAPH}")
    assert load_manifest(inside).data["files"][LAST_GRAPH]


def test_a_graph_outside_the_bundle_is_not_loaded(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    stray = tmp_path / "stray.onnx"
    shutil.copy(SMOKE / LAST_GRAPH, stray)
    shutil.copy(SMOKE / "weights.bin", tmp_path)  # all the stray graph needs to load

    def point_outside(m: dict[str, Any]) -> None:
        m["paths"][0]["onnx"] = "../stray.onnx"
        m["files"]["../stray.onnx"] = sha256(stray)

    edit_manifest(bundle, point_outside)
    with pytest.raises(BundleError, match="plain file name"):
        AdaptiveModel(bundle, battery=PushedBattery(90), backend="onnxruntime")


@pytest.mark.parametrize("name", ["weights.bin", "supernet.pte"])
def test_every_file_a_backend_reads_must_be_listed(tmp_path: Path, name: str) -> None:
    bundle = copy_bundle(tmp_path)
    # Zeroed and unlisted: the old loader never checked it, and ONNX Runtime then predicted
    # from all-zero weights.
    (bundle / name).write_bytes(bytes((bundle / name).stat().st_size))
    edit_manifest(bundle, lambda m: m["files"].pop(name))
    with pytest.raises(BundleError, match=f"does not list {name}"):
        AdaptiveModel(bundle, battery=PushedBattery(90), backend="onnxruntime")


def test_a_checksum_mismatch_names_the_file_but_no_hash(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    raw = bytearray((bundle / "weights.bin").read_bytes())
    raw[100] ^= 0xFF
    (bundle / "weights.bin").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="weights.bin is corrupt or truncated") as err:
        load_manifest(bundle)
    message = str(err.value)
    actual, expected = sha256(bundle / "weights.bin"), sha256(SMOKE / "weights.bin")
    assert actual[:8] not in message and expected[:8] not in message


# ------------------------------------------------------------------ 4. --path implies fixed
def test_prp_run_path_runs_the_named_path(tmp_path: Path) -> None:
    image = npy_image(tmp_path)
    # At 100 % the battery policy would pick `full`; naming another path must run that one.
    full = battery_pick(SHIPPED, 100.0)
    named = next(p["id"] for p in reversed(SHIPPED["paths"]) if p["id"] != full)
    code, out = prp_run(str(SMOKE), str(image), "--battery", "100", "--path", named)
    assert code == 0, out
    assert named in out and "fixed policy" in out and full not in out
    code, out = prp_run(
        str(SMOKE), str(image), "--battery", "100", "--policy", "battery", "--path", named
    )
    assert code == 2 and f"--path {named} runs one path" in out, out


# ------------------------------------------------------------------------ 5. battery values
@pytest.mark.parametrize("bad", [math.nan, math.inf, -5, 150, "50", True])
def test_battery_levels_are_checked_in_one_place(bad: Any) -> None:
    from prp.runtime.battery import BatteryError, battery_source, check_battery_pct

    with pytest.raises(BatteryError, match="0-100"):
        PushedBattery(bad)
    with pytest.raises(BatteryError, match="0-100"):
        PushedBattery(50).push(bad)
    with pytest.raises(BatteryError, match="0-100"):
        check_battery_pct(bad)
    if not isinstance(bad, (str, bool)):
        with pytest.raises(BatteryError, match="0-100"):
            battery_source(str(bad))
    assert check_battery_pct(np.float32(42.5)) == 42.5 and check_battery_pct(None) is None


def test_a_source_reading_nan_does_not_silently_pick_the_cheapest_path() -> None:
    from prp.runtime.battery import BatteryError

    class BrokenSensor:
        def read(self) -> float | None:
            return math.nan

    with pytest.raises(BatteryError, match="BrokenSensor.read"):
        AdaptiveModel(SMOKE, battery=BrokenSensor(), backend="onnxruntime")


def test_prp_run_refuses_a_nan_battery(tmp_path: Path) -> None:
    code, out = prp_run(str(SMOKE), str(npy_image(tmp_path)), "--battery", "nan")
    assert code == 2 and "0-100" in out, out


# ----------------------------------------------------------- 6. messages, not tracebacks
def test_an_empty_batch_is_refused_clearly_on_executorch() -> None:
    model = AdaptiveModel(SMOKE, battery=PushedBattery(90), backend="executorch")
    with pytest.raises(InputError, match="no images"):
        model.predict(np.zeros((0, 32, 32, 3), dtype=np.uint8))


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that claims `width` x `height` pixels (Pillow reads the size before any pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def test_prp_run_reports_bad_image_files(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    png_header_only(bomb, 20_000, 10_000)  # 200 Mpixel: Pillow's decompression-bomb refusal
    code, out = prp_run(str(SMOKE), str(bomb), "--battery", "50")
    assert code == 2 and "cannot read image" in out and "bomb.png" in out, out
    npz = tmp_path / "batch.npy"
    with npz.open("wb") as f:  # an .npz archive under a .npy name
        np.savez(f, x=np.zeros((1, 32, 32, 3), dtype=np.uint8))
    code, out = prp_run(str(SMOKE), str(npz), "--battery", "50")
    assert code == 2 and "is not a .npy array" in out, out


def _drop_policies(m: dict[str, Any]) -> None:
    m["policies"] = {}


def _drop_a_class(m: dict[str, Any]) -> None:
    m["classes"] = m["classes"][:-1]


def _string_means(m: dict[str, Any]) -> None:
    m["input"]["mean"] = [str(v) for v in m["input"]["mean"]]


def _bad_shape(m: dict[str, Any]) -> None:
    m["input"]["shape"] = [1, 3, 32]


def _offset_out_of_range(m: dict[str, Any]) -> None:
    m["paths"][1]["onnx_initializers"][0]["offset"] = 10**9


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_drop_policies, r"policies\.battery must be an object"),
        (
            _drop_a_class,
            f"classes lists {N_CLASSES - 1} names but the network has {N_CLASSES} outputs",
        ),
        (_string_means, r"input\.mean must be numbers"),
        (_bad_shape, r"input\.shape must be 4 integers"),
        (_offset_out_of_range, r"onnx_initializers\[0\] .* reads bytes 1000000000-"),
    ],
)
def test_malformed_manifests_get_one_clear_error(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    bundle = copy_bundle(tmp_path)
    edit_manifest(bundle, change)
    with pytest.raises(BundleError, match=message) as err:
        model = AdaptiveModel(bundle, battery=PushedBattery(90), backend="onnxruntime")
        model.predict(np.zeros((1, 32, 32, 3), dtype=np.uint8))
    assert "\n" not in str(err.value)
    if change is _drop_policies:  # and the CLI turns it into exit status 2
        code, out = prp_run(str(bundle), str(npy_image(tmp_path)), "--battery", "50")
        assert code == 2 and "policies.battery" in out, out


# ---------------------------------------------------------------------- 7. bounded memory
def test_large_batches_run_in_chunks_with_bounded_memory() -> None:
    code = textwrap.dedent(f"""
        import resource
        import numpy as np
        import prp.runtime as rt
        m = rt.AdaptiveModel({str(SMOKE)!r}, battery=rt.PushedBattery(90), backend="onnxruntime")
        x = np.random.default_rng(0).integers(0, 256, (4000, 32, 32, 3), dtype=np.uint8)
        m.predict(x[:2])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        p = m.predict(x)
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print("grown", grown_mb, p.logits.shape)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    grown_mb = float(out.stdout.split()[1])
    # In one call ONNX Runtime grew by ~700 MB for 4,000 images here (2.2 GB for 10,000).
    assert f"(4000, {N_CLASSES})" in out.stdout and grown_mb < 250, out.stdout


def test_chunks_give_the_same_logits_as_one_batch() -> None:
    x = np.random.default_rng(1).integers(0, 256, (70, 32, 32, 3), dtype=np.uint8)
    whole = AdaptiveModel(SMOKE, battery=PushedBattery(90), backend="onnxruntime")
    chunked = AdaptiveModel(SMOKE, battery=PushedBattery(90), backend="onnxruntime", max_batch=16)
    np.testing.assert_allclose(chunked.predict(x).logits, whole.predict(x).logits, atol=1e-5)
    with pytest.raises(ValueError, match="max_batch"):
        AdaptiveModel(SMOKE, battery=PushedBattery(90), backend="onnxruntime", max_batch=0)


def test_the_switch_log_is_bounded() -> None:
    battery = PushedBattery(100)
    model = AdaptiveModel(SMOKE, battery=battery, backend="onnxruntime", max_switches=4)
    x = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    for k in range(20):
        battery.push(0.0 if k % 2 == 0 else 100.0)
        model.predict(x)
    assert model.switch_count == 21  # the initial choice and 20 switches
    assert len(model.switches) == 4
    battery_levels(SHIPPED, at_least=2)  # else there is nothing to switch between
    empty = battery_pick(SHIPPED, 0.0)
    full = battery_pick(SHIPPED, 100.0, current=empty)
    assert [s.to_path for s in model.switches] == [empty, full, empty, full]


# ------------------------------------------------------------------ fuzzing load_manifest
ORIGINAL = json.loads((SMOKE / "manifest.json").read_text())


def _pointers(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at] if at else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _pointers(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _pointers(value, (*at, i))
    return out


POINTERS = _pointers(ORIGINAL)
# Shallow pointers (the fields the runtime reads) as likely as the ~1,000 initializer leaves.
SHALLOW = [p for p in POINTERS if len(p) <= 3 and p[0] != "provenance"]
NAMES = ["../x", "/etc/passwd", "..", ".", "", "a/b", "c:\\x", "weights.bin", "path_0.onnx"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN and infinities included
    st.text(max_size=12),
    st.sampled_from(NAMES + ["path_0", "battery", "float32", "NCHW", "0" * 64]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
MUTATION = st.tuples(
    st.sampled_from(["replace", "delete", "retype", "rename", "duplicate"]),
    st.one_of(st.sampled_from(SHALLOW), st.sampled_from(POINTERS)),
    VALUES,
    st.one_of(st.sampled_from(NAMES), st.text(max_size=8)),
)


def _mutate(data: Any, mutation: tuple[str, tuple[Any, ...], Any, str]) -> None:
    op, pointer, value, name = mutation
    parent = data
    for step in pointer[:-1]:  # an earlier mutation may have removed the way there
        try:
            parent = parent[step]
        except (KeyError, IndexError, TypeError):
            return
    key = pointer[-1]
    if not isinstance(parent, (dict, list)) or (
        key not in parent
        if isinstance(parent, dict)
        else not (isinstance(key, int) and key < len(parent))
    ):
        return
    if op == "replace":
        parent[key] = value
    elif op == "delete":
        del parent[key]
    elif op == "retype":
        old = parent[key]
        parent[key] = [old] if not isinstance(old, list) else json.dumps(old)
    elif op == "rename" and isinstance(parent, dict):
        parent[name] = parent.pop(key)
    elif op == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[key]))


@pytest.fixture(scope="module")
def fuzz_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_bundle(tmp_path_factory.mktemp("fuzz"))


@settings(
    max_examples=150,
    deadline=timedelta(seconds=10),
    database=None,  # no .hypothesis folder in the shared tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_manifests_load_or_give_a_bundle_error(
    fuzz_bundle: Path, mutations: list[tuple[str, tuple[Any, ...], Any, str]]
) -> None:
    data = copy.deepcopy(ORIGINAL)
    for mutation in mutations:
        _mutate(data, mutation)
    (fuzz_bundle / "manifest.json").write_text(json.dumps(data))
    with hard_timeout(10):
        try:
            loaded = load_manifest(fuzz_bundle)
        except BundleError as e:
            assert "\n" not in str(e)
            return
    # What loads is usable: the policies read their tables without tripping over them.
    for name in ("battery", "schedule", "energy-budget", "fixed"):
        try:
            policy_from_manifest(loaded.data, name)
        except PolicyError:
            pass
    assert Bundle(loaded.directory, loaded.data).ids


def test_the_unmutated_manifest_loads(fuzz_bundle: Path) -> None:
    (fuzz_bundle / "manifest.json").write_text(json.dumps(ORIGINAL))
    assert load_manifest(fuzz_bundle).data == ORIGINAL
