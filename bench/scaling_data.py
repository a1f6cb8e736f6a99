"""Data scaling: DataLoader throughput against the training step it feeds, and the peak memory
of training from a 50,000-image folder (flat) against decoding it into memory (proportional).

    python bench/scaling_data.py [--images 50000] [--workers 0 2]

Throughput: images/s of (a) today's in-memory batching of the embedded subset (4,500 train
images, 32 px, `batches`), (b) the DataLoader path over the very same JPEGs written out as a
class-folder tree (decode with Pillow + kornia augmentation), at 0 and 2 workers, and (c) the
DataLoader at 224 px over generated 500x375 JPEGs (ImageNet-sized; RandomResizedCrop); against
the images/s of one strict-fair step (all of a slot's ops, one update) of the tiny nb201
supernet at 32 px and of the tiny-width proxyless supernet at 224 px. The loader is not the
bottleneck while its images/s exceed the step's.

Memory: peak RSS of a fresh process that opens a folder of N images and streams one epoch
through the TrainLoader, for N = images / 10 and N = images, and of one that loads the same
folder into memory (`load_dataset` + the trainer's float tensors).

Writes bench/results/scaling_data.json and prints two tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_record  # noqa: E402
from prp.trainer.config import preset  # noqa: E402
from prp.trainer.datasets import (  # noqa: E402
    DEFAULT_SUBSET_PATH,
    batches,
    load_dataset,
    open_dataset,
    to_tensor,
)
from prp.trainer.loader import TrainLoader  # noqa: E402
from prp.trainer.train import Trainer  # noqa: E402

CPU = torch.device("cpu")


def write_default_tree(root: Path, total: int = 6000) -> int:
    """The embedded subset's own JPEG bytes (6,000 files) as root/<split>/<class>/<name>, again
    under other names until `total` files are written; returns that number."""
    with np.load(DEFAULT_SUBSET_PATH) as npz:
        jpeg, offsets, names = npz["jpeg"], npz["offsets"], [str(n) for n in npz["names"]]
    count = 0
    for copy in range(-(-total // len(names))):
        for i, name in enumerate(names[: total - count]):
            path = root / (name if copy == 0 else name.replace(".jpg", f"-{copy}.jpg"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(jpeg[offsets[i] : offsets[i + 1]].tobytes())
            count += 1
    return count


def write_photos(root: Path, per_class: int, classes: int = 4) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            # Smooth noise compresses like a photo more than white noise does.
            small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC)
            image.save(root / f"class{c}" / f"{j:04d}.jpg", quality=90)


def loader_rate(spec: Path, size: int, batch: int, workers: int) -> float:
    data = open_dataset(spec, image_size=size)
    loader = TrainLoader(
        data.train,
        batch_size=batch,
        seed=0,
        device=CPU,
        mean=data.mean,
        std=data.std,
        workers=workers,
    )
    next(iter(loader.epoch(0)))  # workers started
    start, n = time.perf_counter(), 0
    for _, y in loader.epoch(1):
        n += len(y)
    return n / (time.perf_counter() - start)


def memory_rate(batch: int) -> float:
    data = load_dataset("default")
    x, y = to_tensor(data.train.images, data.mean, data.std), torch.tensor(data.train.labels)
    g = torch.Generator().manual_seed(0)
    start, n = time.perf_counter(), 0
    for _, yb in batches(x, y, batch, shuffle=True, augment=True, generator=g):
        n += len(yb)
    return n / (time.perf_counter() - start)


def step_rate(cfg_overrides: dict[str, Any], size: int, batch: int, reps: int = 3) -> float:
    """Images/s of strict-fair steps (m paths, one update) on random images at `size`."""
    cfg = preset("tiny", batch_size=batch, **cfg_overrides)
    data = load_dataset("default", limit_per_class=2, image_size=size)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(replace(cfg, space_overrides={"input_size": size}), Path(tmp), data=data)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, 3, size, size, generator=g), torch.randint(0, 10, (batch,))
    rng = np.random.default_rng(0)
    trainer.supernet.train()
    trainer._step(x, y, trainer.supernet.sample_fair(rng), 0, 0)  # warm-up
    start = time.perf_counter()
    for _ in range(reps):
        trainer._step(x, y, trainer.supernet.sample_fair(rng), 0, 0)
    return batch * reps / (time.perf_counter() - start)


def _peak_child(mode: str, spec: str) -> None:
    """In a fresh process: open/load `spec`, stream (or tensorise) it, print peak RSS in MB."""
    if mode == "stream":
        data = open_dataset(spec)
        loader = TrainLoader(
            data.train, batch_size=64, seed=0, device=CPU, mean=data.mean, std=data.std, workers=0
        )
        n = sum(len(y) for _, y in loader.epoch(0))
    else:
        splits = load_dataset(spec)
        x = to_tensor(splits.train.images, splits.mean, splits.std)
        n = len(x)
    # VmHWM, not getrusage's ru_maxrss: that one keeps the parent's peak across fork + exec.
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    print(json.dumps({"images": n, "peak_mb": peak}))


def peak_memory(mode: str, spec: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", mode, str(spec)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{mode} {spec} failed:\n{done.stderr[-2000:]}")
    return {**json.loads(done.stdout.splitlines()[-1]), "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _peak_child(*args.child)
        return
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tree, photos = Path(tmp) / "cifar", Path(tmp) / "photos"
        write_default_tree(tree)
        write_photos(photos, per_class=64)
        step32 = step_rate({"space": "nb201"}, 32, 64)
        step224 = step_rate({"space": "proxyless"}, 224, 32)
        rows.append(
            {"source": "default subset", "px": 32, "how": "in memory", "workers": "-",
             "images_per_s": memory_rate(64), "step_images_per_s": step32}
        )  # fmt: skip
        for w in args.workers:
            rows.append(
                {"source": "same JPEGs, folder", "px": 32, "how": "DataLoader", "workers": w,
                 "images_per_s": loader_rate(tree, 32, 64, w), "step_images_per_s": step32}
            )  # fmt: skip
        for w in args.workers:
            rows.append(
                {"source": "500x375 JPEGs", "px": 224, "how": "DataLoader", "workers": w,
                 "images_per_s": loader_rate(photos, 224, 32, w), "step_images_per_s": step224}
            )  # fmt: skip
        for r in rows:
            r["loader_over_step"] = r["images_per_s"] / r["step_images_per_s"]

        big = Path(tmp) / "big"
        total = write_default_tree(big, args.images)
        small = Path(tmp) / "cifar"
        memory = [
            {"images_on_disk": 6000, "how": "DataLoader", **peak_memory("stream", small)},
            {"images_on_disk": total, "how": "DataLoader", **peak_memory("stream", big)},
            {"images_on_disk": 6000, "how": "in memory", **peak_memory("memory", small)},
            {"images_on_disk": total, "how": "in memory", **peak_memory("memory", big)},
        ]
    path = write_record(
        "scaling_data",
        {
            "threads": 1,
            "what": "loader images/s against the images/s of one strict-fair step (tiny nb201 "
            "at 32 px, batch 64; tiny-width proxyless at 224 px, batch 32); peak RSS of a "
            "process streaming one epoch of a folder vs loading it into memory",
            "throughput": rows,
            "memory": memory,
        },
    )
    print_table(
        "Loader vs training step (images/s, 1 thread)",
        ["source", "px", "how", "workers", "loader img/s", "step img/s", "loader/step"],
        [
            [r["source"], r["px"], r["how"], r["workers"], r["images_per_s"],
             r["step_images_per_s"], r["loader_over_step"]]
            for r in rows
        ],
    )  # fmt: skip
    print_table(
        "Peak memory of one epoch (32 px)",
        ["images on disk", "how", "train images", "peak MB", "seconds"],
        [[m["images_on_disk"], m["how"], m["images"], m["peak_mb"], m["seconds"]] for m in memory],
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
