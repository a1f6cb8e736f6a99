"""Int8 bundles (issue 21): a really trained tiny run exported with int8 paths and one float32
path, run by the real ExecuTorch and ONNX Runtime against the PT2E reference modules."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import copy_of_tiny_run
from executorch.runtime import Runtime
from prp.runtime import Bundle
from prp.runtime.backends import OnnxRuntimeBackend, make_backend, onnx_session_options
from prp.runtime.bundle import load_manifest, path_precision, validate_manifest
from prp.trainer.datasets import to_tensor
from prp.trainer.export import (
    INT8_TOLERANCE,
    ExportError,
    calibrated_path_module,
    choose_paths,
    export_bundle,
    load_run,
    path_module,
    write_pte,
)
from prp.trainer.lowering import (
    distinct_bytes,
    int8_weights,
    pte_named_data,
    quantize_path,
    stored_constants,
)
from prp.trainer.spaces import get_space
from prp.trainer.supernet import Supernet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tiny_run, tmp_path_factory) -> Path:
    return copy_of_tiny_run(tiny_run, tmp_path_factory)


@pytest.fixture(scope="module")
def kept(run_dir) -> str:
    """The path kept in float32: the first one `--top 3` picks."""
    return choose_paths(load_run(run_dir), 3)[0].key


@pytest.fixture(scope="module")
def bundle(run_dir, kept, data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "mixed"
    return export_bundle(run_dir, out, top=3, data=data, quantize="int8", keep_fp32=[kept])


def _references(run_dir: Path, data, manifest: dict) -> dict[str, torch.nn.Module]:
    """Each path's module as the exporter builds it: fp32, or PT2E-quantized on the first
    calibration images of the validation split."""
    run = load_run(run_dir)
    train_x = to_tensor(data.train.images, data.mean, data.std)
    train_y = torch.tensor(data.train.labels)
    n = manifest["quantization"]["calibration"]["images"]
    val_x = to_tensor(data.val.images[:n], data.mean, data.std)
    calib = [val_x[i : i + 32] for i in range(0, n, 32)]
    out = {}
    for p in manifest["paths"]:
        module = calibrated_path_module(run, tuple(p["path"]), train_x, train_y)
        if p["precision"] == "int8":
            module = quantize_path(module, val_x[:1], calib).reference
        out[p["id"]] = module
    return out


def test_manifest_records_precision_calibration_and_both_accuracies(bundle, kept) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert validate_manifest(manifest) == []
    loaded = Bundle.load(bundle)  # checksums hold
    precisions = {p["key"]: loaded.precision(p["id"]) for p in manifest["paths"]}
    assert precisions.pop(kept) == "float32"
    assert set(precisions.values()) == {"int8"} and len(precisions) == 2
    q = manifest["quantization"]
    assert q["precision"] == "int8" and 0 < q["calibration"]["images"] <= 128
    assert q["calibration"]["split"] == "val"
    assert sorted(q["paths"]) == sorted(
        p["id"] for p in manifest["paths"] if p["precision"] == "int8"
    )
    assert q["energy"]["device"] == "horowitz45-int8"  # the tiny run prices with the analytic model
    for p in manifest["paths"]:
        assert 0 <= p["test_accuracy"] <= 100 and 0 <= p["fp32_test_accuracy"] <= 100
        if p["precision"] == "float32":
            assert p["test_accuracy"] == p["fp32_test_accuracy"]


def test_every_int8_method_agrees_with_its_pt2e_reference(bundle, run_dir, data) -> None:
    manifest = load_manifest(bundle).data
    references = _references(run_dir, data, manifest)
    x = to_tensor(data.test.images[:6], data.mean, data.std)
    program = Runtime.get().load_program(str(bundle / "supernet.pte"))
    for p in manifest["paths"]:
        with torch.no_grad():
            expected = references[p["id"]](x).numpy()
        method = program.load_method(p["method"])
        got_et = np.concatenate([method.execute([xi[None]])[0].numpy() for xi in x])
        session = ort.InferenceSession(
            str(bundle / p["onnx"]), onnx_session_options(), providers=["CPUExecutionProvider"]
        )
        got_ort = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        atol = 1e-4 if p["precision"] == "float32" else INT8_TOLERANCE * np.abs(expected).max()
        np.testing.assert_allclose(got_et, expected, atol=atol, rtol=0)
        np.testing.assert_allclose(got_ort, expected, atol=atol, rtol=0)
        if p["precision"] == "int8":
            # Quantized for real: not the float path's logits.
            fp32 = path_module(load_run(run_dir).supernet, tuple(p["path"]))
            assert np.abs(got_et - expected).max() < np.abs(got_et - _logits(fp32, x)).max()
            assert (got_et.argmax(1) == expected.argmax(1)).mean() >= 5 / 6


def _logits(module: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return module(x).numpy()


def test_int8_weights_are_stored_once(bundle) -> None:
    manifest = load_manifest(bundle).data
    distinct = manifest["export"]["distinct_weight_bytes"]
    stored = pte_named_data(bundle / "supernet.pte")
    # Every constant of the program is in the file once, whichever methods read it.
    assert sum(len(v) for v in stored.values()) <= 1.05 * distinct
    assert (bundle / "weights.bin").stat().st_size <= 1.05 * distinct
    assert manifest["export"]["int8_distinct_weight_bytes"] < distinct


def test_folded_bn_leaves_the_int8_weights_of_shared_convs_equal() -> None:
    """Two paths through the same convs, each with its own BN statistics and some negative BN
    weights: their int8 conv weights are byte for byte the same (quantize.py's docstring)."""
    torch.manual_seed(0)
    supernet = Supernet(get_space("nb201", size="tiny")).eval()
    with torch.no_grad():
        for m in supernet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.randn_like(m.weight))  # about half negative
    path = (3,) * supernet.space.num_slots  # every edge a 3x3 conv
    shape = tuple(supernet.space.input_shape)
    quantized = []
    for seed in (1, 2):
        g = torch.Generator().manual_seed(seed)
        supernet.recalibrate_bn(path, [torch.randn(8, *shape, generator=g) * seed])
        module = path_module(supernet, path)
        calib = [torch.randn(16, *shape, generator=g)]
        quantized.append(quantize_path(module, calib[0][:1], calib))
    a, b = (int8_weights(q.reference) for q in quantized)
    assert len(a) == len(b) > supernet.space.num_slots
    for wa, wb in zip(a, b, strict=True):
        assert torch.equal(wa, wb)
    # ... while the per-path scales differ: the paths are not the same network.
    assert distinct_bytes(
        stored_constants(quantized[0]) + stored_constants(quantized[1])
    ) > distinct_bytes(stored_constants(quantized[0]))


def test_int8_pte_stores_no_constants_beyond_those_of_its_paths(tmp_path) -> None:
    """XNNPACK's own scales for the int32 biases (input scale x weight scales: a vector per conv
    per method, never read) are not stored (`pte._bias_scales_from_weights`): the .pte's
    constants weigh no more than the distinct constants of the PT2E modules, and every method
    still computes what its reference computes."""
    torch.manual_seed(0)
    supernet = Supernet(get_space("nb201", size="tiny")).eval()
    path = (3,) * supernet.space.num_slots  # every edge a biased conv after BN folding
    shape = tuple(supernet.space.input_shape)
    quantized = {}
    for seed in (1, 2):
        g = torch.Generator().manual_seed(seed)
        supernet.recalibrate_bn(path, [torch.randn(8, *shape, generator=g)])
        calib = [torch.randn(16, *shape, generator=g) * seed]
        q = quantize_path(path_module(supernet, path), calib[0][:1], calib)
        quantized[f"path_{seed}"] = q
    pte = tmp_path / "int8.pte"
    assert write_pte({k: q.program for k, q in quantized.items()}, calib[0][:1], pte) is None
    stored = sum(len(v) for v in pte_named_data(pte).values())
    assert stored <= distinct_bytes([t for q in quantized.values() for t in stored_constants(q)])
    program = Runtime.get().load_program(str(pte))
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(3))
    for name, q in quantized.items():
        method = program.load_method(name)
        for xi in x:
            with torch.no_grad():
                ref = q.reference(xi[None])
            got = method.execute([xi[None]])[0]
            assert float((got - ref).abs().max()) <= INT8_TOLERANCE * float(ref.abs().max())


def test_mixed_bundle_runs_through_the_runtime(bundle, data) -> None:
    loaded = Bundle.load(bundle)
    x = to_tensor(data.test.images[:2], data.mean, data.std).numpy()
    et, onnx = make_backend(loaded, "executorch"), OnnxRuntimeBackend(loaded)
    for pid in loaded.ids:
        a, b = et.run(pid, x), onnx.run(pid, x)
        assert a.shape == b.shape == (2, len(loaded.classes))
        assert np.isfinite(a).all() and np.isfinite(b).all()


def test_precision_field_is_optional_and_checked() -> None:
    shipped = json.loads((ROOT / "exported" / "smoke" / "manifest.json").read_text())
    assert all(path_precision(p) == "float32" for p in shipped["paths"])  # no field: float32
    assert validate_manifest(shipped) == []
    shipped["paths"][0]["precision"] = "int4"
    assert any("precision" in e for e in validate_manifest(shipped))


def test_bad_quantize_requests_give_clear_errors(run_dir, kept, data, tmp_path) -> None:
    with pytest.raises(ExportError, match="int4"):
        export_bundle(run_dir, tmp_path / "a", top=2, data=data, quantize="int4")
    with pytest.raises(ExportError, match="--quantize int8"):
        export_bundle(run_dir, tmp_path / "b", top=2, data=data, keep_fp32=[kept])
    with pytest.raises(ExportError, match="--keep-fp32 '|bogus|'"):
        export_bundle(
            run_dir, tmp_path / "c", top=1, data=data, quantize="int8", keep_fp32=["|bogus|"]
        )
    run = load_run(run_dir)
    other = next(m.key for m in run.front if m.key != choose_paths(run, 1)[0].key)
    with pytest.raises(ExportError, match="not one of the exported paths"):
        export_bundle(run_dir, tmp_path / "c", top=1, data=data, quantize="int8", keep_fp32=[other])
    assert not any(tmp_path.iterdir())
    exe = shutil.which("prp-export") or str(Path(sys.executable).parent / "prp-export")
    cli = subprocess.run(
        [exe, str(run_dir), "--quantize", "int4", "--out", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cli.returncode == 2 and "int4" in cli.stdout
    assert "Traceback" not in cli.stdout + cli.stderr
