"""Train the strict-fair NB201 supernet that the default run can start from (`prp-train --init`).

Stage 1 of the paper (strict fairness, FairNAS) is objective-independent, so it is trained once
at a larger scale than the default run can afford, the way Once-for-All ships trained
supernets: the default preset's space (NB201, 8 channels, 2 cells per stage) on the 45,000
CIFAR-10 train images that the embedded default subset does not hold (train images 501-5,000
of each class; the default run then estimates accuracy on images this supernet never saw),
a 30-epoch schedule of strict fairness. One command, which resumes where it stopped:

    OMP_NUM_THREADS=1 python bench/pretrain_supernet.py \
        --tar ../shared/data/cifar10/cifar10_jpg.tar.gz --out runs/pretrain \
        --ship trainer/data/supernets/nb201-c8n2-fair.pt

About 6-7 minutes per epoch on one core of the 2-core machine here. It writes the data set
(runs/pretrain/cifar10_disjoint.npz, 17 MB) on the first call and the run in
runs/pretrain/fair-c8-n2/ (checkpoint after every epoch, and a copy of the one after
`--ship-epoch`); with `--ship FILE` it writes that epoch's supernet without optimizer state
as soon as the epoch is done (SHIP_EPOCH below says which and why), as shipped in
trainer/data/supernets/nb201-c8n2-fair.pt (the default preset's `--init`), and goes on to
the schedule's end (stop it there if the later epochs are not wanted). `--cells-per-stage 1`
trains the earlier default space's supernet (runs/pretrain/fair-c8/, shipped as
nb201-c8-fair.pt after 8 epochs). Each shipped file's run log and config are kept in
bench/pretrain/fair-c8-n<N>/ (fair-c8/ for one cell per stage).
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import replace
from pathlib import Path

from prp.trainer.config import preset
from prp.trainer.datasets import build_default_subset
from prp.trainer.pretrained import ship
from prp.trainer.runs import CONFIG
from prp.trainer.train import Trainer

EPOCHS = 30
# The checkpoint shipped, per cells per stage. One cell: after 8 of the 30 epochs its shared
# weights rank NB201 better (bench/supernet_probe.py on architectures drawn with --seed 1, not
# prp-eval's: weights alone 0.512 / 0.568 accuracy / Pareto tau-b) than after all 30 (0.396 /
# 0.375). Two cells (the default space since 2026-12-03), probed after epochs 8, 10, 12 and 16:
# the default recipe's front spans 9.2 points from epoch 10 and 10.0 from epochs 12 and 16;
# of those two, epoch 16's weights alone rank best (0.633 / 0.595 against 0.436 / 0.493) and
# with the free proxies about as well (0.745 / 0.674 against 0.734 / 0.692).
SHIP_EPOCH = {1: 8, 2: 16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tar", type=Path, required=True, help="cifar10_jpg.tar.gz")
    parser.add_argument("--out", type=Path, default=Path("runs/pretrain"))
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument(
        "--ship-epoch",
        type=int,
        default=None,
        help="the epoch whose checkpoint is shipped (default: SHIP_EPOCH of the cells per "
        "stage, see bench/results/README.md)",
    )
    parser.add_argument(
        "--ship",
        type=Path,
        default=None,
        help="when --ship-epoch is done, write its supernet here without optimizer state, e.g. "
        "trainer/data/supernets/nb201-c8n2-fair.pt (the file `prp-train --init "
        "nb201-c8n2-fair` and the default preset start from)",
    )
    parser.add_argument(
        "--cells-per-stage",
        type=int,
        default=int(preset("default").space_overrides["cells_per_stage"]),
        help="NB201 cells per stage (default: the default preset's, 2; 1 for the earlier "
        "default space, in runs/pretrain/fair-c8/)",
    )
    parser.add_argument(
        "--keep-epochs",
        default="",
        help="also keep the checkpoints after these epochs, e.g. 4,6,8,10,12 (to choose the "
        "epoch to ship with bench/supernet_probe.py)",
    )
    args = parser.parse_args()
    if args.ship_epoch is None:
        if args.cells_per_stage not in SHIP_EPOCH:
            raise SystemExit(f"--cells-per-stage {args.cells_per_stage}: give --ship-epoch")
        args.ship_epoch = SHIP_EPOCH[args.cells_per_stage]
    try:
        kept = {int(e) for e in args.keep_epochs.split(",") if e.strip()} | {args.ship_epoch}
    except ValueError:
        raise SystemExit(f"--keep-epochs {args.keep_epochs!r}: give epochs like 4,6,8") from None
    data = args.out / "cifar10_disjoint.npz"
    if not data.is_file():
        build_default_subset(
            args.tar, data, train_per_class=4500, test_per_class=1000, train_skip_per_class=500
        )
        print(f"wrote {data}")
    deeper = args.cells_per_stage != 1
    run_dir = args.out / (f"fair-c8-n{args.cells_per_stage}" if deeper else "fair-c8")
    base = preset("default", init="scratch")
    cfg = replace(
        base,
        space_overrides={**base.space_overrides, "cells_per_stage": args.cells_per_stage},
        method="fair",
        dataset=str(data),
        epochs_fair=args.epochs,
        epochs_pareto=0,
        prune_after=0,
    )

    def progress(task: str, done: int, total: int) -> None:
        if done == total:
            print(f"{time.strftime('%H:%M:%S')} {task}: {done}/{total}", flush=True)

    snapshot = run_dir / f"checkpoint-epoch{args.ship_epoch}.pt"

    def keep(epochs_done: int) -> None:
        if epochs_done in kept:  # the epoch to ship (and others asked for), beside the last
            shutil.copyfile(
                run_dir / "checkpoint.pt", run_dir / f"checkpoint-epoch{epochs_done}.pt"
            )
        if epochs_done == args.ship_epoch and args.ship is not None:
            write_shipped()

    def write_shipped() -> None:
        ship(snapshot, args.ship)
        print(f"wrote {args.ship} from {snapshot} ({args.ship.stat().st_size / 1e6:.2f} MB)")

    trainer = Trainer(cfg, run_dir, progress=progress)
    front = trainer.run(resume=(run_dir / CONFIG).is_file(), after_epoch=keep)
    trainer.write_front(front)
    print(f"done: {run_dir}/checkpoint.pt ({trainer.epoch} epochs)")
    if args.ship is not None and not args.ship.is_file():  # resumed after the ship epoch
        write_shipped()


if __name__ == "__main__":
    main()
