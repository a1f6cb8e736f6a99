"""AZ-NAS's zero-cost scores of a path on freshly initialised weights.

AZ-NAS (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search",
CVPR 2024) ranks an architecture by four scores, each computed from one forward pass and one
backward pass of a Kaiming-initialised network in training mode (BatchNorm on batch statistics)
on a batch of Gaussian noise, and combines their ranks (`stats.log_rank_aggregate`):

- expressivity: for the stem's output and the output of every cell and reduction block, the
  entropy of the eigenvalues (normalised to sum 1) of the channel covariance over all images and
  positions; summed over those features. A feature using few directions of its channel space
  scores low.
- progressivity: the smallest increase of that entropy from one feature to the next; a network
  where some block loses expressivity scores low.
- trainability: for each block, a random +-1 gradient at its output pulled back to its input
  (the input's positions folded into channels where the block halves the resolution); sigma,
  the largest singular value of the (input channel x output channel) mean outer product of the
  two gradients, scores 2 - sigma - 1/sigma (0 at sigma = 1, a block that neither amplifies nor
  damps gradients); mean over the blocks. A block whose input gradient equals its output
  gradient (an identity cell) scores -inf, as in the authors' code.
- complexity: the FLOPs of the architecture (here the MACs of the space's op tracing, the
  `macs` free baseline; a monotone stand-in, since only ranks are combined).

The formulas follow the authors' NB201 code (`cvlab-yonsei/AZ-NAS`,
`NB201/ZeroShotProxy/compute_az_nas_score.py`: `kaiming_normal_` fan-in init of every Conv2d
and Linear, BatchNorm weight 1 and bias 0, a float32 batch of `torch.randn`, eigenvalues by
`eigvalsh`, 1e-8 inside the log and 1e-6 beside sigma). What differs here: every path is scored
on the same initialised supernet (the authors draw new weights for each architecture), each
module's weights, the noise batch and the +-1 gradients drawn from generators seeded with `seed`
(and the module's name), so a path's scores do not depend on which other paths are scored, in
what order, or which other ops the supernet still holds.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..supernet import Supernet

AZ_NAS_SCORES = ("expressivity", "progressivity", "trainability")
# The members of the AZ-NAS aggregate: its three scores and complexity (the `macs` baseline).
AZ_NAS_MEMBERS = (*AZ_NAS_SCORES, "macs")
AZ_NAS_BATCH = 64  # the authors' NB201 batch size (weight-sharing.config, batch_size 64)


def _module_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def kaiming_init_(net: nn.Module, seed: int) -> None:
    """AZ-NAS's initialisation, in place: Kaiming-normal weights (fan-in, ReLU gain: std
    sqrt(2 / fan_in)) and zero biases for every Conv2d and Linear, weight 1 and bias 0 for every
    affine BatchNorm. Each module's weights are drawn from a generator seeded with `seed` and the
    module's name, so they do not depend on which other modules the network holds (a pruned
    supernet initialises the ops it keeps as the whole one does)."""
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                std = math.sqrt(2.0 / m.weight[0].numel())
                g = torch.Generator(device=m.weight.device).manual_seed(_module_seed(seed, name))
                m.weight.normal_(0.0, std, generator=g)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()


def block_features(net: nn.Module, x: Tensor) -> list[Tensor]:
    """The stem's output, then the output of each block of `net.cells` (cells and reduction
    blocks), for the batch `x`: the features AZ-NAS scores. Needs a network with `stem` and
    `cells` (the NB201 skeleton)."""
    stem, cells = getattr(net, "stem", None), getattr(net, "cells", None)
    if not isinstance(stem, nn.Module) or not isinstance(cells, nn.Sequential):
        raise ValueError(
            f"AZ-NAS scores the blocks of a stem-and-cells network (nb201); "
            f"{type(net).__name__} has no `stem` and `cells`"
        )
    features = [stem(x)]
    for block in cells:
        features.append(block(features[-1]))
    return features


def expressivity_of(feature: Tensor) -> float:
    """Entropy of the normalised eigenvalues of the channel covariance of `feature`
    [images, channels, h, w] over its images and positions; NaN where the feature is constant."""
    c = feature.shape[1]
    f = feature.detach().permute(0, 2, 3, 1).reshape(-1, c)
    f = f - f.mean(dim=0, keepdim=True)
    eig = torch.linalg.eigvalsh(f.T @ f / f.shape[0])
    p = eig / eig.sum()
    return float((-p * torch.log(p + 1e-8)).sum())


def trainability_of(f_in: Tensor, f_out: Tensor, generator: torch.Generator) -> float:
    """2 - sigma - 1/sigma for the block from `f_in` to `f_out` (module docstring); -inf where
    the block passes the random output gradient through unchanged."""
    g_out = torch.randint(0, 2, f_out.shape, generator=generator).to(f_out) * 2.0 - 1.0
    (g_in,) = torch.autograd.grad(f_out, f_in, g_out, allow_unused=True)
    if g_in is None:  # the output does not depend on the input at all
        g_in = torch.zeros_like(f_in)
    if g_in.shape == g_out.shape and bool(torch.equal(g_in, g_out)):
        return float("-inf")
    if g_in.shape[2:] != g_out.shape[2:]:
        g_in = nn.functional.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
    b, c_out, h, w = g_out.shape
    a = g_in.permute(0, 2, 3, 1).reshape(b * h * w, -1)
    m = a.T @ g_out.permute(0, 2, 3, 1).reshape(b * h * w, c_out) / (b * h * w)
    sigma = float(torch.linalg.svdvals(m).max())
    return 2.0 - sigma - 1.0 / (sigma + 1e-6)


def az_nas_score(net: nn.Module, x: Tensor, seed: int) -> dict[str, float]:
    """Expressivity, progressivity and trainability of `net` (in training mode, as initialised
    by `kaiming_init_`) on the batch `x`; the +-1 gradients drawn with `seed`. NaN becomes -inf
    (ranked last), as in the authors' code."""
    with torch.enable_grad():
        features = block_features(net, x)
        entropy = np.array([expressivity_of(f) for f in features])
        generator = torch.Generator().manual_seed(seed)
        train = [
            trainability_of(features[i - 1], features[i], generator)
            for i in reversed(range(1, len(features)))
        ]
    scores = {
        "expressivity": float(np.sum(entropy)),
        "progressivity": float(np.min(np.diff(entropy))) if len(entropy) > 1 else float("nan"),
        "trainability": float(np.mean(train)),
    }
    return {k: float("-inf") if np.isnan(v) else v for k, v in scores.items()}


def noise_batch(input_shape: Sequence[int], seed: int, n: int = AZ_NAS_BATCH) -> Tensor:
    """The Gaussian batch AZ-NAS scores every path on: `n` images of `input_shape` (C, H, W)."""
    return torch.randn((n, *input_shape), generator=torch.Generator().manual_seed(seed))


def az_nas(
    supernet: Supernet,
    paths: Sequence[Sequence[int]],
    seed: int,
    batch: int = AZ_NAS_BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """AZ-NAS's three scores (`AZ_NAS_SCORES` -> one per path) of each path, on a copy of
    `supernet` re-initialised as AZ-NAS initialises (`kaiming_init_` with `seed`),
    in training mode, on `noise_batch(seed, batch)`. The supernet itself is not changed."""
    net = copy.deepcopy(supernet)
    kaiming_init_(net, seed)
    net.train()
    device = next(net.parameters()).device
    x = noise_batch(net.space.input_shape, seed, batch).to(device)
    out = {k: np.empty(len(paths)) for k in AZ_NAS_SCORES}
    for i, path in enumerate(paths):
        net.set_path(path)
        scores = az_nas_score(net.net, x, seed)
        for k in AZ_NAS_SCORES:
            out[k][i] = scores[k]
        if progress:
            progress(i + 1, len(paths))
    return out
