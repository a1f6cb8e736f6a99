"""Training-step time of real-size paths in float32 against bfloat16 autocast (channels-last),
`prp-train-paths --precision`: one sandwich step (forward, backward) per path, both precisions
interleaved in one run so that the machine's load hits them alike.

    OMP_NUM_THREADS=1 python bench/path_precision.py [--reps 5] [--batch-size 128]

Paths: the five a search run chose (`--run`, default the committed NB201 edge-GPU search), at
NB201's real size (C=16, N=5). Target: bf16 at least 1.5x faster per step where the CPU has
bfloat16 instructions (AVX-512 BF16 or AMX).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from common import print_table, write_record
from prp.trainer import path_training as pt
from prp.trainer.spaces import get_space
from prp.trainer.supernet import Supernet

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "bench/pretrain/nb201-edgegpu-paths")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    keys = json.loads((args.run / "paths.json").read_text())["keys"]
    space = get_space("nb201")
    torch.manual_seed(0)
    net = Supernet(space)
    x = torch.randn(args.batch_size, *space.input_shape)
    y = torch.randint(0, space.num_classes, (args.batch_size,))
    rows, record = [], []
    for key in keys:
        path = pt.compute_path(space, space.decode(key))
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for rep in range(args.reps + 1):
            for precision in ("fp32", "bf16"):
                recipe = pt.PathRecipe("bench", (key,), "nb201", distill=0.0, precision=precision)
                layout = torch.channels_last if precision == "bf16" else torch.contiguous_format
                net.net.to(memory_format=layout)  # type: ignore[call-overload]
                net.zero_grad()
                t = time.perf_counter()
                pt.train_step(net, [path], x, y, recipe)
                if rep > 0:  # the first of each is warm-up
                    times[precision].append(time.perf_counter() - t)
        fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
        record.append({"path": key, "fp32_s": fp32, "bf16_s": bf16, "speedup": fp32 / bf16})
        rows.append([key, fp32, bf16, fp32 / bf16])
    speedups = [r["speedup"] for r in record]
    out = write_record(
        "path_precision",
        {
            "batch_size": args.batch_size,
            "reps": args.reps,
            "threads": torch.get_num_threads(),
            "paths": record,
            "median_speedup": statistics.median(speedups),
        },
    )
    print_table(
        f"One training step of each real-size path, batch {args.batch_size}, "
        f"{torch.get_num_threads()} thread(s), median of {args.reps}",
        ["path", "fp32 s", "bf16 s", "speed-up"],
        rows,
    )
    print(f"median speed-up {statistics.median(speedups):.2f}x; wrote {out}")


if __name__ == "__main__":
    main()
