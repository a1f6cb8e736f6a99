"""Bad images in a data set (issue 33, point 3): refused up front with every one named (a file
of the list when there are many), left out with --skip-bad-images and recorded in the run, and
an image that passes the header check but fails to decode while training skipped and counted,
in DataLoader worker processes, with --resume still exact."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from prp.trainer import loader as loader_module
from prp.trainer.config import preset
from prp.trainer.datasets import BadImagesError, StreamSplits, open_dataset
from prp.trainer.datasets.bad_images import IN_LINE, RECORD
from prp.trainer.loader import TrainLoader
from prp.trainer.runs import RunLog
from prp.trainer.train import Trainer
from test_data_pipeline import write_photos

BIN = Path(sys.executable).parent


def jpeg_bytes(seed: int, size: int = 48, mode: str = "RGB") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(out, format="JPEG", quality=90)
    return out.getvalue()


def png_bytes(seed: int, size: int = 48) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def damaged_png(seed: int) -> bytes:
    """A PNG whose header opens but whose image data fails its checksum (verify catches it)."""
    blob = bytearray(png_bytes(seed))
    at = blob.index(b"IDAT") + 8
    blob[at] ^= 0xFF
    return bytes(blob)


def truncated_jpeg(seed: int) -> bytes:
    """A JPEG cut after its header: it opens (the check passes) but does not decode."""
    blob = jpeg_bytes(seed)
    return blob[: len(blob) * 2 // 3]


def test_a_tree_with_bad_images_is_refused_naming_every_one(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write_photos(tree, per_class=8)
    bad = {
        "class0/001.jpg": b"not an image",
        "class0/005.jpg": b"",
        "class1/002.jpg": damaged_png(2),  # a PNG named .jpg, damaged
    }
    for name, blob in bad.items():
        (tree / name).write_bytes(blob)
    # What real data sets hold and must still read: a CMYK JPEG, a whole PNG named .jpg.
    (tree / "class1" / "003.jpg").write_bytes(jpeg_bytes(3, mode="CMYK"))
    (tree / "class1" / "004.jpg").write_bytes(png_bytes(4))
    with pytest.raises(BadImagesError) as caught:
        open_dataset(tree)
    text = str(caught.value)
    assert text.startswith(f"3 images of {tree} cannot be decoded: ") and "\n" not in text
    assert all(name in text for name in bad) and "--skip-bad-images" in text
    assert sorted(b.name for b in caught.value.bad) == sorted(bad)

    data = open_dataset(tree, skip_bad_images=True)
    names = data.train.names + data.val.names + data.test.names
    assert len(names) == 16 - 3 and not set(bad) & set(names)
    assert {"class1/003.jpg", "class1/004.jpg"} <= set(names)
    assert sorted(b.name for b in data.left_out) == sorted(bad)
    assert data.train.decode(np.arange(len(data.train))).shape == (len(data.train), 32, 32, 3)


def test_many_bad_images_of_a_tar_are_listed_in_a_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PRP_DATA_CACHE", str(tmp_path / "cache"))
    tree = tmp_path / "photos"
    write_photos(tree, per_class=10)
    bad = sorted(f"class{c}/{j:03d}.jpg" for c in (0, 1) for j in range(1, 8))  # 14
    for name in bad:
        (tree / name).write_bytes(b"GIF89a broken")
    archive = tmp_path / "photos.tar"
    with tarfile.open(archive, "w") as t:
        t.add(tree, arcname="photos")
    with pytest.raises(BadImagesError) as caught:
        open_dataset(archive)
    text = str(caught.value)
    assert len(bad) > IN_LINE and "\n" not in text
    assert text.startswith(f"{len(bad)} images of {archive} cannot be decoded, all listed in ")
    listed = Path(text.split("all listed in ", 1)[1].split(";", 1)[0])
    assert listed.parent == tmp_path / "cache"
    lines = listed.read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == [f"photos/{n}" for n in bad]
    assert all(line.split("\t")[1] for line in lines)  # each with its reason
    assert sorted(p.name for p in tree.rglob("*.txt")) == []  # nothing beside the user's data


def test_prp_train_refuses_bad_images_in_one_line_and_skips_them_on_request(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "tree"
    write_photos(tree, per_class=12)
    for name in ("class0/002.jpg", "class1/007.jpg"):
        (tree / name).write_bytes(b"\x89PNG\r\n\x1a\n cut")
    (tree / "class0" / "005.jpg").write_bytes(truncated_jpeg(5))  # passes the check
    tiny = ["--preset", "tiny", "--data-dir", str(tree), "--epochs-fair", "1"]
    small = ["--epochs-pareto", "1", "--prune-after", "0", "--samples", "2", "--top-n", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    refused = subprocess.run(
        [str(BIN / "prp-train"), *tiny, *small, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    text = " ".join(refused.stdout.split())
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert text.count("error:") == 1 and "2 images of" in text and "Traceback" not in text
    assert "class0/002.jpg" in text and "class1/007.jpg" in text
    assert not out.exists()  # refused before anything was written

    done = subprocess.run(
        [str(BIN / "prp-train"), *tiny, *small, "--skip-bad-images", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    said = " ".join(done.stdout.split())
    # The two refused ones, and the cut one from the BatchNorm pool (all train images here).
    assert "left out 3 images that cannot be decoded" in said
    assert f"skipped 1 image that did not decode while training (2 times; listed in {out}" in said
    record = json.loads((out / RECORD).read_text())
    left_out = ["class0/002.jpg", "class0/005.jpg", "class1/007.jpg"]
    assert sorted(e["name"] for e in record["left_out"]) == left_out and record["count"] == 3
    assert [(e["epoch"], e["name"]) for e in record["skipped_in_training"]] == [
        (0, "class0/005.jpg"),
        (1, "class0/005.jpg"),
    ]
    start = RunLog(out / "log.jsonl").records()[0]
    assert start["images_left_out"] == 3 and start["config"]["skip_bad_images"] is True


def _loader(data: StreamSplits, workers: int) -> TrainLoader:
    return TrainLoader(
        data.train,
        batch_size=5,
        seed=3,
        device=torch.device("cpu"),
        mean=data.mean,
        std=data.std,
        workers=workers,
    )


def test_an_image_that_fails_in_a_worker_is_skipped_the_same_way_each_time(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "tree"
    write_photos(tree, per_class=6)
    data = open_dataset(tree)  # checked while whole
    clean = list(_loader(data, 0).epoch(0))
    bad = tree / data.train.names[4]
    bad.write_bytes(truncated_jpeg(0))  # its header still opens: only decoding finds it
    for workers in (0, 2):  # 2: decoded in DataLoader worker processes
        loader = _loader(data, workers)
        batches = list(loader.epoch(0))
        assert [b.name for b in loader.skipped] == [data.train.names[4]]
        assert "truncated" in loader.skipped[0].reason
        assert len(batches) == len(clean)
        sizes = [(len(y), len(cy)) for (_, y), (_, cy) in zip(batches, clean, strict=True)]
        short = [k for k, (n, whole) in enumerate(sizes) if n < whole]
        assert len(short) == 1
        for k, ((x, y), (cx, cy)) in enumerate(zip(batches, clean, strict=True)):
            if k not in short:
                assert torch.equal(x, cx) and torch.equal(y, cy)
                continue
            # The batch less the bad image; the others keep the crops and flips they had.
            drops = [
                i
                for i in range(len(cy))
                if torch.equal(x, torch.cat([cx[:i], cx[i + 1 :]]))
                and torch.equal(y, torch.cat([cy[:i], cy[i + 1 :]]))
            ]
            assert len(drops) == 1
        again = list(_loader(data, workers).epoch(0))
        for (x, y), (ax, ay) in zip(batches, again, strict=True):
            assert torch.equal(x, ax) and torch.equal(y, ay)


def test_training_skips_an_undecodable_image_of_a_tar_and_resumes_exactly(
    tmp_path: Path, monkeypatch
) -> None:
    """A real tiny run on a streamed .tar, its images decoded in a DataLoader worker process;
    one member passes the header check but cannot be decoded. The run skips it every epoch,
    records it, and a run stopped after its first epoch resumes to the same weights."""
    monkeypatch.setattr(loader_module, "default_workers", lambda device: 1)
    tree = tmp_path / "photos"
    write_photos(tree, per_class=10)
    archive = tmp_path / "photos.tar"
    with tarfile.open(archive, "w") as t:
        t.add(tree, arcname="photos")
    cfg = replace(
        preset("tiny", dataset=str(archive)),
        limit_per_class=None,
        epochs_fair=2,
        epochs_pareto=0,
        prune_after=0,
        batch_size=6,
        bn_batches=1,
        eval_images=4,
        target_pool=4,
        final_samples=4,
    )
    probe = open_dataset(archive)
    victim = probe.train.names[3]
    # Put the damaged member back into the archive, with the check already behind the probe.
    (tree / victim.split("/", 1)[1]).write_bytes(truncated_jpeg(1))
    archive.unlink()
    with tarfile.open(archive, "w") as t:
        t.add(tree, arcname="photos")

    whole = Trainer(cfg, tmp_path / "whole")
    assert whole.tensors.loader is not None and whole.tensors.loader.workers == 1
    whole.run()
    epochs = [r for r in RunLog(tmp_path / "whole" / "log.jsonl").records() if "stage" in r]
    assert [r.get("images_skipped") for r in epochs] == [1, 1]
    record = json.loads((tmp_path / "whole" / RECORD).read_text())
    assert [(e["epoch"], e["name"]) for e in record["skipped_in_training"]] == [
        (0, victim),
        (1, victim),
    ]

    class Stop(Exception):
        pass

    def stop(epochs_done: int) -> None:
        raise Stop

    with pytest.raises(Stop):
        Trainer(cfg, tmp_path / "stopped").run(after_epoch=stop)
    Trainer(cfg, tmp_path / "stopped").run(resume=True)
    a, b = (
        torch.load(tmp_path / d / "checkpoint.pt", weights_only=True) for d in ("whole", "stopped")
    )
    assert a["epoch"] == b["epoch"] == 2
    assert all(torch.equal(a["supernet"][k], b["supernet"][k]) for k in a["supernet"])
    resumed = json.loads((tmp_path / "stopped" / RECORD).read_text())
    assert resumed["skipped_in_training"] == record["skipped_in_training"]


def test_prp_pretrain_skips_bad_images_on_request(tmp_path: Path) -> None:
    from prp.trainer.cli import pretrain_app
    from typer.testing import CliRunner

    tree = tmp_path / "tree"
    write_photos(tree, per_class=8)
    (tree / "class1" / "004.jpg").write_bytes(b"")
    args = ["--preset", "tiny", "--dataset", str(tree), "--epochs", "1", "--out", str(tmp_path)]
    refused = CliRunner().invoke(pretrain_app, args)
    assert refused.exit_code == 2 and "1 image of" in " ".join(refused.output.split())
    done = CliRunner().invoke(pretrain_app, [*args, "--skip-bad-images"])
    assert done.exit_code == 0, done.output
    record = next(tmp_path.glob(f"*/{RECORD}"))
    assert [e["name"] for e in json.loads(record.read_text())["left_out"]] == ["class1/004.jpg"]
    assert f"trained without 1 image that cannot be decoded: {record}" in " ".join(
        done.output.split()
    )


def test_path_training_refuses_or_leaves_out_bad_images(tmp_path: Path, data) -> None:
    from prp.trainer import path_training as pt

    search = tmp_path / "search"
    cfg = preset("tiny", epochs_fair=1, epochs_pareto=1, prune_after=1)
    trainer = Trainer(cfg, search, data=data)
    trainer.write_front(trainer.run())
    tree = tmp_path / "tree"
    write_photos(tree, per_class=8)
    (tree / "class0" / "006.jpg").write_bytes(b"<html>not found</html>")
    small = {"channels": 4, "cells_per_stage": 1}
    recipe = {"dataset": str(tree), "epochs": 1, "batch_size": 4, "bn_images": 8}
    with pytest.raises(BadImagesError, match="class0/006.jpg"):
        pt.start(search, tmp_path / "refused", top=2, space_overrides=small, **recipe)
    assert not (tmp_path / "refused").exists()  # nothing written
    session = pt.start(
        search, tmp_path / "paths", top=2, space_overrides=small, skip_bad_images=True, **recipe
    )
    assert [b.name for b in session.data.left_out] == ["class0/006.jpg"]
    record = json.loads((tmp_path / "paths" / RECORD).read_text())
    assert record["left_out"][0]["name"] == "class0/006.jpg"
    assert session.recipe.skip_bad_images and session.config.skip_bad_images
    assert len(session.data.train) + len(session.data.val) + len(session.data.test) == 15
