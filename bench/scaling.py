"""Scaling: training images/s of 1 vs 2 processes launched by torchrun (gloo on CPU, one thread
each), the same global batches, one strict-fair epoch of W steps on a preset's network.

    python bench/scaling.py [--preset tiny] [--limit-per-class 30] [--procs 1 2]

Writes bench/results/scaling.json (key "distributed") and prints a table. Each count of
processes is one torchrun job running this file with `--worker`; rank 0 reports the epoch's
images/s (the whole batch's images over all ranks, as `log.jsonl` counts them).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_record  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker(preset_name: str, limit_per_class: int, result: Path) -> None:
    """Inside each torchrun process: one strict-fair epoch of W steps; rank 0 writes `result`."""
    from prp.trainer import distributed
    from prp.trainer.config import preset
    from prp.trainer.train import Trainer

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
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--limit-per-class", type=int, default=30)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.preset, args.limit_per_class, args.result)
        return
    load_before = os.getloadavg()[0]  # other work on the cores makes the figures no speed-up
    rows = distributed_scaling(args.preset, args.limit_per_class, args.procs)
    base = rows[0]["images_per_s"]
    for r in rows:
        r["speedup"] = r["images_per_s"] / base
    path = write_record(
        "scaling",
        {
            "distributed": {
                "preset": args.preset,
                "limit_per_class": args.limit_per_class,
                "backend": "gloo",
                "threads_per_process": 1,
                "what": "one strict-fair epoch of W steps (FairNAS groups), global batches",
                "rows": rows,
                "load_average_1min": [load_before, os.getloadavg()[0]],
            }
        },
    )
    print_table(
        f"Training throughput, {args.preset} preset, torchrun + gloo, 1 thread per process",
        ["processes", "images/s", "speed-up", "epoch s", "path-steps", "train images"],
        [
            [
                r["processes"],
                r["images_per_s"],
                r["speedup"],
                r["train_seconds"],
                r["path_steps"],
                r["train_images"],
            ]
            for r in rows
        ],
    )
    print(f"load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
