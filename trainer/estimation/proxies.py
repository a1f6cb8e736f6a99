"""Zero-cost proxies: training-free scores of a path on freshly initialised weights.

Free baselines that every ranking figure is shown beside (DESIGN: estimates must earn their
keep). Each proxy scores an architecture from its untrained weights; higher = predicted more
accurate. They run on a freshly initialised `Supernet` of the run's space (`fresh_supernet`):
`supernet.set_path(path)` makes the network run only that path's ops, so a path's score is that
of the standalone architecture, whatever else the supernet holds.

- synflow (Tanaka et al., "Pruning neural networks without any data by iteratively conserving
  synaptic flow", NeurIPS 2020; as a NAS proxy: Abdelfattah et al., "Zero-Cost Proxies for
  Lightweight NAS", ICLR 2021): every parameter replaced by its absolute value, BatchNorm
  bypassed (identity, as zero-cost-nas's `synflow` measure with bn=False and AZ-NAS's
  `remove_bn` do), double precision, one all-ones input; R = sum of the output and the score is
  sum |theta * dR/dtheta| over the weights of the Conv2d and Linear layers (the layers
  zero-cost-nas's `get_layer_metric_array` visits).
- naswot (Mellor et al., "Neural Architecture Search without Training", ICML 2021; the
  second-version score NASLib's `nwot` measure computes): one batch of real images through the
  network in training mode (BatchNorm on batch statistics, as NASLib's bn=True copy of a freshly
  built net); each ReLU's input gives a binary code per image (unit > 0); K[i, j] sums, over
  every ReLU, the number of units where the codes of images i and j agree (units minus Hamming
  distance); the score is log|det K|, -inf where K is singular (e.g. every code equal). ReLUs
  are picked as the reference implementations pick them, every module whose class name holds
  "ReLU": here that includes the ReLU-Conv-BN ops, whose input codes thus count twice, as they
  do in those implementations on NB201 (picking nn.ReLU alone ranks 300 NB201 architectures
  with tau-b 0.985 against this choice).

Weights come from the space's own initialisation (PyTorch defaults, as zero-cost-nas scores
NB201 with `init_w_type none`) under a fixed seed, so a score depends on the seed, the
architecture and, for naswot, the images; never on training or on a benchmark table.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .. import distributed
from ..datasets import DataSplits, ImageSet, StreamSplits, to_tensor
from ..profiling import trace_ops
from ..spaces import Path as ArchPath
from ..spaces import SearchSpace
from ..supernet import Supernet
from .estimators import FREE_COMBINATION

Progress = Callable[[int, int], None]  # (done, total)


def fresh_supernet(space: SearchSpace, seed: int) -> Supernet:
    """A freshly initialised supernet of `space`, the same for the same seed (the global torch
    generator is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Supernet(space)


# ------------------------------------------------------------------------------------ synflow
def _without_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _without_batchnorm(child)


def linearised(net: nn.Module) -> nn.Module:
    """A copy of `net` as synflow scores it: BatchNorm bypassed, every parameter and buffer
    replaced by its absolute value, in double precision. Build it once, score many paths."""
    out = copy.deepcopy(net)
    _without_batchnorm(out)
    out.double()
    with torch.no_grad():
        for t in out.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    return out


def synflow_score(net: nn.Module, input_shape: Sequence[int]) -> float:
    """Synaptic flow of `net` (made by `linearised`): sum over Conv2d/Linear weights of
    |theta * dR/dtheta|, R = sum of the output for one all-ones input of `input_shape` (C, H, W).
    Weights the forward pass does not reach (other paths' ops) have no gradient and add nothing."""
    weights = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not weights:
        raise ValueError("synflow needs a network with Conv2d or Linear layers")
    device = weights[0].device
    x = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    with torch.enable_grad():
        r = net(x).sum()
        grads = torch.autograd.grad(r, weights, allow_unused=True)
    with torch.no_grad():
        total = sum(
            ((w * g).abs().sum() for w, g in zip(weights, grads, strict=True) if g is not None),
            torch.zeros((), dtype=torch.float64, device=device),
        )
    return float(total)


def synflow(
    supernet: Supernet,
    paths: Sequence[Sequence[int]],
    images: Tensor,
    progress: Progress | None = None,
) -> np.ndarray:
    """synflow of each path on `supernet`'s weights (only the images' shape is used)."""
    net = linearised(supernet)
    assert isinstance(net, Supernet)
    out = np.empty(len(paths))
    for i, path in enumerate(paths):
        net.set_path(path)
        out[i] = synflow_score(net.net, tuple(images.shape[1:]))
        if progress:
            progress(i + 1, len(paths))
    return out


# ------------------------------------------------------------------------------------- naswot
def hamming_kernel(codes: Sequence[Tensor]) -> np.ndarray:
    """K[i, j] = sum over the code tensors of the number of units where images i and j have
    the same binary code; each tensor is [images, ...] of 0/1 (or bool)."""
    k: Tensor | None = None
    for c in codes:
        x = c.flatten(1).to(torch.float64)
        s = x.sum(dim=1)
        # agreements = x x^T + (1 - x)(1 - x)^T = 2 x x^T - s_i - s_j + units: one product
        layer = 2.0 * (x @ x.T) - s[:, None] - s[None, :] + x.shape[1]
        k = layer if k is None else k + layer
    if k is None:
        raise ValueError("hamming_kernel got no codes")
    return k.cpu().numpy()


def log_abs_det(k: np.ndarray) -> float:
    """log|det K|; -inf for a singular K."""
    sign, logdet = np.linalg.slogdet(k)
    return float(logdet) if sign != 0 else float("-inf")


def _clone(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.clone()


def naswot_score(net: nn.Module, images: Tensor) -> float:
    """NASWOT of `net` on `images`: log|det K| of the Hamming-agreement kernel of the ReLU
    input codes. Runs in training mode without changing the BatchNorm running statistics."""
    codes: list[Tensor] = []

    def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        codes.append(args[0] > 0)

    relus = [m for m in net.modules() if "ReLU" in type(m).__name__]
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    # Training-mode passes count batches in place: keep a copy of each count to put back.
    saved = [(bn.momentum, _clone(bn.num_batches_tracked)) for bn in bns]
    was_training = net.training
    handles = [m.register_forward_hook(hook) for m in relus]
    try:
        for bn in bns:
            bn.momentum = 0.0  # normalise by batch statistics, keep the running ones as they were
        net.train()
        with torch.no_grad():
            net(images)
    finally:
        for h in handles:
            h.remove()
        for bn, (momentum, count) in zip(bns, saved, strict=True):
            bn.momentum = momentum
            if bn.num_batches_tracked is not None and count is not None:
                bn.num_batches_tracked.copy_(count)
        net.train(was_training)
    if not codes:
        return float("-inf")
    return log_abs_det(hamming_kernel(codes))


def naswot(
    supernet: Supernet,
    paths: Sequence[Sequence[int]],
    images: Tensor,
    progress: Progress | None = None,
) -> np.ndarray:
    """NASWOT of each path on `supernet`'s weights and the batch `images`."""
    out = np.empty(len(paths))
    for i, path in enumerate(paths):
        supernet.set_path(path)
        out[i] = naswot_score(supernet.net, images)
        if progress:
            progress(i + 1, len(paths))
    return out


ProxyFn = Callable[[Supernet, Sequence[Sequence[int]], Tensor, Progress | None], np.ndarray]

# name -> scores of many paths: (supernet, paths, images, progress) -> one score per path
PROXIES: dict[str, ProxyFn] = {"synflow": synflow, "naswot": naswot}

# The free baselines: the op-traced size of the path and the proxies above.
FREE_BASELINES = ("params", "macs", *PROXIES)
NASWOT_IMAGES = 64


def proxy_images(data: DataSplits | StreamSplits, seed: int, n: int = NASWOT_IMAGES) -> Tensor:
    """`n` training images drawn with `seed` (sorted by position, no augmentation), normalised
    as training normalises them: the batch naswot scores every path on."""
    if len(data.train) < 2:
        raise ValueError(f"naswot needs at least 2 training images, the data has {len(data.train)}")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(data.train), min(n, len(data.train)), replace=False))
    train = data.train
    images = train.images[rows] if isinstance(train, ImageSet) else train.decode(rows)
    return to_tensor(images, data.mean, data.std)


def free_scores(
    space: SearchSpace,
    paths: Sequence[Sequence[int]],
    images: Tensor,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every free baseline of `paths`: params and MACs from the op tracing of `space`'s
    network, and each registered proxy on a fresh supernet initialised with `seed`, on `device`.
    Returns the scores (name -> one per path, higher = predicted more accurate) and the seconds
    each took per path. Reads no benchmark table."""
    t = time.perf_counter()
    net = fresh_supernet(space, seed)
    trace = trace_ops(net)
    scores = {"params": trace.params().many(paths), "macs": trace.macs().many(paths)}
    seconds = {"params+macs": (time.perf_counter() - t) / max(len(paths), 1)}
    net.to(device)
    x = images.to(device)
    for name, proxy in PROXIES.items():
        t = time.perf_counter()

        def report(done: int, total: int, name: str = name) -> None:
            if progress:
                progress(name, done, total)

        scores[name] = proxy(net, paths, x, report)
        seconds[name] = (time.perf_counter() - t) / max(len(paths), 1)
    return scores, seconds


class FreeProxies:
    """The free proxies of `FREE_COMBINATION` of each path scored so far (`scores`: path ->
    name -> score), computed once per path on a fresh supernet seeded with `seed`. Not
    checkpointed: the same seed and data give the same scores, whatever the batch of paths
    they were scored in."""

    def __init__(
        self,
        space: SearchSpace,
        data: DataSplits | StreamSplits,
        seed: int,
        device: torch.device,
        progress: Callable[[str, int, int], None],  # (task, done, total)
    ) -> None:
        self.space, self.data, self.seed, self.device = space, data, seed, device
        self.progress = progress
        self.scores: dict[ArchPath, dict[str, float]] = {}
        self._images: Tensor | None = None
        self._seconds, self._paths = 0.0, 0  # since `take_record` last read them

    def of(self, paths: list[ArchPath]) -> dict[str, np.ndarray]:
        """Name -> one score per path of `paths`, computing only those of paths not scored
        before, in one batch."""
        missing = list(dict.fromkeys(p for p in paths if p not in self.scores))
        if missing:
            start = time.perf_counter()
            if self._images is None:
                self._images = proxy_images(self.data, self.seed)
            # Sharded over the ranks like the estimates: a path's scores do not depend on the
            # other paths scored with it.
            mine = [missing[i] for i in distributed.shard_indices(len(missing))]
            scores: dict[str, np.ndarray] = {m: np.empty(0) for m in FREE_COMBINATION}
            if mine:
                scores, _ = free_scores(
                    self.space,
                    mine,
                    self._images,
                    self.seed,
                    self.device,
                    lambda name, done, total: self.progress(
                        f"free proxies: {name} of {total} paths", done, total
                    ),
                )
            if distributed.world_size() > 1:
                scores = {
                    m: distributed.gather_shards(scores[m], len(missing)) for m in FREE_COMBINATION
                }
            for j, p in enumerate(missing):
                self.scores[p] = {m: float(scores[m][j]) for m in FREE_COMBINATION}
            self._seconds += time.perf_counter() - start
            self._paths += len(missing)
        return {m: np.array([self.scores[p][m] for p in paths]) for m in FREE_COMBINATION}

    def take_record(self) -> dict[str, Any]:
        """Seconds spent scoring (and paths scored) since the last call, for the log."""
        out = {"proxy_seconds": self._seconds, "proxy_paths": self._paths}
        self._seconds, self._paths = 0.0, 0
        return out
