"""Zero-cost proxies: training-free scores of a path on freshly initialised weights, the
registry of them (`PROXIES`) and the batch they read (`proxy_batch`).

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

- AZ-NAS's expressivity, progressivity and trainability (`az_nas`, on a Kaiming-initialised
  copy and a Gaussian batch, as its authors score NB201), and ZiCo and jacov on real labelled
  images (`gradient_proxies`): registered in `PROXIES` beside synflow and NASWOT, so prp-eval and
  the bench report each of them alone and in the combinations of `estimators.FREE_COMBINATIONS`.

Weights come from the space's own initialisation (PyTorch defaults, as zero-cost-nas scores
NB201 with `init_w_type none`) under a fixed seed, so a score depends on the seed, the
architecture and, for naswot, the images; never on training or on a benchmark table.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from .az_nas import AZ_NAS_SCORES, az_nas
from .estimators import FREE_COMBINATION
from .gradient_proxies import jacov, zico

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


@dataclass(frozen=True)
class ProxyBatch:
    """The labelled real training images the free proxies score every path on: NASWOT and
    jacov read the first `first_n`, ZiCo compares the gradients of those and the rest
    (`zico_batches`). AZ-NAS reads none of them (a seeded Gaussian batch)."""

    images: Tensor  # [n, C, H, W], normalised as training normalises them
    labels: Tensor  # [n] int64
    first_n: int  # the first batch (NASWOT_IMAGES, or all there are)

    def first(self) -> Tensor:
        return self.images[: self.first_n]

    def zico_batches(self) -> list[tuple[Tensor, Tensor]]:
        """The first batch and the rest; where there is no rest, the two halves of the first."""
        cut = self.first_n if len(self.images) > self.first_n else self.first_n // 2
        return [(self.images[:cut], self.labels[:cut]), (self.images[cut:], self.labels[cut:])]

    def to(self, device: torch.device | str) -> ProxyBatch:
        return ProxyBatch(self.images.to(device), self.labels.to(device), self.first_n)


ProxyFn = Callable[
    [Supernet, Sequence[Sequence[int]], ProxyBatch, int, Progress | None], dict[str, np.ndarray]
]


@dataclass(frozen=True)
class Proxy:
    """A registered zero-cost proxy: the free baselines it scores (`names`) and how, on a
    fresh supernet: (supernet, paths, batch, seed, progress) -> name -> one score per path."""

    names: tuple[str, ...]
    compute: ProxyFn
    doc: str


# Every zero-cost proxy prp-eval and the bench report, by name; each is scored on freshly
# initialised weights and none reads a benchmark table.
PROXIES: dict[str, Proxy] = {
    "synflow": Proxy(
        ("synflow",),
        lambda net, paths, batch, seed, p: {"synflow": synflow(net, paths, batch.images, p)},
        "synaptic flow (Tanaka et al., NeurIPS 2020)",
    ),
    "naswot": Proxy(
        ("naswot",),
        lambda net, paths, batch, seed, p: {"naswot": naswot(net, paths, batch.first(), p)},
        "NASWOT (Mellor et al., ICML 2021)",
    ),
    "az-nas": Proxy(
        AZ_NAS_SCORES,
        lambda net, paths, batch, seed, p: az_nas(net, paths, seed, progress=p),
        "AZ-NAS's expressivity, progressivity and trainability (Lee & Ham, CVPR 2024)",
    ),
    "zico": Proxy(
        ("zico",),
        lambda net, paths, batch, seed, p: {"zico": zico(net, paths, batch.zico_batches(), p)},
        "ZiCo (Li et al., ICLR 2023)",
    ),
    "jacov": Proxy(
        ("jacov",),
        lambda net, paths, batch, seed, p: {"jacov": jacov(net, paths, batch.first(), p)},
        "jacov (Mellor et al. 2020; zero-cost-nas's jacob_cov)",
    ),
}

# The free baselines: the op-traced size of the path and every proxy's scores.
FREE_BASELINES = ("params", "macs", *(n for proxy in PROXIES.values() for n in proxy.names))
NASWOT_IMAGES = 64  # the batch of NASWOT, jacov and each of ZiCo's two (the published sizes)


def proxy_batch(data: DataSplits | StreamSplits, seed: int, n: int = NASWOT_IMAGES) -> ProxyBatch:
    """Up to 2 `n` training images with their labels (no augmentation), normalised as
    training normalises them: the first `n` drawn with `seed` (sorted by position), as NASWOT
    has always read them, then up to `n` more drawn from the rest (ZiCo's second batch)."""
    if len(data.train) < 2:
        raise ValueError(
            f"the proxies need at least 2 training images, the data has {len(data.train)}"
        )
    rng = np.random.default_rng(seed)
    total = len(data.train)
    first = np.sort(rng.choice(total, min(n, total), replace=False))
    rest = np.setdiff1d(np.arange(total), first)
    second = np.sort(rng.choice(rest, min(n, len(rest)), replace=False))
    rows = np.concatenate([first, second])
    train = data.train
    images = train.images[rows] if isinstance(train, ImageSet) else train.decode(rows)
    labels = torch.from_numpy(np.asarray(train.labels)[rows].astype(np.int64))
    return ProxyBatch(to_tensor(images, data.mean, data.std), labels, len(first))


def free_scores(
    space: SearchSpace,
    paths: Sequence[Sequence[int]],
    batch: ProxyBatch,
    seed: int,
    device: torch.device | str = "cpu",
    progress: Callable[[str, int, int], None] | None = None,
    only: Sequence[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every free baseline of `paths` (or those named in `only`, plus params and MACs): params
    and MACs from the op tracing of `space`'s network, and each registered proxy on a fresh
    supernet initialised with `seed`, on `device`. Returns the scores (name -> one per path,
    higher = predicted more accurate) and the seconds each proxy took per path. Reads no
    benchmark table."""
    t = time.perf_counter()
    net = fresh_supernet(space, seed)
    trace = trace_ops(net)
    scores = {"params": trace.params().many(paths), "macs": trace.macs().many(paths)}
    seconds = {"params+macs": (time.perf_counter() - t) / max(len(paths), 1)}
    net.to(device)
    on_device = batch.to(device)
    for name, proxy in PROXIES.items():
        if only is not None and not set(proxy.names) & set(only):
            continue
        t = time.perf_counter()

        def report(done: int, total: int, name: str = name) -> None:
            if progress:
                progress(name, done, total)

        scores |= proxy.compute(net, paths, on_device, seed, report)
        seconds[name] = (time.perf_counter() - t) / max(len(paths), 1)
    return scores, seconds


class FreeProxies:
    """The free proxies `members` (default: `FREE_COMBINATION`, those of `weights+free`) of
    each path scored so far (`scores`: path -> name -> score), computed once per path on a fresh
    supernet seeded with `seed`. Not checkpointed: the same seed and data give the same scores,
    whatever the batch of paths they were scored in."""

    def __init__(
        self,
        space: SearchSpace,
        data: DataSplits | StreamSplits,
        seed: int,
        device: torch.device,
        progress: Callable[[str, int, int], None],  # (task, done, total)
        members: Sequence[str] = FREE_COMBINATION,
    ) -> None:
        self.space, self.data, self.seed, self.device = space, data, seed, device
        self.progress, self.members = progress, tuple(members)
        self.scores: dict[ArchPath, dict[str, float]] = {}
        self._batch: ProxyBatch | None = None
        self._seconds, self._paths = 0.0, 0  # since `take_record` last read them

    def of(self, paths: list[ArchPath]) -> dict[str, np.ndarray]:
        """Name -> one score per path of `paths`, computing only those of paths not scored
        before, in one batch."""
        missing = list(dict.fromkeys(p for p in paths if p not in self.scores))
        if missing:
            start = time.perf_counter()
            if self._batch is None:
                self._batch = proxy_batch(self.data, self.seed)
            # Sharded over the ranks like the estimates: a path's scores do not depend on the
            # other paths scored with it.
            mine = [missing[i] for i in distributed.shard_indices(len(missing))]
            scores: dict[str, np.ndarray] = {m: np.empty(0) for m in self.members}
            if mine:
                scores, _ = free_scores(
                    self.space,
                    mine,
                    self._batch,
                    self.seed,
                    self.device,
                    lambda name, done, total: self.progress(
                        f"free proxies: {name} of {total} paths", done, total
                    ),
                    only=self.members,
                )
            if distributed.world_size() > 1:
                scores = {
                    m: distributed.gather_shards(scores[m], len(missing)) for m in self.members
                }
            for j, p in enumerate(missing):
                self.scores[p] = {m: float(scores[m][j]) for m in self.members}
            self._seconds += time.perf_counter() - start
            self._paths += len(missing)
        return {m: np.array([self.scores[p][m] for p in paths]) for m in self.members}

    def take_record(self) -> dict[str, Any]:
        """Seconds spent scoring (and paths scored) since the last call, for the log."""
        out = {"proxy_seconds": self._seconds, "proxy_paths": self._paths}
        self._seconds, self._paths = 0.0, 0
        return out
