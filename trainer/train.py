"""Pareto rank-preserving supernet training (paper Algorithm 1), resumable, one epoch at a time.

Stage 1, strict fairness (FairNAS): each step trains m paths that together use every op of every
slot once, accumulating their gradients, then updates W once.
Stage 2, Pareto-rank training: each batch trains W on the highest-alpha path; each epoch samples
n paths, estimates their accuracy (shared weights, BN recalibrated), prices them, Pareto-ranks
them and updates alpha with the listwise ranking loss plus the hinge loss of eq. 2.
Stage 3, pruning: after `prune_after` Pareto epochs, ops unused by the n best paths go.
Result: the front of the pruned supernet.

Every epoch draws its randomness from generators seeded by (seed, epoch), so a run resumed from
the checkpoint of epoch k does exactly what the uninterrupted run did from epoch k + 1.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import distributed, pareto_stage
from .benchmarks import NB201Table
from .checkpoint import (
    RESUME_MAY_CHANGE,
    load_checkpoint,
    load_init,
    resume_differences,
    save_checkpoint,
)
from .config import TrainConfig
from .costs import get_cost_model, price_supernet
from .datasets import (
    DataSplits,
    StreamSplits,
    batches,
    load_dataset,
    open_dataset,
    streams_by_default,
)
from .errors import PRPError
from .estimates import FreeProxies, Progress, estimate_accuracy, estimate_sharded
from .estimators import calibrated_accuracy, combined_members
from .pareto_stage import predicted_front
from .profiling import PathTable
from .runs import CHECKPOINT, CONFIG, LOG, RunLog, read_config, write_json
from .search import PathMetrics, build_front
from .spaces import Path as ArchPath
from .spaces import get_space
from .supernet import Supernet
from .tensors import Tensors, torch_device
from .weight_step import shard, sync_state, weight_step

# Importable from here as before the stages moved to their own modules.
__all__ = [
    "RESUME_MAY_CHANGE",
    "MainRankLog",
    "Progress",
    "Tensors",
    "Trainer",
    "TrainingError",
    "estimate_accuracy",
    "resume_differences",
    "torch_device",
]


class TrainingError(PRPError):
    """Training cannot go on (a NaN loss, say); the run directory keeps its last good epoch."""


class MainRankLog(RunLog):
    """The run's log, written by rank 0 alone: every rank computes the same records."""

    def append(self, record: dict[str, Any]) -> None:
        if distributed.is_main():
            super().append(record)

    def truncate_after(self, epoch: int) -> None:
        if distributed.is_main():
            super().truncate_after(epoch)


class Trainer:
    """Owns one run directory. `run()` trains from the last checkpoint to the end.

    The loop is here; its stages live beside it: `weight_step` (one W update, the gradient
    all-reduce), `pareto_stage` (alpha update, target pool, pruning), `estimates` (sharded
    accuracy estimates, free proxies) and `checkpoint` (save, resume, --init)."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        data: DataSplits | StreamSplits | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.cfg = cfg.validate()
        self.run_dir = Path(run_dir)
        self.progress = progress or (lambda task, done, total: None)
        self.device = torch_device(cfg.compute_device)
        distributed.init(self.device)  # joins torchrun's process group; nothing for 1 process
        torch.manual_seed(cfg.seed)
        self.space = get_space(cfg.space, size=cfg.space_size, **cfg.space_overrides)
        self.supernet = Supernet(self.space).to(self.device)
        # The space decides the resolution (`--image-size` sets its input_size). Folder trees
        # and archives stream through a DataLoader; the small 32 px sources stay in memory.
        read = open_dataset if streams_by_default(cfg.dataset) else load_dataset
        self.data: DataSplits | StreamSplits = (
            data
            if data is not None
            else read(
                cfg.dataset,
                val_fraction=cfg.val_fraction,
                seed=cfg.seed,
                limit_per_class=cfg.limit_per_class,
                image_size=self.space.input_shape[-1],
            )
        )
        if self.data.num_classes != self.space.num_classes:
            self.space = get_space(
                cfg.space,
                size=cfg.space_size,
                **{**cfg.space_overrides, "num_classes": self.data.num_classes},
            )
            torch.manual_seed(cfg.seed)
            self.supernet = Supernet(self.space).to(self.device)
        self.init_sha256 = (
            load_init(self.supernet, cfg.init, self.device) if cfg.init != "scratch" else None
        )
        self.tensors = Tensors.of(self.data, self.device, cfg)
        if tuple(self.tensors.train_x.shape[1:]) != self.space.input_shape:
            raise PRPError(
                f"images are {tuple(self.tensors.train_x.shape[1:])} but search space "
                f"{self.space.name!r} expects {self.space.input_shape}; resize the data or "
                f"build the space with input_size={self.tensors.train_x.shape[-1]}"
            )
        self.cost_model = get_cost_model(
            cfg.resolved_cost_model(),
            cfg.objective,
            cfg.cost_device,
            **({"path": cfg.cost_lut} if cfg.cost_lut else {}),
        )
        self.cost: PathTable = price_supernet(self.supernet, self.cost_model)
        self.truth = NB201Table.load(cfg.truth_table) if cfg.truth_table else None
        self.opt_w = self._weight_optimizer()
        self.opt_a = torch.optim.Adam([self.supernet.alpha], lr=cfg.alpha_lr, betas=(0.5, 0.999))
        self.epoch = 0  # epochs completed
        self.log = MainRankLog(self.run_dir / LOG)
        self.evaluated: dict[ArchPath, float] = {}  # latest accuracy estimate of each path
        # Target accuracies: estimates of a pool of paths made once, right after stage 1.
        self.targets: dict[ArchPath, float] = {}
        # Free proxy scores (estimator "weights+free") of each path scored so far.
        self.proxies = FreeProxies(self.space, self.data, cfg.seed, self.device, self.progress)

    # ------------------------------------------------------------ bookkeeping
    @property
    def total_epochs(self) -> int:
        return self.cfg.epochs_fair + self.cfg.epochs_pareto

    def stage_of(self, epoch: int) -> str:
        """prp: fair then pareto; the baselines train one way throughout (fair or uniform)."""
        if self.cfg.method != "prp":
            return self.cfg.method
        return "fair" if epoch < self.cfg.epochs_fair else "pareto"

    def _weight_optimizer(self) -> torch.optim.SGD:
        return torch.optim.SGD(
            self.supernet.weight_parameters(),
            lr=self.cfg.lr,
            momentum=self.cfg.momentum,
            weight_decay=self.cfg.weight_decay,
            nesterov=True,
        )

    def _lr(self, epoch: int) -> float:
        """Cosine decay over the whole run, evaluated per epoch (no scheduler state to save)."""
        return 0.5 * self.cfg.lr * (1 + math.cos(math.pi * epoch / max(self.total_epochs, 1)))

    def _rng(self, epoch: int, stream: int) -> tuple[np.random.Generator, torch.Generator]:
        seed = [self.cfg.seed, epoch, stream]
        g = torch.Generator().manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
        return np.random.default_rng(seed), g

    # ------------------------------------------------------------- checkpoint
    def save_checkpoint(self) -> None:
        """The last completed epoch (`checkpoint.save_checkpoint`); rank 0 alone writes it."""
        save_checkpoint(self)

    def load_checkpoint(self) -> bool:
        """Resume from the run directory's checkpoint; False if there is none."""
        return load_checkpoint(self)

    # ---------------------------------------------------------------- training
    def _train_batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The epoch's training batches: order and augmentation seeded by (seed, epoch)."""
        if self.tensors.loader is not None:
            return self.tensors.loader.epoch(epoch)
        _, g = self._rng(epoch, 0)
        return batches(
            self.tensors.train_x,
            self.tensors.train_y,
            self.cfg.batch_size,
            shuffle=True,
            augment=self.cfg.augment,
            generator=g,
        )

    def _check_finite(self, loss: Tensor, epoch: int, step: int, what: str) -> None:
        if not torch.isfinite(loss):
            raise TrainingError(
                f"{what} became {loss.item()} at epoch {epoch + 1}, step {step}; the run keeps "
                f"its last checkpoint (epoch {self.epoch}). Lower --lr (now {self.cfg.lr}) "
                f"or --alpha-lr (now {self.cfg.alpha_lr}) and --resume"
            )

    shard = staticmethod(shard)  # this rank's part of a global batch (`weight_step.shard`)

    def _step(
        self,
        x: Tensor,
        y: Tensor,
        paths: list[ArchPath],
        epoch: int,
        step: int,
        share: float | None = None,
    ) -> float | None:
        """One W update: gradients of every path in `paths` accumulated (FairNAS), one step
        (`weight_step.weight_step`). `share` None: `x`, `y` are the whole global batch, and
        this rank trains on its part of it (`shard`); else they are this rank's part already
        (read so by the loader), `share` of the global batch's images. Returns None for a
        skipped step."""
        if share is None:
            part = self.shard(x, y)
            if part is None:
                return None
            x, y, share = part
        return weight_step(
            self.supernet,
            self.opt_w,
            x,
            y,
            paths,
            share,
            self.cfg.grad_clip,
            lambda loss: self._check_finite(loss, epoch, step, "the task loss"),
        )

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One epoch of stage 1 or 2 (stage 2 ends with pruning at `prune_after`)."""
        stage = self.stage_of(epoch)
        epoch_start = time.perf_counter()
        record: dict[str, Any] = {"event": "epoch", "epoch": epoch, "stage": stage}
        if stage == "pareto":
            # alpha first: the W steps below then train the path alpha now prefers (with alpha
            # still 0 after stage 1, argmax would otherwise pick op 0 of every slot).
            record |= self.update_alpha(epoch)
        record |= self.train_weights(epoch, stage)
        if stage == "pareto" and epoch + 1 == self.cfg.epochs_fair + self.cfg.prune_after:
            record |= self.prune(epoch)
        record |= {
            "epoch_seconds": time.perf_counter() - epoch_start,
            "alpha_entropy": self.alpha_entropy(),
            "ops_left": self.ops_left(),
            "alpha": self.supernet.alpha.detach().cpu().numpy().round(5),
            "op_mask": self.supernet.op_mask.cpu().numpy().astype(int),
        }
        return record

    def train_weights(self, epoch: int, stage: str) -> dict[str, Any]:
        """W steps over the training set: fair groups of m paths (stage 1, and stage 2 with
        `pareto_w_paths="fair"`), the argmax path (stage 2), one of alpha's predicted top-N
        paths (stage 2 with `pareto_w_paths="front"`) or one uniform path (baseline)."""
        rng, _ = self._rng(epoch, 1)
        for group in self.opt_w.param_groups:
            group["lr"] = self._lr(epoch)
        self.supernet.train()
        n_batches = self.tensors.batches_per_epoch(self.cfg.batch_size)
        losses, images, paths_run = [], 0, 0
        mode = stage if stage != "pareto" else self.cfg.pareto_w_paths
        front = predicted_front(self) if mode == "front" else []
        loader = self.tensors.loader
        # Under torchrun a streamed loader reads only this rank's part of each global batch.
        global_size = loader.global_size if loader is not None and loader.world_size > 1 else None
        start = time.perf_counter()
        for step, (x, y) in enumerate(self._train_batches(epoch)):
            paths = (
                self.supernet.sample_fair(rng)
                if mode == "fair"
                else [self.supernet.sample_uniform(rng)]
                if mode == "uniform"
                else [front[int(rng.integers(len(front)))]]
                if front
                else [self.supernet.argmax_path()]
            )
            if global_size is None:
                whole, loss = len(y), self._step(x, y, paths, epoch, step)
            else:
                whole = global_size(step)
                loss = self._step(x, y, paths, epoch, step, share=len(y) / whole)
            if loss is None:  # a last batch too small to split over the ranks
                continue
            losses.append(loss)
            images += whole * len(paths)
            paths_run += len(paths)
            self.progress(f"epoch {epoch + 1}/{self.total_epochs} ({stage})", step + 1, n_batches)
        seconds = time.perf_counter() - start
        return {
            **({"w_paths": [list(p) for p in front]} if front else {}),
            "lr": self._lr(epoch),
            "task_loss": float(np.mean(losses)),
            "train_seconds": seconds,
            "images_per_s": images / seconds,  # the whole batch's images, over all ranks
            "path_steps": paths_run,
            "world_size": distributed.world_size(),
        }

    # -------------------------------------------------------------- estimates
    def estimate_accuracy(self, path: ArchPath, epoch: int) -> float:
        """Top-1 % on the held-out split with the shared weights, BN recalibrated for `path`."""
        _, g = self._rng(epoch, 2)
        return estimate_accuracy(self.supernet, path, self.tensors, self.cfg, g)

    def sample_paths(self, rng: np.random.Generator, n: int) -> list[ArchPath]:
        """n distinct paths of the (possibly pruned) supernet; all of them if there are fewer."""
        live = [self.supernet.live_ops(s) for s in range(self.space.num_slots)]
        if math.prod(len(o) for o in live) <= n:
            return [tuple(p) for p in itertools.product(*live)]
        seen: dict[ArchPath, None] = {}
        while len(seen) < n:
            seen[self.supernet.sample_uniform(rng)] = None
        return list(seen)

    def evaluate(self, paths: list[ArchPath], epoch: int, task: str) -> np.ndarray:
        """Accuracy estimates of `paths`, sharded across the ranks and gathered
        (`estimates.estimate_sharded`); each also becomes the path's latest estimate."""
        acc = estimate_sharded(
            paths,
            lambda p: self.estimate_accuracy(p, epoch),
            lambda done: self.progress(task, done, len(paths)),
        )
        for p, a in zip(paths, acc, strict=True):
            self.evaluated[p] = float(a)
        return acc

    @property
    def free(self) -> dict[ArchPath, dict[str, float]]:
        """Free proxy scores of each path scored so far (`estimates.FreeProxies`)."""
        return self.proxies.scores

    def free_scores(self, paths: list[ArchPath]) -> dict[str, np.ndarray]:
        """The free proxies of `FREE_COMBINATION` for `paths` (name -> one score per path)."""
        return self.proxies.of(paths)

    def _proxy_record(self) -> dict[str, Any]:
        """Seconds spent on free proxies (and paths scored) since the last call, for the log."""
        return {} if self.cfg.estimator == "weights" else self.proxies.take_record()

    def estimator_accuracy(self, paths: list[ArchPath], estimates: np.ndarray) -> np.ndarray:
        """The accuracy the run ranks `paths` by (`cfg.estimator`): the shared-weight
        `estimates` themselves ("weights"), or those values reassigned by rank of their
        log-rank aggregate with the free proxies over these paths ("weights+free",
        `estimators.calibrated_accuracy`)."""
        if self.cfg.estimator == "weights":
            return np.asarray(estimates, dtype=float)
        free = self.proxies.of(paths)
        return calibrated_accuracy(estimates, combined_members(estimates, free))

    # ------------------------------------------------------- alpha and pruning
    def update_alpha(self, epoch: int) -> dict[str, Any]:
        """Stage 2's alpha update of this epoch (`pareto_stage.update_alpha`)."""
        return pareto_stage.update_alpha(self, epoch)

    def prune(self, epoch: int) -> dict[str, Any]:
        """Stage 3 on the paths estimated so far that are still live (`pareto_stage.prune`)."""
        return pareto_stage.prune(self, epoch)

    def _is_live(self, path: ArchPath) -> bool:
        return self.supernet.is_live(path)

    def _rebuild_weight_optimizer(self) -> None:
        """A new optimizer over the surviving weights, carrying their momentum over."""
        old = self.opt_w
        self.opt_w = self._weight_optimizer()
        for p in self.opt_w.param_groups[0]["params"]:
            if p in old.state:
                self.opt_w.state[p] = old.state[p]

    def alpha_entropy(self) -> float:
        """Mean over slots of the entropy of softmax(alpha) over live ops (nats)."""
        probs = torch.softmax(self.supernet.masked_alpha().detach(), dim=1)
        ent = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1)
        return float(ent.mean())

    def ops_left(self) -> int:
        return int(self.supernet.op_mask.sum())

    # ---------------------------------------------------------------------- run
    def write_front(self, front: list[PathMetrics], top: int = 5) -> dict[str, Any]:
        """`front.json`, `front.png` and `alpha.png` of this run, priced as it trained."""
        from .report import write_front

        return write_front(
            self.run_dir,
            self.space,
            front,
            objective=self.cfg.objective,
            unit=self.cost.unit,
            device=self.cost.device,
            cost_source=self.cost_model.source,
            top=top,
            estimator=self.cfg.estimator,
        )

    def run(
        self, resume: bool = False, after_epoch: Callable[[int], None] | None = None
    ) -> list[PathMetrics]:
        """Train the remaining epochs, then search the pruned supernet; returns the front.
        `after_epoch(epochs_done)` is called once each epoch's checkpoint is written (e.g. to
        keep a snapshot of it)."""
        config_path = self.run_dir / CONFIG
        if resume:
            # Only an existing run resumes, and only with the config it was started with.
            saved = read_config(self.run_dir).to_json()
            differ = resume_differences(saved, self.cfg.to_json())
            if differ:
                raise PRPError(
                    f"--resume: {config_path} differs from the options given now "
                    f"({', '.join(differ)}); resume with the same options, or start a new run "
                    f"with another --out"
                )
            if not self.load_checkpoint():  # stopped before its first epoch ended: start over
                self.log.truncate_after(-1)
        elif (self.run_dir / CHECKPOINT).exists():
            raise PRPError(
                f"{self.run_dir} already holds a run; pass --resume to continue it or choose "
                f"another --out"
            )
        elif distributed.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json(config_path, self.cfg.to_json())
            self.log.append(
                {
                    "event": "start",
                    "epoch": -1,
                    "config": self.cfg.to_json(),
                    "space": self.space.describe(),
                    "cost_model": self.cost_model.source,
                    "cost_unit": self.cost.unit,
                    "cost_device": self.cost.device,
                    **({"init_sha256": self.init_sha256} if self.init_sha256 else {}),
                    "world_size": distributed.world_size(),
                }
            )
        distributed.barrier()  # every rank set up (a rank that failed to stops the others here)
        while self.epoch < self.total_epochs:
            record = self.train_epoch(self.epoch)
            self.epoch += 1
            sync_state(self.supernet)
            self.save_checkpoint()
            self.log.append(record)
            if after_epoch is not None:
                after_epoch(self.epoch)
        return self.final_front()

    def final_front(self) -> list[PathMetrics]:
        epoch = self.total_epochs  # its own random stream, after the last training epoch
        rng, _ = self._rng(epoch, 3)
        paths = self.sample_paths(rng, self.cfg.final_samples)
        acc = self.evaluate(paths, epoch, f"final front: estimating {len(paths)} paths")
        ranked = self.estimator_accuracy(paths, acc)
        proxies = self._proxy_record()
        if proxies:
            self.log.append(
                {"event": "final_front", "epoch": epoch, "paths": len(paths), **proxies}
            )
        return build_front(self.space, paths, ranked, self.cost.many(paths), weights_accuracy=acc)
