"""`prp-pretrain`: train a strict-fair supernet once, for runs to start from (`--init`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from prp.runtime.cli_errors import one_line_errors

from ..errors import PRPError
from .console import make_console as _console
from .console import progress_bar

pretrain_app = typer.Typer(
    add_completion=False,
    help="Pretrain a strict-fair supernet (stage 1) that prp-train --init starts from.",
)


@pretrain_app.command()
def pretrain(
    tar: Path = typer.Option(
        None,
        help="The CIFAR-10 JPEG archive (cifar10_jpg.tar.gz): train on its 45,000 train images "
        "the embedded default subset does not hold, as the shipped supernets were.",
    ),
    dataset: str = typer.Option(
        None,
        "--dataset",
        "--data-dir",
        help="Instead of --tar, your own data, as prp-train reads it: a cifar-10-batches-py "
        "folder, a folder of class sub-folders, a .tar(.gz) of one, or an .npz.",
    ),
    out: Path = typer.Option(
        Path("runs/pretrain"),
        help="Folder of the data set built from --tar and of the run (OUT/fair-c8-n2 for the "
        "default space); starting the same command again goes on from the last epoch.",
    ),
    ship: Path = typer.Option(
        None,
        help="Write the --ship-epoch checkpoint here without optimizer state as soon as that "
        "epoch is done (then: prp-train --init SHIP); replaces only a supernet it wrote.",
    ),
    ship_epoch: int = typer.Option(
        None,
        help="The epoch whose checkpoint is shipped (default: 16 for the default space, 8 for "
        "1 cell per stage, as shipped; else the last).",
    ),
    keep_epochs: str = typer.Option(
        "", help="Also keep the checkpoints after these epochs, e.g. 4,6,8 (to choose one)."
    ),
    epochs: int = typer.Option(30, help="Epochs of strict fairness."),
    preset_name: str = typer.Option(
        "default", "--preset", help="The preset whose space and settings are trained."
    ),
    space: str = typer.Option(None, help="Search space (default: the preset's, nb201)."),
    size: str = typer.Option(None, "--size", help="Space size: real or tiny."),
    channels: int = typer.Option(None, help="NB201 channels of the first stage (default 8)."),
    cells_per_stage: int = typer.Option(
        None, help="NB201 cells per stage (default: the default preset's, 2)."
    ),
    limit_per_class: int = typer.Option(None, help="Use at most this many images per class."),
    skip_bad_images: bool = typer.Option(
        False,
        "--skip-bad-images",
        help="Train without the images of --dataset that fail its check (by default they are "
        "refused, all named); they are listed in RUN/bad_images.json.",
    ),
    batch_size: int = typer.Option(None, help="Training batch size (default 64)."),
    lr: float = typer.Option(None, help="Learning rate of W (default 0.05)."),
    seed: int = typer.Option(None, help="Random seed (default 0)."),
    compute_device: str = typer.Option(None, help="cpu or cuda."),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="Show third-party warnings and logs here (by default they go to RUN/train.log).",
    ),
) -> None:
    """Train a supernet with strict fairness on all the data you have, checkpointing every
    epoch, and ship one epoch's weights for prp-train --init.

    \f
    Over 80 lines for its typer options and its progress display; the work is
    `pretraining.run_pretraining`."""
    from prp.runtime.quiet import third_party_log

    from ..datasets.bad_images import RECORD
    from ..pretraining import (
        Pretraining,
        build_disjoint_cifar10,
        default_ship_epoch,
        parse_epochs,
        pretrain_config,
        run_name,
    )
    from ..pretraining import pretrain as run_pretraining

    console = _console()
    with one_line_errors(console, PRPError):
        if (tar is None) == (dataset is None):
            raise PRPError("give the data to pretrain on: --tar CIFAR10_JPG_TAR or --dataset")
        if tar is not None and not tar.is_file():
            raise PRPError(f"--tar {tar} does not exist; give the CIFAR-10 JPEG .tar.gz")
        data = str(out / "cifar10_disjoint.npz") if tar is not None else str(dataset)
        cfg = pretrain_config(
            data,
            preset_name,
            epochs,
            space=space,
            size=size,
            channels=channels,
            cells_per_stage=cells_per_stage,
            limit_per_class=limit_per_class,
            skip_bad_images=skip_bad_images or None,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            compute_device=compute_device,
        )
        job = Pretraining(
            cfg,
            out / run_name(cfg),
            ship_epoch if ship_epoch is not None else default_ship_epoch(cfg),
            parse_epochs(keep_epochs),
            ship,
        )
        job.check()  # before the data set is built and hours are spent
        if tar is not None:
            with console.status(f"building {data} from {tar} (once)"):
                build_disjoint_cifar10(tar, out)
        shape = "".join(f", {k} {v}" for k, v in cfg.space_overrides.items())
        console.print(
            f"run {job.run_dir}: {cfg.space} ({cfg.space_size}{shape}), {epochs} strict-fair "
            f"epochs on {cfg.dataset}; epoch {job.ship_epoch} "
            + (f"ships to {ship}" if ship is not None else "is kept")
        )
        log = None if verbose else job.run_dir / "train.log"
        with third_party_log(log, "prp-pretrain"), progress_bar(console) as progress:

            def on_epoch(epochs_done: int) -> None:
                console.print(
                    f"{time.strftime('%H:%M:%S')} epoch {epochs_done}/{epochs} done: "
                    f"{job.run_dir}/checkpoint.pt"
                )

            def on_ship(path: Path) -> None:
                console.print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")

            done = run_pretraining(job, progress=progress, on_epoch=on_epoch, on_ship=on_ship)
        console.print(f"done: {job.run_dir}/checkpoint.pt ({done} epochs)")
        record = job.run_dir / RECORD
        if record.is_file():
            count = json.loads(record.read_text()).get("count", 0)
            noun = "image" if count == 1 else "images"
            console.print(f"trained without {count} {noun} that cannot be decoded: {record}")
