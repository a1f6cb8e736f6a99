"""Train the strict-fair NB201 supernet that the default run can start from (`prp-train --init`).

Stage 1 of the paper (strict fairness, FairNAS) is objective-independent, so it is trained once
at a larger scale than the default run can afford, the way Once-for-All ships trained
supernets: the default preset's space (NB201, 8 channels, 1 cell per stage) on the 45,000
CIFAR-10 train images that the embedded default subset does not hold (train images 501-5,000
of each class; the default run then estimates accuracy on images this supernet never saw),
30 epochs of strict fairness. One command, which resumes where it stopped:

    OMP_NUM_THREADS=1 python bench/pretrain_supernet.py \
        --tar ../shared/data/cifar10/cifar10_jpg.tar.gz --out runs/pretrain

About 5 minutes per epoch on one core of the 2-core machine here (2.5 hours in all). It writes
the data set (runs/pretrain/cifar10_disjoint.npz, 17 MB) on the first call and the run in
runs/pretrain/fair-c8/ (checkpoint after every epoch). A run still in progress is kept in git
under bench/pretrain/fair-c8/ (config, log, last checkpoint; under 1 MB) between sessions; go on
from it with `mkdir -p runs/pretrain && cp -r bench/pretrain/fair-c8 runs/pretrain/` and the
command above (the data set is rebuilt with the same bytes, the archive's own JPEGs).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from prp.trainer.config import preset
from prp.trainer.datasets import build_default_subset
from prp.trainer.runs import CONFIG
from prp.trainer.train import Trainer

EPOCHS = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tar", type=Path, required=True, help="cifar10_jpg.tar.gz")
    parser.add_argument("--out", type=Path, default=Path("runs/pretrain"))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    data = args.out / "cifar10_disjoint.npz"
    if not data.is_file():
        build_default_subset(
            args.tar, data, train_per_class=4500, test_per_class=1000, train_skip_per_class=500
        )
        print(f"wrote {data}")
    run_dir = args.out / "fair-c8"
    cfg = replace(
        preset("default"),
        method="fair",
        dataset=str(data),
        epochs_fair=args.epochs,
        epochs_pareto=0,
        prune_after=0,
    )

    def progress(task: str, done: int, total: int) -> None:
        if done == total:
            print(f"{time.strftime('%H:%M:%S')} {task}: {done}/{total}", flush=True)

    trainer = Trainer(cfg, run_dir, progress=progress)
    front = trainer.run(resume=(run_dir / CONFIG).is_file())
    trainer.write_front(front)
    print(f"done: {run_dir}/checkpoint.pt ({trainer.epoch} epochs)")


if __name__ == "__main__":
    main()
