"""A training run's accuracy estimates: each path's latest shared-weight estimate, the free proxy
scores of the paths scored so far, and the run's estimator, which ranks paths by them."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import TrainConfig
from ..device_data import Tensors
from ..spaces import Path as ArchPath
from ..streams import ESTIMATES, epoch_rng
from ..supernet import Supernet
from .estimators import ALPHA, Estimator
from .proxies import FreeProxies
from .shared_weights import Progress, estimate_accuracy, estimate_sharded


class RunEstimates:
    """Estimates of the paths of `supernet` on `tensors` (`cfg`'s held-out images, BN batches
    and seed), ranked by `estimator` with `proxies` where it uses them. `evaluated` holds each
    path's latest shared-weight estimate (it is checkpointed; the proxy scores are not: the same
    seed and data give them again)."""

    def __init__(
        self,
        supernet: Supernet,
        tensors: Tensors,
        cfg: TrainConfig,
        estimator: Estimator,
        proxies: FreeProxies,
        progress: Progress,
    ) -> None:
        self.supernet, self.tensors, self.cfg = supernet, tensors, cfg
        self.estimator, self.proxies, self.progress = estimator, proxies, progress
        self.evaluated: dict[ArchPath, float] = {}

    def estimate(self, paths: list[ArchPath], epoch: int, task: str) -> np.ndarray:
        """Top-1 % of each of `paths` on the held-out split with the shared weights, BN
        recalibrated per path on batches drawn from `epoch`'s estimate stream; sharded across
        the ranks and gathered (`estimate_sharded`). Each becomes the path's latest estimate."""

        def one(path: ArchPath) -> float:
            _, g = epoch_rng(self.cfg.seed, epoch, ESTIMATES)
            return estimate_accuracy(self.supernet, path, self.tensors, self.cfg, g)

        acc = estimate_sharded(paths, one, lambda done: self.progress(task, done, len(paths)))
        for p, a in zip(paths, acc, strict=True):
            self.evaluated[p] = float(a)
        return acc

    def ranked(self, paths: list[ArchPath], estimates: np.ndarray) -> np.ndarray:
        """The accuracy the run ranks `paths` by (`Estimator.accuracy`): their shared-weight
        `estimates` themselves, or those values reassigned by rank of their log-rank aggregate
        with the free proxies (and alpha's path scores P_s, as alpha stands now) over these
        paths."""

        def members() -> dict[str, np.ndarray]:
            scores = self.proxies.of(paths) if self.estimator.uses_free else {}
            if self.estimator.uses_alpha:
                scores[ALPHA] = self.supernet.path_score_array(paths)
            return scores

        return self.estimator.accuracy(estimates, members)

    def proxy_record(self) -> dict[str, Any]:
        """Seconds spent on free proxies (and paths scored) since the last call, for the log;
        empty for an estimator without them."""
        return self.proxies.take_record() if self.estimator.uses_free else {}
