"""The streamed data path: class-folder trees and their archives read image by image through
`torch.utils.data`, at any resolution; the seeded sampler; a real proxyless supernet trained at
224 px from a folder and from a .tar of it."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from prp.runtime import AdaptiveModel, PushedBattery
from prp.trainer.config import preset
from prp.trainer.datasets import (
    StreamSplits,
    load_dataset,
    open_dataset,
    streams_by_default,
)
from prp.trainer.export import export_bundle
from prp.trainer.loader import (
    EpochSampler,
    RankBatches,
    TrainLoader,
    default_workers,
    recipe,
)
from prp.trainer.runs import RunLog
from prp.trainer.train import Trainer


def write_photos(root: Path, per_class: int, seed: int = 0, classes: int = 2) -> None:
    """JPEGs of assorted sizes (none square at the training size) in root/<class>/."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            h, w = (int(v) for v in rng.integers(40, 100, 2))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{j:03d}.jpg", quality=90)


def bytes_read() -> int:
    """Bytes this process has read through read() calls so far (Linux)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


# A proxyless supernet at its tiny width trained for one epoch per stage on a dozen images.
TINY_224 = preset(
    "tiny",
    space="proxyless",
    epochs_fair=1,
    epochs_pareto=1,
    prune_after=1,
    samples=2,
    top_n=1,
    target_pool=2,
    final_samples=2,
    batch_size=4,
    bn_batches=1,
    eval_images=8,
    alpha_steps=1,
).with_image_size(224)


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts reads with /proc")
def test_proxyless_trains_at_224_from_a_folder_and_from_its_tar(tmp_path: Path) -> None:
    tree = tmp_path / "photos"
    write_photos(tree, per_class=6)
    archive = tmp_path / "photos.tar"
    ballast = tmp_path / "ballast.bin"  # not an image: indexing must seek past it, not read it
    ballast.write_bytes(b"\0" * (32 << 20))
    with tarfile.open(archive, "w") as t:
        t.add(ballast, arcname="photos/ballast.bin")
        t.add(tree, arcname="photos")
    ballast.unlink()

    fronts = {}
    for spec in (tree, archive):
        run_dir = tmp_path / f"run-{spec.name}"
        before = bytes_read()
        trainer = Trainer(replace(TINY_224, dataset=str(spec)), run_dir)
        front = trainer.run()
        read = bytes_read() - before
        trainer.write_front(front)
        assert isinstance(trainer.data, StreamSplits) and trainer.tensors.loader is not None
        assert trainer.space.input_shape == (3, 224, 224) and trainer.space.num_classes == 2
        assert (len(trainer.data.train), len(trainer.data.val), len(trainer.data.test)) == (8, 2, 2)
        assert tuple(trainer.tensors.train_x.shape) == (4, 3, 224, 224)  # the BN pool only
        epochs = [r for r in RunLog(run_dir / "log.jsonl").records() if r.get("event") == "epoch"]
        assert [r["stage"] for r in epochs] == ["fair", "pareto"]
        assert all(np.isfinite(r["task_loss"]) for r in epochs)
        assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 2
        assert front and all(0.0 <= m.accuracy <= 100.0 for m in front)
        fronts[spec.name] = [(m.path, m.accuracy) for m in front]
        if spec == archive:
            # Images were read one by one: far less than the archive went through read().
            assert read < (8 << 20), read
            # What a DataLoader worker is handed: a listing and (offset, size) spans, no bytes.
            assert len(pickle.dumps(trainer.tensors.loader.dataset)) < 8_000
    # The same images in the same order: the two runs are the same run.
    assert fronts["photos"] == fronts["photos.tar"]

    # Export reads the run's data at the size it trained at (224 px), and the bundle runs there.
    # (Named: a 2-image validation split puts no path clearly above chance.)
    key = json.loads((tmp_path / "run-photos.tar" / "front.json").read_text())["paths"][0]["key"]
    bundle = export_bundle(tmp_path / "run-photos.tar", tmp_path / "bundle", paths=[key])
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["input"]["shape"] == [1, 3, 224, 224]
    model = AdaptiveModel(bundle, battery=PushedBattery(100), backend="onnxruntime")
    photo = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    logits = model.predict(photo).logits
    assert logits.shape == (1, 2) and np.all(np.isfinite(logits))


def test_streamed_splits_are_the_in_memory_ones_at_any_size(tmp_path: Path) -> None:
    write_photos(tmp_path / "tree", per_class=7, classes=3)
    for size in (32, 48):
        memory = load_dataset(tmp_path / "tree", seed=4, image_size=size)
        stream = open_dataset(tmp_path / "tree", seed=4, image_size=size)
        for a, b in ((memory.train, stream.train), (memory.val, stream.val)):
            assert a.names == b.names and np.array_equal(a.labels, b.labels)
            assert a.images.shape[1:] == (size, size, 3)
            pixels = np.stack([b[i][0].numpy().transpose(1, 2, 0) for i in range(len(b))])
            assert np.array_equal(pixels, a.images)
        assert memory.test.names == stream.test.names
        # Held out per class, seeded: one validation image of each class, the same each time.
        assert stream.val.class_counts().tolist() == [1, 1, 1]
        assert open_dataset(tmp_path / "tree", seed=4, image_size=size).val.names == b.names
    assert streams_by_default(tmp_path / "tree") and not streams_by_default("default")


def test_a_gzipped_archive_is_inflated_once_to_the_cache(tmp_path: Path, monkeypatch) -> None:
    write_photos(tmp_path / "tree", per_class=4)
    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(tmp_path / "tree", arcname="tree")
    cache = tmp_path / "cache"
    monkeypatch.setenv("PRP_DATA_CACHE", str(cache))
    streamed = open_dataset(archive, image_size=40)
    inflated = list(cache.iterdir())
    assert len(inflated) == 1 and tarfile.is_tarfile(inflated[0])
    folder = load_dataset(tmp_path / "tree", image_size=40)
    assert streamed.train.names == tuple(f"tree/{n}" for n in folder.train.names)
    assert np.array_equal(streamed.train.decode(range(len(folder.train))), folder.train.images)
    mtime = inflated[0].stat().st_mtime_ns
    open_dataset(archive, image_size=40)
    assert list(cache.iterdir()) == inflated and inflated[0].stat().st_mtime_ns == mtime


def test_sampler_order_comes_from_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        sampler = EpochSampler(50, seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert sorted(order(0, 0)) == list(range(50))
    assert order(0, 3) == order(0, 3)
    assert order(0, 0) != order(0, 1) and order(0, 1) != order(1, 0)
    with pytest.raises(ValueError, match="rank must be in"):
        RankBatches(5, 2, 0, rank=2, world_size=2)


@pytest.mark.parametrize("image_size", [32, 96])  # both recipes: pad-crop, RandomResizedCrop
def test_under_two_ranks_each_loader_reads_its_part_of_every_global_batch(
    tmp_path: Path, image_size: int
) -> None:
    # What one process trains on, each global batch split by `weight_step.shard` (images r, r + 2,
    # ... to rank r), is what the two ranks' loaders yield, each reading only its own images:
    # the same images, labels and augmentation, and the same short batches left out.
    write_photos(tmp_path / "tree", per_class=9)
    data = open_dataset(tmp_path / "tree", image_size=image_size)

    def loader(batch: int, rank: int, world: int) -> TrainLoader:
        return TrainLoader(
            data.train,
            batch_size=batch,
            seed=3,
            device=torch.device("cpu"),
            mean=data.mean,
            std=data.std,
            rank=rank,
            world_size=world,
        )

    assert len(data.train) == 12
    # batch 5: global batches of 5, 5, 2; the last cannot give each of 2 ranks two images.
    # batch 7: 7 and 5, both kept; odd sizes split 4 + 3 and 3 + 2.
    for batch, kept in ((5, 2), (7, 2)):
        whole = list(loader(batch, 0, 1).epoch(1))
        ranks = [loader(batch, r, 2) for r in (0, 1)]
        parts = [list(r.epoch(1)) for r in ranks]
        assert len(whole) == -(-12 // batch) and len(parts[0]) == len(parts[1]) == kept
        assert len(ranks[0]) == len(ranks[1]) == kept
        for step, (x, y) in enumerate(whole[:kept]):
            assert ranks[0].global_size(step) == ranks[1].global_size(step) == len(y)
            for r in (0, 1):
                xr, yr = parts[r][step]
                assert torch.equal(yr, y[r::2]) and len(yr) == len(range(r, len(y), 2))
                assert torch.equal(xr, x[r::2])  # bit for bit: the same crops and flips


def test_loader_batches_are_reproducible_resumable_and_worker_independent(tmp_path: Path) -> None:
    write_photos(tmp_path / "tree", per_class=9)
    data = open_dataset(tmp_path / "tree", image_size=32)
    cpu = torch.device("cpu")

    def loader(workers: int, size_data: StreamSplits = data) -> TrainLoader:
        return TrainLoader(
            size_data.train,
            batch_size=5,
            seed=7,
            device=cpu,
            mean=size_data.mean,
            std=size_data.std,
            workers=workers,
        )

    first = loader(0)
    assert default_workers(cpu) == 0 and first.loader.pin_memory is False
    epoch1 = list(first.epoch(1))
    assert len(data.train) == 12 and len(epoch1) == len(first) == 3  # 5 + 5 + 2
    assert [tuple(x.shape) for x, _ in epoch1] == [(5, 3, 32, 32)] * 2 + [(2, 3, 32, 32)]
    again = list(loader(0).epoch(1))  # a fresh loader starts at epoch 1: resuming
    two_workers = list(loader(2).epoch(1))
    for other in (again, two_workers):
        for (xa, ya), (xb, yb) in zip(epoch1, other, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    epoch2 = list(first.epoch(2))
    assert not torch.equal(epoch1[0][0], epoch2[0][0])
    labels = torch.cat([y for _, y in epoch1])
    assert sorted(labels.tolist()) == sorted(data.train.labels.tolist())

    big = open_dataset(tmp_path / "tree", image_size=96)
    assert recipe(96) == "imagenet" and recipe(32) == "cifar"
    x, _ = next(loader(0, big).epoch(0))
    assert tuple(x.shape) == (5, 3, 96, 96) and x.dtype == torch.float32


def test_image_size_option_is_checked(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "prp-train"
    result = subprocess.run(
        [str(exe), "--preset", "tiny", "--image-size", "4", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "--image-size must be a whole number of pixels >= 8" in text
    assert "Traceback" not in text and not (tmp_path / "run").exists()
