"""Pretraining a strict-fair supernet to start runs from (`prp-pretrain`).

Stage 1 of the paper (strict fairness, FairNAS) does not depend on the cost objective, so it can
be trained once, at a larger scale than a run affords, and every later run starts its
Pareto-rank stage from it (`prp-train --init FILE`), the way Once-for-All users train their own
supernets. The shipped supernets (`pretrained.PRETRAINED`) were made this way: the default
preset's space on the 45,000 CIFAR-10 train images the embedded default subset does not hold
(train images 501-5,000 of each class, so that the default run estimates accuracy on images the
supernet never saw), a 30-epoch schedule of strict fairness, and the checkpoint of one epoch of
it shipped (`SHIP_EPOCH` says which and why).

A pretraining is a prp-train run (`--method fair`, no Pareto epochs) in its own folder; it
checkpoints after every epoch and goes on from the last checkpoint when started again.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from prp.runtime.files import atomic_path

from .config import TrainConfig, preset
from .errors import PRPError
from .pretrained import ship
from .runs import CHECKPOINT, CONFIG, read_checkpoint

EPOCHS = 30  # the strict-fair schedule the shipped supernets were trained on
# The checkpoint shipped, per NB201 cells per stage (at 8 channels). One cell: after 8 of the
# 30 epochs its shared weights rank NB201 better (bench/supernet_probe.py on architectures drawn
# with --seed 1, not prp-eval's: weights alone 0.512 / 0.568 accuracy / Pareto tau-b) than after
# all 30 (0.396 / 0.375). Two cells (the default space since 2026-12-03), probed after epochs 8,
# 10, 12 and 16: the default recipe's front spans 9.2 points from epoch 10 and 10.0 from epochs
# 12 and 16; of those two, epoch 16's weights alone rank best (0.633 / 0.595 against 0.436 /
# 0.493) and with the free proxies about as well (0.745 / 0.674 against 0.734 / 0.692).
SHIP_EPOCH = {1: 8, 2: 16}
# The data set built from the CIFAR-10 JPEG archive: every train image the embedded default
# subset (the first 500 of each class) does not hold, and 1,000 test images per class.
DISJOINT_FILE = "cifar10_disjoint.npz"
DISJOINT = {"train_per_class": 4500, "test_per_class": 1000, "train_skip_per_class": 500}

ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Pretraining:
    """One pretraining: its run's config and folder, and which epochs' checkpoints it keeps.

    `ship_epoch`'s checkpoint is written without optimizer state to `ship_to` (when given) as
    soon as that epoch is done; `keep_epochs` are kept beside the last as
    `checkpoint-epoch<E>.pt` (to choose the epoch to ship by probing them)."""

    cfg: TrainConfig
    run_dir: Path
    ship_epoch: int
    keep_epochs: frozenset[int] = frozenset()
    ship_to: Path | None = None

    def __post_init__(self) -> None:
        last = self.cfg.epochs_fair
        for what, epoch in [("--ship-epoch", self.ship_epoch)] + [
            ("--keep-epochs", e) for e in sorted(self.keep_epochs)
        ]:
            if not 1 <= epoch <= last:
                raise PRPError(f"{what} {epoch}: the schedule has epochs 1 to {last}")

    def snapshot(self, epoch: int) -> Path:
        return self.run_dir / f"checkpoint-epoch{epoch}.pt"

    def check(self) -> bool:
        """Refuse a `--ship` or run folder that holds something else; returns whether the run
        folder holds this pretraining to go on with."""
        if self.ship_to is not None:
            check_ship_target(self.ship_to)
        return check_run_dir(self.run_dir)


def pretrain_config(
    dataset: str,
    preset_name: str = "default",
    epochs: int = EPOCHS,
    space: str | None = None,
    size: str | None = None,
    channels: int | None = None,
    cells_per_stage: int | None = None,
    **overrides: Any,
) -> TrainConfig:
    """The config of a strict-fair pretraining of `epochs` epochs on `dataset`: the preset's
    space (NB201 at 8 channels, 2 cells per stage for the default preset) from random weights,
    `--method fair` with no Pareto epochs; `overrides` (None ignored) set other config keys."""
    from .spaces import SIZES, list_spaces

    if epochs < 1:
        raise PRPError(f"--epochs {epochs}: give at least 1 epoch")
    if space is not None and space not in list_spaces():
        raise PRPError(f"--space {space}: unknown; spaces are {', '.join(list_spaces())}")
    if size is not None and size not in SIZES:
        raise PRPError(f"--size {size}: unknown; sizes are {', '.join(SIZES)}")
    base = preset(preset_name, init="scratch")
    space_overrides = dict(base.space_overrides)
    if space is not None and space != base.space:
        space_overrides = {}  # the preset's overrides are its own space's
    nb201 = (space or base.space) == "nb201"
    for name, value in (("channels", channels), ("cells_per_stage", cells_per_stage)):
        if value is None:
            continue
        if not nb201:
            raise PRPError(f"--{name.replace('_', '-')} applies to --space nb201 only")
        if value < 1:
            raise PRPError(f"--{name.replace('_', '-')} {value}: give at least 1")
        space_overrides[name] = value
    cfg = replace(
        base,
        space=space or base.space,
        space_size=size or base.space_size,
        space_overrides=space_overrides,
        method="fair",
        dataset=dataset,
        epochs_fair=epochs,
        epochs_pareto=0,
        prune_after=0,
        # Strict fairness trains every op alike, whatever they cost: the space's own default
        # cost model (the preset's NB201 one is for its Pareto-rank stage, and its space).
        cost_model=None,
    )
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def default_ship_epoch(cfg: TrainConfig) -> int:
    """The epoch shipped for this space: `SHIP_EPOCH` for NB201 at 8 channels (the shipped
    supernets' choice, probed), otherwise the last epoch."""
    overrides = cfg.space_overrides
    if (cfg.space, cfg.space_size, overrides.get("channels")) == ("nb201", "real", 8):
        cells = overrides.get("cells_per_stage")
        if isinstance(cells, int) and cells in SHIP_EPOCH and cfg.epochs_fair >= SHIP_EPOCH[cells]:
            return SHIP_EPOCH[cells]
    return cfg.epochs_fair


def run_name(cfg: TrainConfig) -> str:
    """The run folder's name under `--out`: fair-c8-n2 for NB201 at 8 channels and 2 cells per
    stage (fair-c8 for 1 cell, the shipped supernets' folders), else fair-<space>-<size>."""
    overrides = cfg.space_overrides
    channels, cells = overrides.get("channels"), overrides.get("cells_per_stage")
    if cfg.space == "nb201" and cfg.space_size == "real" and channels and cells:
        return f"fair-c{channels}" + ("" if cells == 1 else f"-n{cells}")
    return f"fair-{cfg.space}-{cfg.space_size}"


def parse_epochs(spec: str) -> frozenset[int]:
    """`--keep-epochs 4,6,8` as a set of epochs."""
    try:
        epochs = frozenset(int(e) for e in spec.split(",") if e.strip())
    except ValueError:
        raise PRPError(f"--keep-epochs {spec!r}: give epochs like 4,6,8") from None
    if any(e < 1 for e in epochs):
        raise PRPError(f"--keep-epochs {spec!r}: epochs count from 1")
    return epochs


def check_ship_target(dest: Path) -> None:
    """`--ship` may replace only a supernet prp-pretrain shipped: never another file."""
    if not dest.exists():
        return
    if dest.is_dir():
        raise PRPError(f"--ship {dest} is a folder; give the .pt file to write")
    try:
        read_checkpoint(dest)
    except Exception:  # noqa: BLE001 - anything unreadable is as foreign as anything else
        raise PRPError(
            f"--ship {dest} exists and is not a supernet prp-pretrain wrote; it never "
            f"overwrites other files: choose another --ship"
        ) from None


def check_run_dir(run_dir: Path) -> bool:
    """Whether `run_dir` holds a pretraining to go on with; a folder with files but no run is
    refused rather than written into."""
    if (run_dir / CONFIG).is_file():
        return True
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise PRPError(
            f"{run_dir} exists and holds no prp-pretrain run (no {CONFIG}); choose another --out"
        )
    return False


def build_disjoint_cifar10(tar: Path, out_dir: Path) -> Path:
    """The pretraining data set from the CIFAR-10 JPEG archive (`DISJOINT`), built once into
    `out_dir` (written atomically) and reused after."""
    from .datasets import build_default_subset

    data = out_dir / DISJOINT_FILE
    if not data.is_file():
        build_default_subset(tar, data, **DISJOINT)
    return data


def pretrain(
    job: Pretraining,
    progress: ProgressFn | None = None,
    on_epoch: Callable[[int], None] | None = None,
    on_ship: Callable[[Path], None] | None = None,
) -> int:
    """Train (or go on with) `job`'s strict-fair run to the end of its schedule, keeping and
    shipping the checkpoints it asks for; returns the epochs done. `on_epoch(epochs_done)` and
    `on_ship(path)` report each finished epoch and the shipped file."""
    from .train import Trainer

    resume = job.check()
    kept = job.keep_epochs | {job.ship_epoch}

    def write_shipped() -> None:
        assert job.ship_to is not None
        ship(job.snapshot(job.ship_epoch), job.ship_to)
        if on_ship is not None:
            on_ship(job.ship_to)

    def after_epoch(epochs_done: int) -> None:
        if epochs_done in kept:  # the epoch to ship (and others asked for), beside the last
            with atomic_path(job.snapshot(epochs_done)) as tmp:
                shutil.copyfile(job.run_dir / CHECKPOINT, tmp)
        if epochs_done == job.ship_epoch and job.ship_to is not None:
            write_shipped()
        if on_epoch is not None:
            on_epoch(epochs_done)

    trainer = Trainer(job.cfg, job.run_dir, progress=progress)
    front = trainer.run(resume=resume, after_epoch=after_epoch)
    trainer.write_front(front)
    if job.ship_to is not None and not job.ship_to.is_file():  # resumed after the ship epoch
        if not job.snapshot(job.ship_epoch).is_file():
            raise PRPError(
                f"{job.snapshot(job.ship_epoch)} is missing, so epoch {job.ship_epoch} cannot be "
                f"shipped; start a new pretraining with another --out"
            )
        write_shipped()
    return trainer.epoch
