"""Export a really trained tiny run; run the bundle with the real ExecuTorch and ONNX Runtime."""

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
import onnxruntime as ort
import pytest
import torch
from bundle_variants import SMOKE
from conftest import copy_of_tiny_run
from executorch.runtime import Runtime
from prp.runtime.backends import onnx_session_options
from prp.runtime.bundle import BundleError, load_manifest, validate_manifest
from prp.runtime.policies import COST_FIELDS, ladder, passed_pairs, rungs_of
from prp.trainer.datasets import to_tensor
from prp.trainer.export import ExportError, calibrated_path_module, export_bundle, load_run
from prp.trainer.lowering import live_tensors, pte_named_data


@pytest.fixture(scope="module")
def run_dir(tiny_run, tmp_path_factory) -> Path:
    return copy_of_tiny_run(tiny_run, tmp_path_factory)


@pytest.fixture(scope="module")
def bundle(run_dir, data, tmp_path_factory) -> Path:
    return export_bundle(run_dir, tmp_path_factory.mktemp("exported") / "tiny", top=3, data=data)


def test_manifest_is_valid_and_lists_every_file(bundle) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert validate_manifest(manifest) == []
    assert set(manifest["files"]) == {p.name for p in bundle.iterdir()} - {"manifest.json"}
    assert [p["method"] for p in manifest["paths"]] == ["path_0", "path_1", "path_2"]
    accs = [p["accuracy"] for p in manifest["paths"]]
    assert accs == sorted(accs, reverse=True)
    cost = COST_FIELDS[manifest["objective"]][0]
    assert manifest["costs"]["energy"]["unit"] == "mJ"
    assert manifest["policies"]["schedule"]["switch_every_h"] == 5.0
    levels = manifest["policies"]["battery"]["levels"]
    # The tables walk the ladder: dominated paths, and paths no paired test on the held-out
    # images found more accurate than a cheaper one, stay in the bundle but on no table.
    tests = manifest["ladder_tests"]
    assert tests["images"] > 0 and "validation" in tests["split"]
    assert len(tests["pairs"]) == sum(
        a[cost] > b[cost] for a in manifest["paths"] for b in manifest["paths"]
    )
    on = ladder(rungs_of(manifest["paths"], manifest["objective"]), passed_pairs(manifest))
    assert [lv["path"] for lv in levels] == on == manifest["policies"]["schedule"]["order"]
    assert levels[-1]["min_battery_pct"] == 0.0
    load_manifest(bundle)  # checksums hold


def test_every_method_and_graph_matches_pytorch(bundle, run_dir, data) -> None:
    manifest = load_manifest(bundle).data
    run = load_run(run_dir)
    train_x = to_tensor(data.train.images, data.mean, data.std)
    x = to_tensor(data.test.images[:6], data.mean, data.std)
    program = Runtime.get().load_program(str(bundle / "supernet.pte"))
    assert set(program.method_names) == {p["method"] for p in manifest["paths"]}
    for p in manifest["paths"]:
        module = calibrated_path_module(
            run, tuple(p["path"]), train_x, torch.tensor(data.train.labels)
        )
        with torch.no_grad():
            expected = module(x).numpy()
        method = program.load_method(p["method"])
        got_et = np.concatenate([method.execute([xi[None]])[0].numpy() for xi in x])
        session = ort.InferenceSession(
            str(bundle / p["onnx"]), onnx_session_options(), providers=["CPUExecutionProvider"]
        )
        got_ort = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(got_et, expected, atol=1e-4)
        np.testing.assert_allclose(got_ort, expected, atol=1e-4)
        assert max(p["max_abs_diff"].values()) < 1e-3


def test_weights_are_stored_once(bundle) -> None:
    manifest = load_manifest(bundle).data
    distinct = manifest["export"]["distinct_weight_bytes"]
    # ONNX: one weights file, each distinct tensor once, the graphs hold no big tensors.
    assert (bundle / "weights.bin").stat().st_size <= 1.01 * distinct
    # ExecuTorch: the one program is smaller than the same paths exported one by one would be.
    assert (bundle / "supernet.pte").stat().st_size < 3 * distinct + 200_000


def test_corrupt_or_truncated_files_are_detected(bundle, tmp_path) -> None:
    for name, damage in (
        ("supernet.pte", "truncate"),
        ("weights.bin", "flip"),
        ("path_0.onnx", "flip"),
    ):
        copy = tmp_path / f"{name}-{damage}"
        shutil.copytree(bundle, copy)
        raw = bytearray((copy / name).read_bytes())
        if damage == "truncate":
            raw = raw[: len(raw) // 2]
        else:
            raw[len(raw) // 2] ^= 0xFF
        (copy / name).write_bytes(bytes(raw))
        with pytest.raises(BundleError, match=f"{name} is corrupt or truncated"):
            load_manifest(copy)
    broken = tmp_path / "manifest-broken"
    shutil.copytree(bundle, broken)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="damaged"):
        load_manifest(broken)
    with pytest.raises(BundleError, match="is not a bundle"):
        load_manifest(tmp_path)


def test_bad_requests_give_clear_errors_and_leave_nothing(run_dir, data, tmp_path) -> None:
    out = tmp_path / "bundles" / "x"
    n_front = len(json.loads((run_dir / "front.json").read_text())["paths"])
    with pytest.raises(ExportError, match=f"more than the {n_front} paths"):
        export_bundle(run_dir, out, top=n_front + 1, data=data)
    with pytest.raises(ExportError, match="cannot export path 'not-a-path'"):
        export_bundle(run_dir, out, paths=["not-a-path"], data=data)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(run_dir / "config.json", unfinished / "config.json")
    with pytest.raises(ExportError, match="has no front.json.*--resume"):
        export_bundle(unfinished, out, data=data)
    assert not out.exists()
    # No temporary or half-written folder is left behind anywhere.
    assert not [q for q in tmp_path.rglob("*") if q.name.startswith(".")]


def test_named_paths_export_and_replace_an_old_bundle(run_dir, data, tmp_path) -> None:
    front = json.loads((run_dir / "front.json").read_text())
    keys = [p["key"] for p in front["paths"][-2:]]
    out = tmp_path / "named"
    export_bundle(run_dir, out, top=1, data=data)
    export_bundle(run_dir, out, paths=keys, data=data)  # replaces the 1-path bundle
    manifest = load_manifest(out).data
    assert sorted(p["key"] for p in manifest["paths"]) == sorted(keys)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _messages(text: str) -> set[str]:
    """The distinct lines of `text`, less the time and process id of glog-style lines."""
    glog = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ ")
    return {glog.sub("", line).strip() for line in text.splitlines() if line.strip()}


def test_prp_export_cli(run_dir, tmp_path) -> None:
    exe = shutil.which("prp-export") or str(Path(sys.executable).parent / "prp-export")
    result = subprocess.run(
        [exe, str(run_dir), "--top", "2", "--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "path_1" in result.stdout and (tmp_path / "b" / "supernet.pte").exists()
    # Third-party warnings and logs (torch, torchao, ExecuTorch's native probes) go to the
    # bundle's export.log, not to the terminal; --verbose shows them there instead (issue 19).
    logged = _messages((tmp_path / "b" / "export.log").read_text())
    assert logged, "export.log holds none of the third-party output of the export"
    assert result.stderr == "" and not logged & _messages(result.stdout)
    assert str(tmp_path / "b" / "export.log") in " ".join(result.stdout.split())
    assert "export.log" not in load_manifest(tmp_path / "b").data["files"]
    verbose = subprocess.run(
        [exe, str(run_dir), "--top", "1", "--out", str(tmp_path / "v"), "--verbose"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert verbose.returncode == 0, verbose.stdout + verbose.stderr
    assert logged <= _messages(verbose.stderr) and not (tmp_path / "v" / "export.log").exists()
    bad = subprocess.run(
        [exe, str(tmp_path / "nope"), "--out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode == 2 and "is not a training run" in " ".join(bad.stdout.split())
    assert "Traceback" not in bad.stdout + bad.stderr


def test_pte_rewrites_keep_the_arithmetic() -> None:
    """The .pte's graph slimming: BN as a depthwise 1x1 conv equals x * scale + shift, and
    `y + x * 0` terms (NB201's `none` edges) are removed from the exported graph."""
    from prp.trainer.lowering import ChannelAffine, DepthwiseAffine, drop_zero_terms

    bn = torch.nn.BatchNorm2d(6).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    affine = ChannelAffine(bn)
    x = torch.randn(2, 6, 5, 5)
    torch.testing.assert_close(DepthwiseAffine(affine)(x), affine(x))
    torch.testing.assert_close(affine(x), bn(x))

    class NoneEdge(torch.nn.Module):
        def forward(self, a: torch.Tensor) -> torch.Tensor:
            y = torch.relu(a)
            return (y + a.mul(0.0)) * 2

    program = drop_zero_terms(torch.export.export(NoneEdge(), (x,)))
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    # relu, then only the final "* 2": the times-zero and the add are gone.
    assert targets == [torch.ops.aten.relu.default, torch.ops.aten.mul.Tensor], targets
    torch.testing.assert_close(program.module()(x), NoneEdge()(x))

    class NoneNode(torch.nn.Module):  # a node whose edges are all `none`: both terms zero
        def forward(self, a: torch.Tensor) -> torch.Tensor:
            return (a.mul(0.0) + torch.tanh(a).mul(0.0)) * 2

    program = drop_zero_terms(torch.export.export(NoneNode(), (x,)))
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    # The first zero stays; tanh, computed only to be multiplied by zero, is gone.
    assert torch.ops.aten.tanh.default not in targets and len(targets) == 2, targets
    torch.testing.assert_close(program.module()(x), NoneNode()(x))


def test_onnx_graphs_and_weight_counts_leave_out_edges_that_never_reach_the_output(
    tmp_path,
) -> None:
    """An NB201 path whose node 2 feeds only a `none` edge computes its edges into node 2 for
    nothing: the ONNX graph runs none of their ops and `weights.bin` stores none of their
    weights (as the .pte, `drop_zero_terms`), and the bundle's weight bytes and params count
    only the live tensors, the params as the live trace prices them."""
    import onnx
    from prp.trainer.lowering import (
        check_onnx,
        distinct_module_bytes,
        live_tensors,
        path_module,
        write_onnx,
    )
    from prp.trainer.profiling import trace_ops
    from prp.trainer.spaces import get_space
    from prp.trainer.supernet import Supernet

    space = get_space("nb201", "tiny")
    path = space.decode(
        "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    )
    live = space.live_slots(np.asarray([path]))[0]
    dead = {slot for slot, is_live in enumerate(live) if not is_live}
    assert dead == {1, 2, 5}  # `none` edge 3<-2, and the edges into node 2 that only it reads
    supernet = Supernet(space)
    module = path_module(supernet, path)
    convs = {n: m for n, m in module.named_modules() if isinstance(m, torch.nn.Conv2d)}
    dead_convs = [
        n for n in convs if (e := re.search(r"\.edges\.(\d+)\.", n)) and int(e[1]) in dead
    ]
    assert len(dead_convs) == 3  # edge 2<-1's conv in each of the tiny space's three cells

    example = torch.randn(1, *space.input_shape)
    info = write_onnx({"p": module}, example, tmp_path)
    graph = onnx.load(str(tmp_path / info["graphs"]["p"]), load_external_data=False)
    assert sum(n.op_type == "Conv" for n in graph.graph.node) == len(convs) - len(dead_convs)
    assert sum(n.op_type == "AveragePool" for n in graph.graph.node) == sum(
        isinstance(m, torch.nn.AvgPool2d) for m in module.modules()
    ) - len(dead_convs)  # and edge 2<-0's pooling, one per cell
    stored = distinct_module_bytes([module], example)
    dead_weights = sum(convs[n].weight.numel() * 4 for n in dead_convs)
    assert distinct_module_bytes([module]) - stored >= dead_weights
    assert (tmp_path / "weights.bin").stat().st_size == stored
    x = torch.randn(3, *space.input_shape)  # the graph keeps its dynamic batch
    assert check_onnx(tmp_path, info["graphs"], {"p": module}, x)["p"] < 1e-5

    params, _ = trace_ops(supernet).live_sizes()
    assert params(path) == sum(t.numel() for t in live_tensors(module, example))
    assert params(path) < trace_ops(supernet).params()(path)


def test_a_path_folds_its_batchnorm_only_into_convs_no_other_path_reads() -> None:
    """Per-path BN stays an affine after a conv that several paths share (its weight stored once
    for all of them) and is folded into a conv only one path reads: the same outputs, one op
    less per such conv, the shared weights untouched."""
    from prp.trainer.lowering import ChannelAffine, fold_unshared_affines, path_module
    from prp.trainer.spaces import get_space
    from prp.trainer.supernet import Supernet

    space = get_space("nb201", "tiny")
    supernet = Supernet(space)
    for m in supernet.modules():  # BN statistics of a trained net, not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    paths = [(3, 3, 2, 3, 4, 3), (3, 2, 1, 3, 3, 0)]  # slots 0 and 3 share a 3x3 conv
    modules = [path_module(supernet, p) for p in paths]
    x = torch.randn(2, *space.input_shape)
    with torch.no_grad():
        before = [m(x) for m in modules]

    def convs(m: torch.nn.Module) -> dict[str, bytes]:
        return {
            n: c.weight.detach().numpy().tobytes()
            for n, c in m.named_modules()
            if isinstance(c, torch.nn.Conv2d)
        }

    weights = [convs(m) for m in modules]
    shared = {n for n in weights[0] if weights[0][n] == weights[1].get(n)}
    assert any(".edges.0." in n for n in shared) and any(".edges.3." in n for n in shared)
    affines = [sum(isinstance(a, ChannelAffine) for a in m.modules()) for m in modules]
    folded = fold_unshared_affines(modules)
    assert folded > 0
    after = [sum(isinstance(a, ChannelAffine) for a in m.modules()) for m in modules]
    assert sum(affines) - sum(after) == folded
    for m, was, out in zip(modules, weights, before, strict=True):
        now = convs(m)
        # every conv only this path reads is folded (NB201: ReLU-conv-BN), no shared one
        assert {n for n in now if now[n] != was[n]} == set(was) - shared
        with torch.no_grad():
            torch.testing.assert_close(m(x), out, rtol=1e-5, atol=1e-5)
    assert fold_unshared_affines(modules) == 0  # folded convs have no affine left to fold


def test_manifest_counts_the_params_each_program_reads(bundle, run_dir) -> None:
    from prp.trainer.lowering import path_module

    run = load_run(run_dir)
    example = torch.zeros(1, *run.supernet.space.input_shape)
    for p in load_manifest(bundle).data["paths"]:
        module = path_module(run.supernet, tuple(p["path"]))
        assert p["params"] == sum(t.numel() for t in live_tensors(module, example)), p["id"]


def test_pte_constants_are_named_by_their_bytes(bundle) -> None:
    """ExecuTorch 1.5.1's XNNPACK weight cache keys packed weights by name alone, process-wide,
    so every constant is named by the first 16 hex digits of the sha256 of its stored bytes:
    two programs open in one process share a name only where they hold the same bytes."""
    stored = pte_named_data(bundle / "supernet.pte")
    assert len(stored) > 10
    for key, value in stored.items():
        assert key == hashlib.sha256(value).hexdigest()[:16], key
    assert load_manifest(bundle).data["export"]["weight_names"] == "sha256-16"


def test_the_private_key_rewrite_is_optional_and_falls_back(
    bundle, run_dir, data, tmp_path, monkeypatch
) -> None:
    """The .pte's key shortening reaches into ExecuTorch's private serialization: it can be
    switched off, and where it fails (as after an upgrade) the exporter writes the long keys and
    says so. Either way every method runs and computes what the shortened bundle computes."""
    import prp.trainer.lowering.pte as export_module

    x = to_tensor(data.test.images[:4], data.mean, data.std)

    def outputs(folder: Path) -> dict[str, np.ndarray]:
        program = Runtime.get().load_program(str(folder / "supernet.pte"))
        return {
            m: np.concatenate([program.load_method(m).execute([xi[None]])[0].numpy() for xi in x])
            for m in program.method_names
        }

    short = outputs(bundle)
    plain = export_bundle(run_dir, tmp_path / "plain", top=3, data=data, shorten_keys=False)
    info = load_manifest(plain).data["export"]
    assert info["short_keys"] is False and "short_keys_fallback" not in info
    assert info["weight_names"] == "sha256"  # XNNPACK's own keys: the whole digest
    assert load_manifest(bundle).data["export"]["short_keys"] is True
    assert (plain / "supernet.pte").stat().st_size > (bundle / "supernet.pte").stat().st_size

    def broken(lowered) -> None:  # what an ExecuTorch upgrade does to the private helpers
        raise AttributeError("module 'executorch.exir._serialize' has no attribute '_flatc'")

    monkeypatch.setattr(export_module, "_shorten_named_keys", broken)
    fell = export_bundle(run_dir, tmp_path / "fell", top=3, data=data)
    info = load_manifest(fell).data["export"]
    assert info["short_keys"] is False and info["weight_names"] == "sha256"
    assert "has no attribute '_flatc'" in info["short_keys_fallback"]
    for folder in (plain, fell):
        got = outputs(folder)
        assert got.keys() == short.keys()
        for m in short:
            np.testing.assert_allclose(got[m], short[m], atol=1e-5)


def test_short_names_that_would_merge_two_constants_fall_back_to_the_full_digests(
    bundle, run_dir, data, tmp_path, monkeypatch
) -> None:
    """A short name is a prefix of the constant's sha256: where two constants of a program share
    it (made certain here by a 1-digit prefix), the exporter writes the full digests instead of
    merging them, and says why."""
    import prp.trainer.lowering.pte as pte

    monkeypatch.setattr(pte, "WEIGHT_KEY_DIGITS", 1)
    fell = export_bundle(run_dir, tmp_path / "fell", top=3, data=data)
    info = load_manifest(fell).data["export"]
    assert info["short_keys"] is False and info["weight_names"] == "sha256"
    assert "share their first 1 digits" in info["short_keys_fallback"]
    stored = pte_named_data(fell / "supernet.pte")
    assert all(key == hashlib.sha256(value).hexdigest() for key, value in stored.items())
    assert len(stored) == len(pte_named_data(bundle / "supernet.pte"))


MEMORY_PROBE = """
import gc, json, sys, torch
from executorch.runtime import Runtime

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024

gc.collect()
before = anon()
program = Runtime.get().load_program(sys.argv[1])
methods = [program.load_method(m) for m in program.method_names]
for method in methods:
    method.execute([torch.zeros(1, 3, 32, 32)])
gc.collect()
print(json.dumps(anon() - before))
"""


def test_low_memory_export_keeps_no_indirection_buffer_per_convolution(
    run_dir, data, tmp_path
) -> None:
    """`low_memory=True`: XNNPACK's convolutions build their indirection buffers (a pointer per
    output pixel and kernel tap) at each call in the workspace the methods share, so a loaded
    program holds at least half of those bytes less, and computes what the plain program
    computes. Measured on a path of the run with as many 3x3 convolutions as it keeps."""
    run = load_run(run_dir)
    nb201_conv_3x3, nb201_conv_1x1 = 3, 2
    path = [
        next((op for op in (nb201_conv_3x3, nb201_conv_1x1) if op in live), live[0])
        for live in run.supernet.live()
    ]
    key = run.supernet.space.encode(path)
    net = run.supernet.standalone(path).eval()
    pointers = []

    def count(conv: torch.nn.Conv2d, _inputs, out: torch.Tensor) -> None:
        kh, kw = conv.kernel_size
        if kh * kw > 1:
            pointers.append(out.shape[-2] * out.shape[-1] * kh * kw)

    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(count)
    with torch.no_grad():
        net(torch.zeros(1, 3, 32, 32))
    indirection_bytes = 8 * sum(pointers)  # 64-bit pointers
    assert indirection_bytes > 100_000  # the stem and reductions alone: 3x3 convolutions

    plain = export_bundle(run_dir, tmp_path / "plain", paths=[key], data=data)
    low = export_bundle(run_dir, tmp_path / "low", paths=[key], data=data, low_memory=True)
    assert load_manifest(plain).data["export"]["indirection_buffers"] == "per node"
    assert load_manifest(low).data["export"]["indirection_buffers"] == "transient"

    def held(bundle: Path) -> int:
        probe = [sys.executable, "-c", MEMORY_PROBE, str(bundle / "supernet.pte")]
        return json.loads(subprocess.run(probe, capture_output=True, check=True).stdout)

    saved = held(plain) - held(low)
    assert saved >= indirection_bytes / 2, (saved, indirection_bytes)

    x = to_tensor(data.test.images[:4], data.mean, data.std)
    out = {}
    for name, bundle in (("plain", plain), ("low", low)):
        method = Runtime.get().load_program(str(bundle / "supernet.pte")).load_method("path_0")
        out[name] = np.concatenate([method.execute([xi[None]])[0].numpy() for xi in x])
    np.testing.assert_allclose(out["low"], out["plain"], atol=1e-6)

    # bench/low_memory.py times the two side by side (one round here) and refuses a wrong pair.
    script = Path(__file__).resolve().parents[1] / "bench" / "low_memory.py"
    env = {**os.environ, "PRP_BENCH_RESULTS": str(tmp_path / "results")}
    args = [sys.executable, str(script), str(plain), str(low), "--rounds", "2", "--calls", "1"]
    subprocess.run(args, env=env, capture_output=True, check=True)
    record = json.loads((tmp_path / "results" / "low_memory.json").read_text())["plain"]
    assert set(record["ratio"]) == {"path_0"} and record["ratio"]["path_0"] > 0
    swapped = subprocess.run(args[:2] + [str(low), str(plain)], env=env, capture_output=True)
    assert (
        swapped.returncode == 2 and b"expected a plain and a --low-memory bundle" in swapped.stderr
    )

    # bench/compare_bundles.py times two exports of the same paths with both of the runtime's
    # backends, and refuses bundles of other paths (exported/smoke holds the tiny space's).
    script = script.with_name("compare_bundles.py")
    args = [sys.executable, str(script), str(plain), str(low), "--rounds", "2", "--calls", "1"]
    subprocess.run(args + ["--label", "pair"], env=env, capture_output=True, check=True)
    record = json.loads((tmp_path / "results" / "compare_bundles.json").read_text())["pair"]
    assert set(record["ratio"]) == {"executorch", "onnxruntime"}
    for backend, times in record["runs_ms"]["new"].items():
        assert len(times["path_0"]) == 2 and min(times["path_0"]) > 0, backend
    other = subprocess.run(args[:3] + [str(SMOKE)], env=env, capture_output=True)
    assert other.returncode == 2 and b"hold different paths" in other.stderr
