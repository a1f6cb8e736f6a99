"""Zero-cost proxies from gradients on real images: ZiCo and jacov, on freshly initialised
weights in training mode (BatchNorm on batch statistics), higher = predicted more accurate.

- zico (Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients",
  ICLR 2023; as the AZ-NAS authors run it on NB201, `cvlab-yonsei/AZ-NAS`,
  `NB201/ZeroShotProxy/compute_zico_score.py`): the cross-entropy gradient of every Conv2d and
  Linear weight on each of two batches of labelled images; per layer, over the weight entries
  whose gradient varies between the batches, sum mean|g| / std(g) (population std), and the
  score is the sum over layers of the log of that sum. Layers the path does not reach (no
  gradient) and layers whose sum is 0 add nothing, as in that code.
- jacov (Mellor et al., "Neural Architecture Search without Training", 2020 version; as
  zero-cost-nas's `jacob_cov` measure, Abdelfattah et al., ICLR 2021): J = the gradient of the
  sum of the logits with respect to each input image, one row per image; the eigenvalues v of
  the correlation matrix of those rows score -sum(log(v + k) + 1 / (v + k)), k = 1e-5. A
  correlation matrix that is not finite (an image whose J is constant) scores -inf.

Each runs on a copy of the supernet, so the running statistics of the caller's BatchNorm
layers are left as they were.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..supernet import Supernet

JACOV_K = 1e-5


def _weighted_layers(net: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def zico_of(grads: Sequence[Sequence[Tensor | None]]) -> float:
    """ZiCo from each batch's weight gradients (`grads[batch][layer]`, None where the layer got
    no gradient); layers are matched by position."""
    total = 0.0
    for layer in zip(*grads, strict=True):
        if any(g is None for g in layer):
            continue
        g = torch.stack([t.reshape(-1).double() for t in layer if t is not None])
        std = g.std(dim=0, unbiased=False)
        keep = std != 0
        ratio = float((g.abs().mean(dim=0)[keep] / std[keep]).sum())
        if ratio != 0:
            total += float(np.log(ratio))
    return total


def zico_score(net: nn.Module, batches: Sequence[tuple[Tensor, Tensor]]) -> float:
    """ZiCo of `net` (in training mode) on labelled `batches` (images, labels), at least two."""
    if len(batches) < 2:
        raise ValueError(f"ZiCo compares gradients over at least 2 batches, got {len(batches)}")
    layers = _weighted_layers(net)
    grads: list[list[Tensor | None]] = []
    with torch.enable_grad():
        for x, y in batches:
            net.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            grads.append([None if m.weight.grad is None else m.weight.grad.clone() for m in layers])
    net.zero_grad(set_to_none=True)
    return zico_of(grads)


def jacov_of(jacobian: np.ndarray) -> float:
    """jacov from the input Jacobian rows [images, features]."""
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(jacobian)
    if not np.all(np.isfinite(corr)):
        return float("-inf")
    v = np.linalg.eigvalsh(corr)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = -np.sum(np.log(v + JACOV_K) + 1.0 / (v + JACOV_K))
    return float(score) if np.isfinite(score) else float("-inf")


def jacov_score(net: nn.Module, images: Tensor) -> float:
    """jacov of `net` (in training mode) on `images`."""
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = net(x)
        (j,) = torch.autograd.grad(y, x, torch.ones_like(y))
    return jacov_of(j.reshape(len(x), -1).double().cpu().numpy())


def _each_path(
    supernet: Supernet,
    paths: Sequence[Sequence[int]],
    score: Callable[[nn.Module], float],
    progress: Callable[[int, int], None] | None,
) -> np.ndarray:
    net = copy.deepcopy(supernet)
    net.train()
    out = np.empty(len(paths))
    for i, path in enumerate(paths):
        net.set_path(path)
        out[i] = score(net.net)
        if progress:
            progress(i + 1, len(paths))
    return out


def zico(
    supernet: Supernet,
    paths: Sequence[Sequence[int]],
    batches: Sequence[tuple[Tensor, Tensor]],
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """ZiCo of each path on `supernet`'s weights and the labelled `batches`."""
    return _each_path(supernet, paths, lambda net: zico_score(net, batches), progress)


def jacov(
    supernet: Supernet,
    paths: Sequence[Sequence[int]],
    images: Tensor,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """jacov of each path on `supernet`'s weights and the batch `images`."""
    return _each_path(supernet, paths, lambda net: jacov_score(net, images), progress)
