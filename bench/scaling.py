"""Scaling: images/s of 1 vs 2 training processes, data loader vs step, peak memory streaming.

Training images/s of 1 vs 2 processes (torchrun), the data loader's images/s against the
training step it feeds, and the peak memory of training from a 50,000-image folder.

    python bench/scaling.py [--only processes loader memory] [--preset default]
        [--limit-per-class 64] [--procs 1 2] [--images 50000] [--workers 0 2]

Writes bench/results/scaling.json, one section per part (`processes`, `loader`, `memory`, each
with the machine and date it was measured on; `--only` re-measures some and keeps the others as
recorded), and prints a table per part measured.

- processes: one strict-fair epoch of W steps on a preset's network with each count of
  processes, launched by torchrun (gloo on CPU, one thread each), the same global batches;
  rank 0 reports the epoch's images/s (the whole batch's images over all ranks, as `log.jsonl`
  counts them). Each count is one torchrun job running this file with `--worker`.
- loader: images/s of (a) the in-memory batching of the embedded subset (4,500 train images,
  32 px, `batches`), (b) the DataLoader path over the very same JPEGs written out as a
  class-folder tree (decode with Pillow + kornia augmentation), at 0 and 2 workers, and (c) the
  DataLoader at 224 px over generated 500x375 JPEGs (ImageNet-sized; RandomResizedCrop); against
  the images/s of one strict-fair step (all of a slot's ops, one update) of the tiny nb201
  supernet at 32 px and of the tiny-width proxyless supernet at 224 px. The loader is not the
  bottleneck while its images/s exceed the step's.
- memory: peak RSS of a fresh process that opens a folder of N images and streams one epoch
  through the TrainLoader, for N = images / 10 and N = images, and of one that loads the same
  folder into memory (`load_dataset` + the trainer's float tensors).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import RESULTS, machine, print_table, provenance, write_record
from prp.trainer.config import preset
from prp.trainer.datasets import (
    DEFAULT_SUBSET_PATH,
    batches,
    load_dataset,
    open_dataset,
    to_tensor,
)
from prp.trainer.loader import TrainLoader
from prp.trainer.train import Trainer

CPU = torch.device("cpu")
SECTIONS = ("processes", "loader", "memory")


# ------------------------------------------------------------------------------ processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker(preset_name: str, limit_per_class: int, result: Path) -> None:
    """Inside each torchrun process: one strict-fair epoch of W steps; rank 0 writes `result`."""
    from prp.trainer import distributed

    cfg = preset(preset_name, limit_per_class=limit_per_class)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, Path(run_dir))  # joins the process group torchrun describes
        record = trainer.train_weights(0, "fair")
    if distributed.is_main():
        result.write_text(
            json.dumps(
                {
                    "processes": distributed.world_size(),
                    "images_per_s": record["images_per_s"],
                    "train_seconds": record["train_seconds"],
                    "path_steps": record["path_steps"],
                    "train_images": len(trainer.data.train),
                    "batch_size": cfg.batch_size,
                }
            )
        )
    distributed.cleanup()


def distributed_scaling(
    preset_name: str, limit_per_class: int, procs: list[int]
) -> list[dict[str, Any]]:
    """Images/s of one strict-fair epoch with each count of processes in `procs` (torchrun,
    gloo, OMP_NUM_THREADS=1 per process)."""
    rows = []
    for n in procs:
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "result.json"
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc-per-node",
                str(n),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(_free_port()),
                __file__,
                "--worker",
                "--preset",
                preset_name,
                "--limit-per-class",
                str(limit_per_class),
                "--result",
                str(result),
            ]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
            if done.returncode != 0:
                raise SystemExit(f"torchrun with {n} processes failed:\n{done.stderr[-2000:]}")
            rows.append(json.loads(result.read_text()))
    base = rows[0]["images_per_s"]
    for r in rows:
        r["speedup"] = r["images_per_s"] / base
    return rows


def processes_section(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]  # other work on the cores makes the figures no speed-up
    rows = distributed_scaling(args.preset, args.limit_per_class, args.procs)
    return {
        "preset": args.preset,
        "limit_per_class": args.limit_per_class,
        "backend": "gloo",
        "threads_per_process": 1,
        "what": "one strict-fair epoch of W steps (FairNAS groups), global batches",
        "rows": rows,
        "load_average_1min": [load_before, os.getloadavg()[0]],
    }


def print_processes(section: dict[str, Any]) -> None:
    print_table(
        f"Training throughput, {section['preset']} preset, torchrun + gloo, 1 thread per process",
        ["processes", "images/s", "speed-up", "epoch s", "path-steps", "train images"],
        [
            [r["processes"], r["images_per_s"], r["speedup"], r["train_seconds"],
             r["path_steps"], r["train_images"]]
            for r in section["rows"]
        ],
    )  # fmt: skip
    before, after = section["load_average_1min"]
    print(f"load average (1 min) before / after: {before:.2f} / {after:.2f}")


# --------------------------------------------------------------------------------- loader
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


def loader_section(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    tree, photos = tmp / "cifar", tmp / "photos"
    if not tree.exists():
        write_default_tree(tree)
    write_photos(photos, per_class=64)
    step32 = step_rate({"space": "nb201"}, 32, 64)
    step224 = step_rate({"space": "proxyless"}, 224, 32)
    rows: list[dict[str, Any]] = [
        {"source": "default subset", "px": 32, "how": "in memory", "workers": "-",
         "images_per_s": memory_rate(64), "step_images_per_s": step32}
    ]  # fmt: skip
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
    return {
        "threads": 1,
        "what": "loader images/s against the images/s of one strict-fair step (tiny nb201 "
        "at 32 px, batch 64; tiny-width proxyless at 224 px, batch 32)",
        "rows": rows,
    }


def print_loader(section: dict[str, Any]) -> None:
    print_table(
        "Loader vs training step (images/s, 1 thread)",
        ["source", "px", "how", "workers", "loader img/s", "step img/s", "loader/step"],
        [
            [r["source"], r["px"], r["how"], r["workers"], r["images_per_s"],
             r["step_images_per_s"], r["loader_over_step"]]
            for r in section["rows"]
        ],
    )  # fmt: skip


# --------------------------------------------------------------------------------- memory
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


def memory_section(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    small, big = tmp / "cifar", tmp / "big"
    if not small.exists():
        write_default_tree(small)
    total = write_default_tree(big, args.images)
    rows = [
        {"images_on_disk": 6000, "how": "DataLoader", **peak_memory("stream", small)},
        {"images_on_disk": total, "how": "DataLoader", **peak_memory("stream", big)},
        {"images_on_disk": 6000, "how": "in memory", **peak_memory("memory", small)},
        {"images_on_disk": total, "how": "in memory", **peak_memory("memory", big)},
    ]
    return {
        "what": "peak RSS of a process streaming one epoch of a folder (32 px) vs loading it "
        "into memory",
        "rows": rows,
    }


def print_memory(section: dict[str, Any]) -> None:
    print_table(
        "Peak memory of one epoch (32 px)",
        ["images on disk", "how", "train images", "peak MB", "seconds"],
        [
            [m["images_on_disk"], m["how"], m["images"], m["peak_mb"], m["seconds"]]
            for m in section["rows"]
        ],
    )


# ----------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--preset", default="default", help="processes: the preset trained")
    parser.add_argument("--limit-per-class", type=int, default=64, help="processes: images")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images", type=int, default=50_000, help="memory: the big folder")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="loader")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.preset, args.limit_per_class, args.result)
        return
    if args.child:
        _peak_child(*args.child)
        return
    torch.set_num_threads(1)
    path = RESULTS / "scaling.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    sections = {k: record[k] for k in SECTIONS if k in record}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            measure = {
                "processes": lambda: processes_section(args),
                "loader": lambda: loader_section(args, Path(tmp)),
                "memory": lambda: memory_section(args, Path(tmp)),
            }[name]
            sections[name] = {"machine": machine(), "provenance": provenance(), **measure()}
    printers = {"processes": print_processes, "loader": print_loader, "memory": print_memory}
    for name in args.only:
        printers[name](sections[name])
    dates = ", ".join(f"{k} {v['machine']['date']}" for k, v in sections.items())
    path = write_record(
        "scaling",
        {
            "note": f"each section as measured on its own machine and date ({dates}); "
            f"`--only` re-measures some sections and keeps the others",
            **sections,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
