"""A run's random streams: each epoch draws from generators seeded by (seed, epoch, stream), so a
run resumed from the checkpoint of epoch k draws what the uninterrupted run drew from epoch k + 1,
and no stream's use shifts another's."""

from __future__ import annotations

import numpy as np
import torch

# One stream per use within an epoch.
BATCHES = 0  # order and augmentation of the training batches
W_PATHS = 1  # the paths each W step trains
ESTIMATES = 2  # the BatchNorm recalibration batches of each accuracy estimate
ALPHA_PATHS = 3  # the paths each alpha update ranks, and those of the final front
TARGET_POOL = 4  # the target pool, drawn once after stage 1


def epoch_rng(seed: int, epoch: int, stream: int) -> tuple[np.random.Generator, torch.Generator]:
    """A numpy and a torch generator for `stream` of `epoch` of the run seeded with `seed`."""
    key = [seed, epoch, stream]
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))
    return np.random.default_rng(key), g
