"""Write a run's result: `front.json`, `front.png` and `alpha.png` (the paper's figure 7)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .estimation.estimators import WEIGHTS_MEANING, get_estimator
from .pruning import reference_point
from .runs import FRONT, RunLog, atomic_path, write_json
from .search import PathMetrics, chance_accuracy, front_hypervolume, select_along_front
from .spaces import SearchSpace


def write_front(
    run_dir: Path,
    space: SearchSpace,
    front: Sequence[PathMetrics],
    *,
    objective: str,
    unit: str,
    device: str,
    cost_source: str,
    top: int = 5,
    estimator: str = "weights",
) -> dict[str, Any]:
    pts = np.array([[m.accuracy, m.cost] for m in front])
    ref = reference_point(pts)
    selected = select_along_front(front, top, chance_accuracy(space.num_classes))
    data = {
        "space": space.name,
        "space_config": space.describe(),
        "objective": objective,
        "cost_unit": unit,
        "cost_device": device,
        "cost_source": cost_source,
        "estimator": estimator,
        "accuracy": get_estimator(estimator).meaning,
        "weights_accuracy": WEIGHTS_MEANING,
        "reference_point": {"accuracy": float(ref[0]), "cost": float(ref[1])},
        "hypervolume": front_hypervolume(front, ref),
        "selected": [{"label": label, **m.to_json()} for label, m in selected],
        "paths": [m.to_json() for m in front],
    }
    write_json(run_dir / FRONT, data)
    plot_front(run_dir / "front.png", front, selected, objective, unit, device)
    plot_alpha(run_dir / "alpha.png", RunLog(run_dir / "log.jsonl").records(), space)
    return data


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_front(
    path: Path,
    front: Sequence[PathMetrics],
    selected: Sequence[tuple[str, PathMetrics]],
    objective: str,
    unit: str,
    device: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    cost = np.array([m.cost for m in front])
    acc = np.array([m.accuracy for m in front])
    on = np.array([m.pareto_rank == 1 for m in front])
    ax.scatter(cost[~on], acc[~on], s=14, c="0.7", label="evaluated paths")
    order = np.argsort(cost[on])
    ax.plot(
        cost[on][order],
        acc[on][order],
        "o-",
        c="tab:blue",
        ms=5,
        drawstyle="steps-post",
        label="Pareto front (rank 1)",
    )
    labelled = [(label, m) for label, m in selected if label != "hv"]
    for k, (label, m) in enumerate(labelled):
        # Picks often sit close together on a short front: stagger the labels downwards, each
        # with a thin leader line to its point, so none is printed over another.
        ax.annotate(
            label,
            (m.cost, m.accuracy),
            xytext=(10, -14 - 12 * k),
            textcoords="offset points",
            fontsize=9,
            color="tab:red",
            arrowprops={"arrowstyle": "-", "color": "tab:red", "lw": 0.6},
        )
        ax.scatter([m.cost], [m.accuracy], s=60, facecolors="none", edgecolors="tab:red")
    ax.set_xlabel(f"{objective} ({unit}, {device})")
    ax.set_ylabel("estimated accuracy (%)")
    ax.set_title("Pareto front of the pruned supernet")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def plot_alpha(path: Path, records: Sequence[dict[str, Any]], space: SearchSpace) -> None:
    """alpha of every op of every slot over the epochs, one panel per slot (paper figure 7)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r for r in records if r.get("event") == "epoch" and "alpha" in r]
    if not epochs:
        return
    alpha = np.array([r["alpha"] for r in epochs], dtype=float)  # [epochs, slots, width]
    mask = np.array([r.get("op_mask", np.ones_like(r["alpha"])) for r in epochs], dtype=bool)
    alpha[~mask] = np.nan  # a pruned op's line ends where it was pruned
    x = [r["epoch"] + 1 for r in epochs]
    n = space.num_slots
    cols = min(n, 4 if n > 6 else 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, sharex=True
    )
    for s, slot in enumerate(space.slots):
        ax = axes[s // cols][s % cols]
        for j, op in enumerate(slot.ops):
            ax.plot(x, alpha[:, s, j], label=op, lw=1.2)
        ax.set_title(slot.name, fontsize=8)
        ax.tick_params(labelsize=7)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=7)
    fig.suptitle("alpha per slot over epochs (0 during strict fairness)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    _save(fig, path)
