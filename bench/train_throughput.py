"""Training throughput: stage-1 images/s per path-step against plain training of one path, and
epoch time before vs after pruning, all in one run on the default preset's network.

    python bench/train_throughput.py [--images-per-class 100] [--reps 3]

Target: stage-1 images/s per path-step / plain single-path images/s >= 0.9.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from common import print_table, write_record
from prp.trainer.config import preset
from prp.trainer.datasets import load_dataset
from prp.trainer.train import Trainer


def time_fair_steps(trainer: Trainer, batches, paths) -> tuple[float, int]:
    """Seconds and path-steps of stage-1 steps (the m paths, one update) over `batches`."""
    start, steps = time.perf_counter(), 0
    for x, y in batches:
        trainer._step(x, y, paths, 0, 0)
        steps += len(paths)
    return time.perf_counter() - start, steps


def time_plain_steps(models, batches, cfg) -> float:
    """Seconds of plain training of standalone networks over `batches`: each network one step
    per batch, so the work equals stage 1's on the same paths."""
    opts = [
        torch.optim.SGD(
            m.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            nesterov=True,
        )
        for m in models
    ]
    for m in models:
        m.train()
    start = time.perf_counter()
    for x, y in batches:
        for model, opt in zip(models, opts, strict=True):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images-per-class", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    cfg = replace(preset("default"), limit_per_class=args.images_per_class, samples=16)
    data = load_dataset("default", limit_per_class=cfg.limit_per_class)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), data=data)
        x_all, y_all = trainer.tensors.train_x, trainer.tensors.train_y
        batches = [
            (x_all[i : i + cfg.batch_size], y_all[i : i + cfg.batch_size])
            for i in range(0, len(y_all) - cfg.batch_size + 1, cfg.batch_size)
        ]
        rng = np.random.default_rng(0)
        group = trainer.supernet.sample_fair(rng)  # one strict-fair group of m paths
        alone = [trainer.supernet.standalone(p) for p in group]
        time_fair_steps(trainer, batches[:2], group)  # warm-up
        time_plain_steps(alone, batches[:2], cfg)
        fair_rates, plain_rates = [], []
        for _ in range(args.reps):  # interleaved, so noise hits both
            seconds, steps = time_fair_steps(trainer, batches, group)
            fair_rates.append(steps * cfg.batch_size / seconds)
            seconds = time_plain_steps(alone, batches, cfg)
            plain_rates.append(len(batches) * len(group) * cfg.batch_size / seconds)
        fair, plain = statistics.median(fair_rates), statistics.median(plain_rates)

        def epoch_times() -> dict[str, float]:
            t = time.perf_counter()
            trainer.train_weights(0, "fair")
            fair_s = time.perf_counter() - t
            t = time.perf_counter()
            trainer.update_alpha(cfg.epochs_fair)
            trainer.train_weights(cfg.epochs_fair, "pareto")
            return {
                "fair_epoch_s": fair_s,
                "pareto_epoch_s": time.perf_counter() - t,
                "m_paths_per_fair_step": len(trainer.supernet.sample_fair(rng)),
                "weights": sum(p.numel() for p in trainer.supernet.weight_parameters()),
            }

        before = epoch_times()
        trainer.update_alpha(cfg.epochs_fair + 1)  # more estimates for the pruning decision
        pruned = trainer.prune(cfg.epochs_fair + 1)
        after = epoch_times()
    ratio = fair / plain
    record = {
        "config": {
            "space": cfg.space,
            "space_overrides": cfg.space_overrides,
            "batch_size": cfg.batch_size,
            "train_images": int(len(y_all)),
            "samples": cfg.samples,
            "reps": args.reps,
        },
        "stage1_images_per_s_per_path_step": fair,
        "plain_standalone_images_per_s_per_path_step": plain,
        "ratio": ratio,
        "target_ratio": 0.9,
        "before_pruning": before,
        "after_pruning": after,
        "pruned_ops": pruned["pruned_ops"],
    }
    out = write_record("train_throughput", record)
    print_table(
        "Stage-1 throughput vs plain training of the same paths (median images/s per path-step)",
        ["stage 1 (m paths, 1 update)", "plain (m networks)", "ratio", ">= 0.9"],
        [[fair, plain, ratio, "yes" if ratio >= 0.9 else "NO"]],
    )
    print_table(
        f"Epoch time before vs after pruning ({pruned['pruned_ops']} ops pruned, "
        f"{len(y_all)} images)",
        ["", "fair epoch s", "m paths/step", "pareto epoch s (alpha+W)", "weights"],
        [
            [
                "before",
                before["fair_epoch_s"],
                before["m_paths_per_fair_step"],
                before["pareto_epoch_s"],
                before["weights"],
            ],
            [
                "after",
                after["fair_epoch_s"],
                after["m_paths_per_fair_step"],
                after["pareto_epoch_s"],
                after["weights"],
            ],
        ],
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
