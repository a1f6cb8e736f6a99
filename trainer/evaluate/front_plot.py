"""The picture of where a run's picks sit: every NB201 architecture by true cost and accuracy,
the true Pareto front, and each path the run picked (the paths `prp-export` takes), written
beside the evaluation file as RUN/eval_front.png."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..runs import atomic_path

FRONT_PLOT = "eval_front.png"


def plot_front(
    path: Path,
    accuracy: np.ndarray,
    cost: np.ndarray,
    true_rank: np.ndarray,
    picks: Sequence[dict[str, Any]],
    labels: tuple[str, str],
) -> None:
    """Scatter of all architectures (`accuracy`, `cost`, one entry per table row), the true
    front (`true_rank` 1) as a staircase and `picks` (`selected` records of `front_quality`:
    label, cost, true_accuracy, true_pareto_rank) marked and named. `labels` are the accuracy
    and cost column names for the axes.

    The accuracy axis starts a little below the least accurate pick or the 5th percentile of
    the table, whichever is lower, so the front is readable; architectures below it (the table
    holds many near-chance ones) are counted in the title rather than drawn."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picked_acc = [p["true_accuracy"] for p in picks]
    floor = min([float(np.percentile(accuracy, 5)), *picked_acc]) - 1.0
    shown = accuracy >= floor
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter(cost[shown], accuracy[shown], s=3, c="0.75", alpha=0.5, lw=0, label="NB201")
    front = np.flatnonzero(true_rank == 1)
    front = front[np.argsort(cost[front])]
    ax.step(
        cost[front],
        accuracy[front],
        where="post",
        c="k",
        lw=1.2,
        marker="o",
        ms=3,
        label=f"true front ({len(front)} architectures)",
    )
    colours = plt.get_cmap("tab10")
    for i, p in enumerate(picks):
        ax.scatter(
            p["cost"],
            p["true_accuracy"],
            s=90,
            marker="*",
            color=colours(i % 10),
            edgecolor="k",
            lw=0.5,
            zorder=5,
            label=f"{p['label']}: {p['true_accuracy']:.2f} %, true Pareto rank "
            f"{p['true_pareto_rank']}",
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"true cost ({labels[1]}, log scale)")
    ax.set_ylabel(f"true accuracy ({labels[0]}, %)")
    ax.set_ylim(floor, float(accuracy.max()) + 0.5)
    hidden = int((~shown).sum())
    ax.set_title(
        f"The run's {len(picks)} picks on the true front"
        + (f" ({hidden} architectures below {floor:.0f} % not drawn)" if hidden else ""),
        fontsize=10,
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
