"""Forward+backward time of one path through the supernet against the same network standalone.

Target: supernet / standalone <= 1.10 at real size. Both are timed in one run, interleaved, so
machine noise hits both alike; the figure is the ratio of medians.

    python bench/supernet_overhead.py [--reps 30] [--batch 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from common import print_table, write_record
from prp.trainer.spaces import get_space
from prp.trainer.supernet import Supernet


def step_time(model, x, y, loss_fn) -> float:
    t = time.perf_counter()
    model.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--spaces", default="nb201,fbnet")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows, records = [], []
    for name in args.spaces.split(","):
        space = get_space(name)
        supernet = Supernet(space).train()
        path = supernet.sample_uniform(np.random.default_rng(0))
        alone = supernet.standalone(path).train()
        x = torch.randn(args.batch, *space.input_shape)
        y = torch.randint(0, space.num_classes, (args.batch,))
        loss = torch.nn.functional.cross_entropy

        def through_supernet(inp, path=path, supernet=supernet):
            return supernet(inp, path)

        through_supernet.zero_grad = supernet.zero_grad  # type: ignore[attr-defined]
        for _ in range(3):  # warm-up
            step_time(through_supernet, x, y, loss)
            step_time(alone, x, y, loss)
        t_super, t_alone = [], []
        for _ in range(args.reps):
            t_super.append(step_time(through_supernet, x, y, loss))
            t_alone.append(step_time(alone, x, y, loss))
        ms_super = statistics.median(t_super) * 1e3
        ms_alone = statistics.median(t_alone) * 1e3
        ratio = ms_super / ms_alone
        rows.append(
            [
                name,
                space.encode(path)[:40],
                args.batch,
                ms_super,
                ms_alone,
                ratio,
                "yes" if ratio <= 1.10 else "NO",
            ]
        )
        records.append(
            {
                "space": name,
                "path": list(path),
                "batch": args.batch,
                "reps": args.reps,
                "supernet_ms": ms_super,
                "standalone_ms": ms_alone,
                "ratio": ratio,
                "target": 1.10,
            }
        )
    out = write_record("supernet_overhead", {"results": records})
    print_table(
        "Forward+backward of one path: supernet vs standalone (median ms)",
        ["space", "path", "batch", "supernet ms", "standalone ms", "ratio", "<= 1.10"],
        rows,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
