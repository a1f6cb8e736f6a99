"""A DARTS run exported and run (issue 34, point 3): a tiny DARTS supernet trained for real,
exported by prp-export's code, run by the real ExecuTorch and ONNX Runtime through the runtime's
`AdaptiveModel` with the PyTorch supernet's logits, each weight stored once, and the Android
bridge's BundleCheck accepting the bundle. The .pte against distinct weights at the paper's size
is a benchmark (bench/export.py --real-size --space darts), too slow for the suite."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from prp.runtime import AdaptiveModel, PushedBattery
from prp.runtime.bundle import load_manifest
from prp.trainer.config import preset
from prp.trainer.datasets import to_tensor
from prp.trainer.export import calibrated_path_module, export_bundle, load_run
from prp.trainer.lowering import (
    distinct_module_bytes,
    fold_unshared_affines,
    load_program,
    pte_named_data,
)
from prp.trainer.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
CFG = preset("tiny", space="darts")
# Lowering one tiny DARTS method takes ~10 s on one thread (hundreds of XNNPACK nodes), so two
# paths keep the module near a minute; prp-export --top 5 runs the same code five times.
TOP = 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data) -> Path:
    d = tmp_path_factory.mktemp("darts-run")
    trainer = Trainer(CFG, d, data=data)
    trainer.write_front(trainer.run())
    return d


@pytest.fixture(scope="module")
def bundle(run_dir, data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("darts-exported") / "darts"
    return export_bundle(run_dir, out, top=TOP, data=data)


@pytest.fixture(scope="module")
def modules(bundle, run_dir, data) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    """Path id -> (its plain network, the supernet's own logits on 4 test images), BatchNorm
    recalibrated for the path as the exporter does."""
    run = load_run(run_dir)
    train_x = to_tensor(data.train.images, data.mean, data.std)
    train_y = torch.tensor(data.train.labels)
    x = to_tensor(data.test.images[:4], data.mean, data.std)
    out = {}
    for p in load_manifest(bundle).data["paths"]:
        path = tuple(p["path"])
        module = calibrated_path_module(run, path, train_x, train_y)
        with torch.no_grad():
            out[p["id"]] = (module, run.supernet.eval()(x, path))
    return out


def test_the_manifest_names_each_path_by_its_genotype(bundle, run_dir) -> None:
    manifest = load_manifest(bundle).data
    space = load_run(run_dir).supernet.space
    assert manifest["search_space"]["name"] == "darts"
    assert [p["id"] for p in manifest["paths"]] == [f"path_{i}" for i in range(TOP)]
    for p in manifest["paths"]:
        assert p["key"].startswith("Genotype(normal=[")
        assert space.decode(p["key"]) == tuple(p["path"])
        assert space.op_names(p["path"]) == tuple(p["ops"])


@pytest.mark.parametrize("backend", ["executorch", "onnxruntime"])
def test_both_backends_give_the_supernets_logits(bundle, modules, data, backend) -> None:
    model = AdaptiveModel(
        bundle, battery=PushedBattery(100), backend=backend, calibration=None, measure=False
    )
    images = data.test.images[:4]
    x = model.prepare(images)
    for path_id, (_, expected) in modules.items():
        got = model.run_path(path_id, x)
        np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-4)
    # The policy's pick, from uint8 images the runtime normalises itself.
    prediction = model.predict(images)
    np.testing.assert_allclose(
        prediction.logits, modules[prediction.path][1].numpy(), rtol=0, atol=1e-4
    )


def test_each_weight_is_stored_once(bundle, modules) -> None:
    manifest = load_manifest(bundle).data
    # As the exporter lowers them: BN folded into each conv only one of the paths reads.
    networks = [copy.deepcopy(m) for m, _ in modules.values()]
    fold_unshared_affines(networks)
    distinct = distinct_module_bytes(networks)
    assert manifest["export"]["distinct_weight_bytes"] == distinct
    # The paths share weights (stem, cell preprocessing, ops they both use, classifier) ...
    assert distinct < sum(distinct_module_bytes([m]) for m in networks)
    # ... and the program stores each distinct tensor once, read by every method that uses it;
    # the rest of this tiny .pte is the methods' graphs (bench/export.py: 1.16 x at C=16).
    stored = pte_named_data(bundle / "supernet.pte")
    assert sum(len(v) for v in stored.values()) == distinct
    assert (bundle / "weights.bin").stat().st_size <= 1.01 * distinct


def test_the_android_bridges_bundle_check_accepts_it(bundle) -> None:
    """The bridge's command-line check (manifest, sha256 of every file, each path's method in the
    program, every policy's pick); skipped without a build, as test_android_bridge is."""
    classpath = ROOT / "android_bridge" / "build" / "test-classpath.txt"
    if shutil.which("java") is None or not classpath.is_file():
        if os.environ.get("PRP_REQUIRE_ANDROID_BRIDGE") == "1":
            pytest.fail("the Android bridge is not built; run android_bridge/build.sh")
        pytest.skip("the Android bridge is not built; run android_bridge/build.sh")
    # The methods the real program has, read by ExecuTorch, against the manifest's.
    methods = ",".join(sorted(load_program(bundle / "supernet.pte").method_names))
    done = subprocess.run(
        ["java", "-cp", classpath.read_text().strip(), "org.prpnas.bridge.BundleCheck"]
        + [str(bundle), "--methods", methods, "--battery", "35"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"manifest: {TOP} paths" in done.stdout
    assert "every path's method is present" in done.stdout
