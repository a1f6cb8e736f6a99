"""Training the chosen paths at full size: a real tiny search, its paths trained jointly at a
small width for real, resumed exactly, and exported by the real exporter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import copy_of_tiny_run
from prp.trainer import path_training as pt
from prp.trainer.errors import PRPError
from prp.trainer.export import choose_paths, export_bundle, load_run
from prp.trainer.runs import read_checkpoint
from prp.trainer.spaces import get_space
from prp.trainer.supernet import Supernet

# Small enough for seconds: the real skeleton at width 4, one cell per stage.
SMALL = {"channels": 4, "cells_per_stage": 1}
RECIPE = dict(epochs=2, batch_size=16, limit_per_class=30, lr=0.05, bn_images=64)


@pytest.fixture(scope="module")
def search_run(tiny_run, tmp_path_factory) -> Path:
    return copy_of_tiny_run(tiny_run, tmp_path_factory)


def _state(session: pt.Session) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in session.supernet.state_dict().items()}


@pytest.fixture(scope="module")
def trained(search_run, tmp_path_factory) -> pt.Session:
    out = tmp_path_factory.mktemp("paths") / "run"
    session = pt.start(search_run, out, top=3, space_overrides=SMALL, **RECIPE)
    pt.train(session)
    pt.finish(session)
    return session


def test_trains_the_paths_export_would_take_at_the_new_size(search_run, trained) -> None:
    picked = [m.path for m in choose_paths(load_run(search_run), 3)]
    assert sorted(trained.paths) == sorted(picked)
    space = trained.supernet.space
    assert (space.channels, space.cells_per_stage) == (4, 1)
    # Only the ops the paths use (and `none` standing in for dead edges) keep weights.
    for s in range(space.num_slots):
        used = {p[s] for p in trained.paths} | {pt.compute_path(space, p)[s] for p in trained.paths}
        assert set(trained.supernet.live_ops(s)) == used
    # The teacher is the path with the most parameters.
    sizes = [sum(q.numel() for q in trained.supernet.path_parameters(p)) for p in trained.paths]
    assert sizes[0] == max(sizes)
    history = trained.progress.history
    assert [r["epoch"] for r in history] == [0, 1]
    assert all(len(r["val_accuracy"]) == 3 for r in history)
    front = json.loads((trained.out / "front.json").read_text())
    assert {tuple(p["path"]) for p in front["paths"]} == set(trained.paths)
    assert [p["accuracy"] for p in front["paths"]] != []
    assert front["cost_device"] == load_run(search_run).front_data["cost_device"]


def test_resume_continues_exactly(search_run, trained, tmp_path) -> None:
    out = tmp_path / "run"
    session = pt.start(search_run, out, top=3, space_overrides=SMALL, **RECIPE)

    class Stop(Exception):
        pass

    def stop_mid_epoch(record: dict) -> None:
        if record["event"] == "step" and record["epoch"] == 1 and record["step"] == 3:
            raise Stop

    with pytest.raises(Stop):
        pt.train(session, stop_mid_epoch, checkpoint_seconds=0.0)  # saved after every step
    # Stopped after step 3 ran but before it was saved: the resumed run redoes it.
    assert read_checkpoint(out / "checkpoint.pt")["path_training"]["step"] == 2
    again = pt.resume(out)
    assert (again.progress.epoch, again.progress.step) == (1, 2)
    pt.train(again)
    want, got = _state(trained), _state(again)
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)
    measured = [(r["val_accuracy"], r["images"]) for r in trained.progress.history]
    assert [(r["val_accuracy"], r["images"]) for r in again.progress.history] == measured


def test_dead_edges_compute_nothing_and_change_nothing() -> None:
    space = get_space("nb201", size="real", **SMALL)
    torch.manual_seed(0)
    net = Supernet(space).eval()
    # Node 1 feeds only `none` edges: edge 1<-0 (a 3x3 conv here) never reaches the output.
    path = space.decode(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    )
    computed = pt.compute_path(space, path)
    assert computed[0] == space.slots[0].op_index("none") and computed[1:] == path[1:]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x, computed), net(x, path))
    whole = space.decode(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    )
    assert pt.compute_path(space, whole) == whole


def test_learning_rate_warms_up_then_decays_to_zero() -> None:
    recipe = pt.PathRecipe(search_run="x", keys=(), space="nb201", epochs=4, lr=0.2)
    lrs = [pt.learning_rate(recipe, s, 10) for s in range(40)]
    assert lrs[:10] == pytest.approx([0.02 * (k + 1) for k in range(10)])
    assert lrs[10] == pytest.approx(0.2)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[-1] < 0.002


def test_a_warm_restart_starts_a_new_cosine_cycle_from_its_own_lr() -> None:
    recipe = pt.PathRecipe(
        search_run="x", keys=(), space="nb201", epochs=7, lr=0.2, restarts=((4, 0.05),)
    )
    lrs = [pt.learning_rate(recipe, s, 10) for s in range(70)]
    plain = pt.PathRecipe(search_run="x", keys=(), space="nb201", epochs=4, lr=0.2)
    assert lrs[:40] == [pt.learning_rate(plain, s, 10) for s in range(40)]  # cycle 1 unchanged
    assert lrs[40] == pytest.approx(0.05)  # no warm-up on a restart
    assert all(a >= b for a, b in zip(lrs[40:], lrs[41:], strict=False))
    assert lrs[-1] < 0.0005
    assert pt.PathRecipe.from_json(json.loads(json.dumps(recipe.to_json()))) == recipe


def test_resume_with_more_epochs_trains_on_with_a_logged_restart(search_run, trained, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("config.json", "paths.json", "log.jsonl", "checkpoint.pt"):
        (out / name).write_bytes((trained.out / name).read_bytes())
    session = pt.resume(out)
    with pytest.raises(PRPError, match="does not extend"):
        pt.extend(session, 2)
    pt.extend(session, 3, lr=0.01)
    assert session.recipe.restarts == ((2, 0.01),)
    again = pt.resume(out)  # the extension is in the recipe on disk
    assert (again.recipe.epochs, again.recipe.restarts) == (3, ((2, 0.01),))
    lrs: list[float] = []
    pt.train(again, lambda r: lrs.append(r["lr"]) if r["event"] == "step" else None)
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] < lrs[0]
    assert [r["epoch"] for r in again.progress.history] == [0, 1, 2]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"event": "restart", "epoch": 2, "epochs": 3, "lr": 0.01} in log

    from prp.trainer.cli.train_paths import train_paths_app
    from typer.testing import CliRunner

    fewer = CliRunner().invoke(train_paths_app, ["--resume", "--out", str(out), "--epochs", "2"])
    assert fewer.exit_code == 2 and "--epochs 2 does not extend" in fewer.output


def test_exports_as_a_bundle_of_the_trained_paths(trained, tmp_path) -> None:
    # Named, not --top: two epochs on 270 images may leave a path at chance, which --top skips.
    keys = [trained.supernet.space.encode(p) for p in trained.paths]
    bundle = export_bundle(trained.out, tmp_path / "bundle", paths=keys)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert {tuple(p["path"]) for p in manifest["paths"]} == set(trained.paths)
    assert manifest["search_space"]["input_shape"] == [3, 32, 32]
    # Weights stored once: the stem and the classifier, which every path runs, sit at one
    # offset of weights.bin for all graphs.
    for name in ("stem.0.weight", "head.classifier.weight"):
        offsets = {
            i["offset"]
            for p in manifest["paths"]
            for i in p["onnx_initializers"]
            if i["name"] == name
        }
        assert len(offsets) == 1, name


def test_a_foreign_folder_is_refused_with_one_line(search_run, tmp_path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    result = subprocess.run(
        [sys.executable, "-m", "prp.trainer.cli.train_paths", str(search_run)]
        + ["--out", str(tmp_path), "--channels", "4", "--cells-per-stage", "1"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "is not empty" in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


class Stop(Exception):
    pass


def train_one_epoch_and_stop(session: pt.Session) -> None:
    """Train `session` until its first epoch ends (checkpointed there), then stop it."""

    def stop_after_epoch_one(record: dict) -> None:
        if record["event"] == "epoch":
            raise Stop

    with pytest.raises(Stop):
        pt.train(session, stop_after_epoch_one)


def test_a_portable_copy_resumes_on_another_machine(search_run, trained, tmp_path) -> None:
    """The run's small copy (no optimizer state) carried to a new folder resumes there."""
    out = tmp_path / "run"
    session = pt.start(search_run, out, top=3, space_overrides=SMALL, **{**RECIPE, "epochs": 3})
    train_one_epoch_and_stop(session)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for name in ("config.json", "paths.json", "log.jsonl"):
        (moved / name).write_bytes((out / name).read_bytes())
    full = (out / "checkpoint.pt").stat().st_size
    assert pt.portable_checkpoint(out, moved / "checkpoint.pt") < 0.75 * full
    assert read_checkpoint(moved / "checkpoint.pt")["opt_w"] == {}
    again = pt.resume(moved)
    assert (again.progress.epoch, again.progress.step) == (1, 0)
    before = _state(again)
    pt.train(again)
    assert [r["epoch"] for r in again.progress.history] == [0, 1, 2]
    assert any(not torch.equal(before[k], v) for k, v in _state(again).items())


def test_batchnorm_is_re_estimated_on_every_class() -> None:
    """A split is stored class by class: the images that re-estimate BatchNorm are drawn across
    it, the same ones each time, and the measured accuracy is that of BN estimated on them."""
    labels = torch.arange(10).repeat_interleave(450)  # 10 classes in order, as a split stores them
    rows = pt.bn_rows(len(labels), 2000)
    assert len(rows) == len(set(rows.tolist())) == 2000
    counts = torch.bincount(labels[rows], minlength=10)
    assert int(counts.min()) >= 150  # about 200 each; the first 2000 rows would be 5 classes
    assert torch.equal(rows, pt.bn_rows(len(labels), 2000))
    assert len(pt.bn_rows(100, 2000)) == 100

    space = get_space("nb201", size="tiny")
    net = Supernet(space)
    path = (3, 3, 3, 3, 3, 3)
    g = torch.Generator().manual_seed(0)
    train_x = (
        torch.randn(600, *space.input_shape, generator=g) + labels[::7][:600, None, None, None]
    )
    x, y = torch.randn(50, *space.input_shape, generator=g), torch.randint(0, 10, (50,))
    (measured,) = pt.measure_paths(net, [path], train_x, x, y, bn_images=200)
    net.recalibrate_bn(path, [train_x[pt.bn_rows(600, 200)]])
    net.eval()
    expected = 100.0 * float((net(x, path).argmax(1) == y).float().mean())
    assert measured == pytest.approx(expected)


def test_bf16_precision_trains_the_same_function_and_can_start_on_resume(
    search_run, trained, tmp_path
) -> None:
    """--precision bf16: the same gradients up to bfloat16 rounding; a run started in float32
    switches on --resume, from the checkpointed step on, and says so in its recipe and log."""
    space = get_space("nb201", size="tiny")
    net = Supernet(space)
    path = (3, 2, 3, 3, 4, 3)
    x, y = torch.randn(16, *space.input_shape), torch.randint(0, 10, (16,))
    grads = {}
    for precision in ("fp32", "bf16"):
        net.zero_grad()
        recipe = pt.PathRecipe("run", ("k",), "nb201", distill=0.0, precision=precision)
        pt.train_step(net, [path], x, y, recipe)
        grads[precision] = torch.cat(
            [p.grad.flatten() for p in net.weight_parameters() if p.grad is not None]
        )
    cosine = torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0)
    # bfloat16 keeps 8 bits of mantissa: at a random init about 0.97 here; a gradient of
    # another function (a wrong path, a lost BN) is near 0.
    assert 0.9 < float(cosine) and not torch.equal(grads["fp32"], grads["bf16"])

    out = tmp_path / "run"
    session = pt.start(search_run, out, top=3, space_overrides=SMALL, **RECIPE)
    train_one_epoch_and_stop(session)
    with pytest.raises(PRPError, match="--precision must be one of fp32, bf16"):
        pt.resume(out, precision="fp16")
    again = pt.resume(out, precision="bf16")
    assert again.recipe.precision == "bf16"
    assert json.loads((out / "paths.json").read_text())["precision"] == "bf16"
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {"event": "precision", "precision": "bf16", "was": "fp32", "epoch": 1, "step": 0} in log
    convs = [m.weight for m in again.supernet.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    pt.train(again)
    history = again.progress.history
    assert [r["epoch"] for r in history] == [0, 1]
    assert history[0]["val_accuracy"] == trained.progress.history[0]["val_accuracy"]
    want, got = _state(trained), _state(again)
    assert any(not torch.equal(want[k], got[k]) for k in want)  # epoch 2 ran in bfloat16
