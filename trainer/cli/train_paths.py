"""`prp-train-paths`: train the paths a search chose at full size, jointly, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from prp.runtime.cli_errors import one_line_errors
from rich.table import Table

from ..errors import PRPError
from .console import make_console

train_paths_app = typer.Typer(
    add_completion=False,
    help="Train the paths a search chose at the space's real size, weights shared, resumably.",
)


def _overrides(channels: int | None, cells_per_stage: int | None) -> dict[str, Any]:
    given = {"channels": channels, "cells_per_stage": cells_per_stage}
    return {k: v for k, v in given.items() if v is not None}


@train_paths_app.command()
def train_paths(
    run: Path = typer.Argument(None, help="The search run whose front chose the paths."),
    out: Path = typer.Option(None, help="Run folder (default: <RUN>-paths beside RUN)."),
    top: int = typer.Option(5, help="Train the paths prp-export --top TOP would take."),
    paths: list[str] = typer.Option(
        None, "--paths", help="Train these paths (encoded as in front.json 'key') instead."
    ),
    dataset: str = typer.Option(
        "default",
        "--dataset",
        "--data-dir",
        help="A class-folder tree or its .tar(.gz), a cifar-10-batches-py folder, or default "
        "(the embedded 5,000-image subset: a smoke test, not a real training set).",
    ),
    epochs: int = typer.Option(
        None,
        help="Passes over the train split (default 15). With --resume, a larger number trains "
        "the run on with a warm restart: a new cosine cycle from --lr down to zero.",
    ),
    batch_size: int = typer.Option(128, help="Images per step (every path sees each batch)."),
    lr: float = typer.Option(
        None,
        help="Peak learning rate (SGD, Nesterov; default 0.1), or a warm restart's (default: "
        "the run's peak).",
    ),
    distill: float = typer.Option(
        0.5, help="Share of a smaller path's loss distilled from the largest path (0: labels only)."
    ),
    val_fraction: float = typer.Option(
        0.1, help="Share of the train images held out to measure the paths (never trained on)."
    ),
    limit_per_class: int = typer.Option(None, help="Use at most this many images per class."),
    skip_bad_images: bool = typer.Option(
        False,
        "--skip-bad-images",
        help="Train without the images that do not decode (by default they are refused, all "
        "named); they are listed in OUT/bad_images.json.",
    ),
    channels: int = typer.Option(None, help="Override the space's real width (NB201: 16)."),
    cells_per_stage: int = typer.Option(None, help="Override the real depth (NB201: 5)."),
    seed: int = typer.Option(0, help="Random seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out."),
    checkpoint_minutes: float = typer.Option(10.0, help="Minutes between checkpoints."),
    portable_copy: Path = typer.Option(
        None,
        "--portable-copy",
        help="Write --out's checkpoint without optimizer state to this file (half the size, to "
        "carry the run to another machine; resuming from it restarts the momentum) and exit.",
    ),
    compute_device: str = typer.Option(
        None, help="cpu or cuda (default: cuda where available); may change on --resume."
    ),
    precision: str = typer.Option(
        None,
        help="fp32 (default) or bf16: bfloat16 autocast with channels-last activations, 2-3x "
        "faster on CPUs with AVX-512 BF16 and on GPUs; weights, loss and measurements stay "
        "float32. May change on --resume (logged).",
    ),
) -> None:
    """Train RUN's chosen paths at full size on a full data set; prp-export then exports them.

    \f
    Over 80 lines only for its typer options; the work is `path_training.start`/`resume`,
    `train` and `finish`, and this function's progress bar."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .. import path_training as pt
    from ..datasets.bad_images import RECORD

    console = make_console()
    with one_line_errors(console, PRPError):
        if run is None and not resume and portable_copy is None:
            raise PRPError("name the search run whose paths to train: prp-train-paths RUN")
        target = out or Path(f"{run}-paths")
        if portable_copy is not None:
            size = pt.portable_checkpoint(target, portable_copy)
            console.print(f"wrote {portable_copy} ({size / 2**20:.1f} MiB)")
            return
        if resume:
            session = pt.resume(target, compute_device, precision)
            if epochs is not None and epochs != session.recipe.epochs:
                pt.extend(session, epochs, lr)
        else:
            epochs, lr = epochs or 15, 0.1 if lr is None else lr
            if not 0 <= distill <= 1:
                raise PRPError(f"--distill must be between 0 and 1, got {distill}")
            if epochs < 1 or batch_size < 1 or lr <= 0:
                raise PRPError("--epochs and --batch-size must be at least 1 and --lr above 0")
            session = pt.start(
                run,
                target,
                top=top,
                keys=paths or (),
                space_overrides=_overrides(channels, cells_per_stage),
                dataset=dataset,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                distill=distill,
                val_fraction=val_fraction,
                limit_per_class=limit_per_class,
                skip_bad_images=skip_bad_images,
                seed=seed,
                precision=pt.check_precision(precision or "fp32"),
                device=compute_device,
            )
        data = session.data
        console.print(
            f"{target}: {len(session.paths)} paths of {session.recipe.search_run} at "
            f"{session.supernet.space.describe()['size']} size, "
            f"{len(data.train)} train / {len(data.val)} held-out images; "
            f"epoch {session.progress.epoch + 1} of {session.recipe.epochs}"
        )
        if data.left_out:
            console.print(
                f"left out {len(data.left_out)} image{'s' if len(data.left_out) > 1 else ''} "
                f"that cannot be decoded (listed in {target / RECORD})"
            )
        steps = len(data.train) // session.recipe.batch_size
        total = session.recipe.epochs * steps
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("training", total=total)
            bar.update(task, completed=session.progress.epoch * steps + session.progress.step)

            def say(record: dict[str, Any]) -> None:
                if record["event"] == "step":
                    loss = ", ".join(f"{v:.2f}" for v in record["loss"])
                    bar.update(
                        task,
                        completed=record["epoch"] * steps + record["step"],
                        description=f"epoch {record['epoch'] + 1} loss {loss}",
                    )
                else:
                    acc = ", ".join(f"{a:.1f}" for a in record["val_accuracy"])
                    bar.console.print(f"epoch {record['epoch'] + 1}: held-out accuracy {acc} %")

            pt.train(session, say, checkpoint_seconds=60 * checkpoint_minutes)
        table = Table(title=f"{target}: trained paths (held-out accuracy)")
        for col in ("path", "accuracy %", "cost", "Pareto rank"):
            table.add_column(col)
        for m in pt.finish(session)["paths"]:
            rank = str(m["pareto_rank"])
            table.add_row(m["key"], f"{m['accuracy']:.2f}", f"{m['cost']:.4g}", rank)
        console.print(table)
        console.print(f"export it: prp-export {target} --top {len(session.paths)}")


if __name__ == "__main__":
    train_paths_app()
