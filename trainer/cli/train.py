"""`prp-train`: train a supernet and write its front to a run directory."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from prp.runtime.cli_errors import one_line_errors
from rich.table import Table

from ..errors import PRPError
from .console import make_console, progress_bar

if TYPE_CHECKING:
    from rich.console import Console

    from ..config import TrainConfig
    from ..train import Trainer


def new_run_dir(root: Path, name: str) -> Path:
    """runs/<name>, or runs/<name>-2, -3, ... if taken, so running twice never collides."""
    candidate, k = root / name, 1
    while candidate.exists():
        k += 1
        candidate = root / f"{name}-{k}"
    return candidate


def latest_run_dir(root: Path, name: str) -> Path:
    """The newest of runs/<name>, runs/<name>-2, ... (for --resume without --out)."""
    latest, k = root / name, 2
    while (root / f"{name}-{k}").exists():
        latest, k = root / f"{name}-{k}", k + 1
    return latest


train_app = typer.Typer(
    add_completion=False, help="Pareto rank-preserving supernet training and search."
)


@train_app.command()
def train(
    objective: str = typer.Option(
        None, help="Cost objective: energy (mJ, the default) or latency (ms)."
    ),
    space: str = typer.Option(None, help="Search space: nb201, fbnet, proxyless, darts."),
    size: str = typer.Option(None, "--size", help="Space size: real or tiny."),
    cost_model: str = typer.Option(None, help="Cost model (see prp-info); default per space."),
    device: str = typer.Option(None, "--device", help="Device the cost refers to, e.g. edgegpu."),
    cost_lut: str = typer.Option(None, help="JSON/CSV table for --cost-model lut."),
    dataset: str = typer.Option(
        None,
        "--dataset",
        "--data-dir",
        help="default (embedded CIFAR-10 subset), a cifar-10-batches-py folder, a folder of "
        "class sub-folders, or a .tar.gz of one.",
    ),
    limit_per_class: int = typer.Option(None, help="Use at most this many images per class."),
    skip_bad_images: bool = typer.Option(
        False,
        "--skip-bad-images",
        help="Train without the images that fail the data set's check (by default they are "
        "refused, all named); they are listed in RUN/bad_images.json.",
    ),
    image_size: int = typer.Option(
        None,
        help="Image side in pixels (default: the space's, 32 for nb201/fbnet and tiny sizes, "
        "224 for real proxyless); images of another size are resized and center-cropped.",
    ),
    preset_name: str = typer.Option(None, "--preset", help="default (the default), tiny or paper."),
    method: str = typer.Option(
        None, help="prp (default); baselines: fair (stage 1 only) or uniform (single path)."
    ),
    epochs_fair: int = typer.Option(None, help="N_f: strict-fairness epochs."),
    epochs_pareto: int = typer.Option(None, help="N_p: Pareto-rank epochs."),
    samples: int = typer.Option(
        None, help="n: paths sampled per Pareto epoch and kept at pruning."
    ),
    top_n: int = typer.Option(None, help="N of eq. 2: top paths whose op counts are compared."),
    prune_after: int = typer.Option(None, help="Prune after this many Pareto epochs (0: never)."),
    w_paths: str = typer.Option(
        None,
        "--w-paths",
        help="Paths that train W in stage 2: argmax (the paper's per-slot argmax of alpha), "
        "front (alpha's predicted top-N) or fair (strict-fair groups).",
    ),
    complexity_lr: float = typer.Option(
        None,
        help="Complexity-aware lr (after DYNAS's CaLR): the most complex paths' lr decays "
        "only to this fraction of its start, the least complex to 0; 0 (default) is off.",
    ),
    batch_size: int = typer.Option(None, help="Training batch size."),
    lr: float = typer.Option(None, help="Learning rate of W (SGD)."),
    truth: str = typer.Option(None, help="NB201 CSV: target ranks from its accuracies."),
    estimator: str = typer.Option(
        None,
        "--estimator",
        help="What paths are ranked by: weights (shared-weight accuracy estimates), "
        "weights+free (their log-rank aggregate with params, synflow and NASWOT, mapped onto "
        "the same accuracy values), weights+all-free (the same with every free proxy prp-eval "
        "reports) or weights+alpha+all-free (that and alpha's path scores; --method prp; the "
        "default preset's when it starts from the shipped supernet).",
    ),
    out: Path = typer.Option(
        None, help="Run directory (default: a new runs/<space>-<objective>[-k])."
    ),
    resume: bool = typer.Option(
        False,
        help="Continue the run in --out from its last checkpoint, with the run's config.json. "
        "Other options (and --preset) must be left out or match it, except --compute-device, "
        "which may change on resume.",
    ),
    seed: int = typer.Option(None, help="Random seed."),
    compute_device: str = typer.Option(None, help="cpu or cuda."),
    init: str = typer.Option(
        None,
        help="Where W starts: nb201-c8n2-fair (the shipped strict-fair supernet of the default "
        "space, the default preset's start; nb201-c8-fair fits 1 cell per stage), scratch "
        "(random weights, then 8 strict-fair epochs), or a run folder (or its checkpoint.pt) "
        "of an unpruned supernet of the same space, e.g. a --method fair run.",
    ),
    top: int = typer.Option(5, help="How many paths to label along the front."),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="Show third-party warnings and logs here (by default they go to RUN/train.log).",
    ),
) -> None:
    """Train a supernet with Pareto rank preservation and write its front to the run directory.
    (Long only in its signature, where typer declares each option.)"""
    from prp.runtime.quiet import third_party_log

    from .. import distributed
    from ..train import Trainer

    console = make_console()
    # Under torchrun every rank runs this command; rank 0 prints and writes, the others only
    # report their own errors, naming their rank.
    world = distributed.env_world_size()
    main = os.environ.get("RANK", "0") == "0"
    if world > 1:
        # torchrun stops the other ranks with SIGTERM when one fails: end through Python, so a
        # file being written is removed rather than left half-written beside the run.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    prefix = f"rank {os.environ.get('RANK')} of {world}: " if world > 1 else ""
    with one_line_errors(console, PRPError, prefix=prefix):
        overrides: dict[str, Any] = {
            "method": method,
            "objective": objective,
            "space": space,
            "space_size": size,
            "cost_model": cost_model,
            "cost_device": device,
            "cost_lut": cost_lut,
            "dataset": dataset,
            "limit_per_class": limit_per_class,
            "skip_bad_images": skip_bad_images or None,
            "epochs_fair": epochs_fair,
            "epochs_pareto": epochs_pareto,
            "samples": samples,
            "top_n": top_n,
            "prune_after": prune_after,
            "pareto_w_paths": w_paths,
            "complexity_lr": complexity_lr,
            "batch_size": batch_size,
            "lr": lr,
            "truth_table": truth,
            "estimator": estimator,
            "seed": seed,
            "compute_device": compute_device,
            "init": init,
        }
        cfg, run_dir = run_config(preset_name, overrides, image_size, out, resume)
        train_log = None if verbose or not main else run_dir / "train.log"
        with third_party_log(train_log, "prp-train"), progress_bar(console) as progress:
            trainer = Trainer(cfg, run_dir, progress=progress if main else None)
            if main:
                console.print(
                    f"run {run_dir}: {trainer.space.name} ({cfg.space_size}), {cfg.objective} "
                    f"by {trainer.cost_model.source} on {trainer.cost.device}; "
                    f"{len(trainer.data.train)} train / {len(trainer.data.val)} val images"
                    + (f"; {world} processes" if world > 1 else "")
                )
                print_left_out(console, trainer, run_dir)
            front = trainer.run(resume=resume)
        distributed.cleanup()
        if not main:
            return
        data = trainer.write_front(front, top=top)
        table = Table(
            title=f"Selected paths ({len(front)} evaluated, "
            f"{sum(m.pareto_rank == 1 for m in front)} on the front)"
        )
        for col in ("pick", "accuracy %", f"{cfg.objective} ({trainer.cost.unit})", "path"):
            table.add_column(col)
        for s in data["selected"]:
            table.add_row(s["label"], f"{s['accuracy']:.2f}", f"{s['cost']:.4g}", s["key"])
        console.print(table)
        console.print(f"wrote {run_dir}/front.json, front.png, alpha.png")
        skipped = trainer.bad_images.skipped_in_training
        if skipped:
            from ..datasets.bad_images import RECORD

            names = {e["name"] for e in skipped}
            console.print(
                f"skipped {len(names)} image{'s' if len(names) > 1 else ''} that did not decode "
                f"while training ({len(skipped)} times; listed in {run_dir / RECORD})"
            )


def print_left_out(console: Console, trainer: Trainer, run_dir: Path) -> None:
    """One line naming how many images the run trains without, and where they are listed."""
    from ..datasets.bad_images import RECORD

    left_out = len(trainer.data.left_out) + len(trainer.tensors.left_out)
    if left_out:
        console.print(
            f"left out {left_out} image{'s' if left_out > 1 else ''} that cannot be decoded "
            f"(listed in {run_dir / RECORD})"
        )


def check_new_run_folder(run_dir: Path) -> None:
    """A new run goes into a missing or empty folder only: a user's files are never written
    over (a run of this project is continued with --resume)."""
    from ..errors import PRPError
    from ..runs import CONFIG

    if not run_dir.exists() and not run_dir.is_symlink():
        return
    if not run_dir.is_dir():
        raise PRPError(f"--out {run_dir} is a file, not a folder; give a new folder")
    if any(run_dir.iterdir()):
        what = (
            "holds a run; add --resume to continue it"
            if (run_dir / CONFIG).is_file()
            else "is not empty and holds no run of prp-train; move its files away"
        )
        raise PRPError(f"--out {run_dir} {what}, or give a new folder (nothing was written)")


def run_config(
    preset_name: str | None,
    overrides: dict[str, Any],
    image_size: int | None,
    out: Path | None,
    resume: bool,
) -> tuple[TrainConfig, Path]:
    """The config and run folder of a `prp-train` call: the preset with the options given, in
    a new runs/<space>-<objective>[-k] unless `out` names one; with `resume`, the run's saved
    config (an option that would change it is refused rather than silently dropped; with
    --preset, every key of the preset counts)."""
    from ..config import preset
    from ..runs import read_config, resumed_config

    cfg = preset(preset_name or "default", **overrides).with_image_size(image_size)
    name = f"{cfg.space}-{cfg.objective}"
    run_dir = out or (latest_run_dir if resume else new_run_dir)(Path("runs"), name)
    if not resume:
        check_new_run_folder(run_dir)
        return cfg, run_dir
    given = cfg.to_json() if preset_name else {k: v for k, v in overrides.items() if v is not None}
    if image_size is not None and not preset_name:
        saved = read_config(run_dir)
        given["space_overrides"] = saved.with_image_size(image_size).space_overrides
    return resumed_config(run_dir, given, overrides), run_dir
