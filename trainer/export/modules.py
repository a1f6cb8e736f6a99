"""Each exported path as a plain network (`lowering.path_module`) with its BatchNorm statistics
recalibrated for it, and its accuracy on held-out images."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from ..datasets import batches
from ..lowering import path_module
from ..spaces import Path as ArchPath
from .run import LoadedRun


def calibrated_path_module(
    run: LoadedRun, path: ArchPath, train_x: Tensor, train_y: Tensor
) -> nn.Module:
    """`path_module` after recalibrating BN for the path on training batches (seeded)."""
    g = torch.Generator().manual_seed(run.cfg.seed)
    calib = itertools.islice(
        (
            x
            for x, _ in batches(
                train_x, train_y, run.cfg.batch_size, shuffle=True, augment=False, generator=g
            )
        ),
        max(run.cfg.bn_batches, 16),
    )
    run.supernet.recalibrate_bn(path, calib)
    return path_module(run.supernet, path)


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    correct = 0
    for i in range(0, len(y), 256):
        correct += int((model(x[i : i + 256]).argmax(dim=1) == y[i : i + 256]).sum())
    return 100.0 * correct / max(len(y), 1)
