"""Shared-weight estimates of NB201 architectures: which ones a run may be evaluated on (never
fed its training, still live after pruning), where the estimates run, the estimates themselves,
PRP's alpha estimator beside them, and the true front's hypervolume."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
from scipy import stats

from ..config import TrainConfig
from ..datasets import DataSplits
from ..device_data import Tensors, torch_device
from ..errors import PRPError
from ..estimation.shared_weights import estimate_accuracy
from ..export import LoadedRun
from ..nb201_table import NB201Table
from ..pareto import hypervolume, kendall_tau_b, pareto_ranks
from ..pruning import MAXIMIZE


def true_front_hypervolume(
    table: NB201Table, acc_column: str, cost_column: str, ref: np.ndarray
) -> float:
    pts = np.column_stack([table.column(acc_column), table.column(cost_column)])
    front = pts[pareto_ranks(pts, MAXIMIZE) == 1]
    return hypervolume(front, ref, MAXIMIZE)


def unseen_live_pool(run: LoadedRun) -> list[tuple[int, ...]]:
    """Every architecture of the run's pruned space that did not feed its training signal."""
    space = run.supernet.space
    live = [run.supernet.live_ops(s) for s in range(space.num_slots)]
    return [tuple(p) for p in itertools.product(*live) if tuple(p) not in run.fed_training]


def evaluation_device(trained_on: str, asked: str | None) -> torch.device:
    """Where estimates run: `asked` (cpu or cuda), else the device the run trained on when this
    machine has it, else the CPU (a run trained on a GPU evaluates anywhere)."""
    if asked is not None:
        if asked not in ("cpu", "cuda"):
            raise PRPError(f"unknown compute device {asked!r}: use cpu or cuda")
        return torch_device(asked)
    if trained_on == "cuda" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def estimate_paths(
    run: LoadedRun,
    paths: Sequence[tuple[int, ...]],
    eval_images: int | None = None,
    bn_batches: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    compute_device: str | None = None,
    data: DataSplits | None = None,
) -> tuple[np.ndarray, TrainConfig, int]:
    """Shared-weight accuracy estimates (%) of `paths` with the run's supernet, on the run's own
    data split; returns them, the settings used and the number of held-out images each read.

    `eval_images` and `bn_batches` default to the run's settings. Every path's BN recalibration
    draws its batches from a generator seeded with `seed`, so the estimates do not depend on
    which other paths are estimated or in what order. The estimates run on `compute_device`
    (default: the run's own where available, else cpu); the supernet stays there afterwards.
    `data` is the run's data set when the caller has loaded it already.
    """
    cfg = replace(
        run.cfg,
        eval_images=eval_images or run.cfg.eval_images,
        bn_batches=bn_batches or run.cfg.bn_batches,
    )
    device = evaluation_device(run.cfg.compute_device, compute_device)
    run.supernet.to(device)
    if data is None:
        data = cfg.load_data(run.supernet.space.input_shape[-1])
    tensors = Tensors.of(data, device)
    est = np.empty(len(paths))
    for i, path in enumerate(paths):
        g = torch.Generator().manual_seed(seed)
        est[i] = estimate_accuracy(run.supernet, path, tensors, cfg, g)
        if progress:
            progress(i + 1, len(paths))
    return est, cfg, min(cfg.eval_images, len(data.val.labels))


def alpha_estimators(
    scores: np.ndarray, est_rank: np.ndarray, true_rank: np.ndarray
) -> dict[str, float]:
    """tau-b of PRP's alpha estimator (higher P_s = better Pareto rank) and of its combination
    with the shared-weight ranks (mean of the two normalised rankings)."""
    by_alpha = stats.rankdata(-scores)
    combined = by_alpha / len(scores) + stats.rankdata(est_rank) / len(est_rank)
    return {
        "alpha": kendall_tau_b(by_alpha, true_rank),
        "combined": kendall_tau_b(combined, true_rank),
    }
