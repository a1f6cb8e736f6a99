"""Pareto rank-preserving supernet training (paper Algorithm 1), resumable, one epoch at a time.

Stage 1, strict fairness (FairNAS): each step trains m paths that together use every op of every
slot once, accumulating their gradients, then updates W once.
Stage 2, Pareto-rank training: each batch trains W on the highest-alpha path; each epoch samples
n paths, estimates their accuracy (shared weights, BN recalibrated), prices them, Pareto-ranks
them and updates alpha with the listwise ranking loss plus the hinge loss of eq. 2.
Stage 3, pruning: after `prune_after` Pareto epochs, ops unused by the n best paths go.
Result: the front of the pruned supernet.

Every epoch draws its randomness from generators seeded by (seed, epoch, stream) (`streams`), so
a run resumed from the checkpoint of epoch k does exactly what the uninterrupted run did from
epoch k + 1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import distributed
from .checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .costs import price_supernet
from .datasets import DataSplits, StreamSplits
from .datasets.bad_images import TrainingRecord
from .device_data import Tensors, torch_device
from .errors import PRPError
from .estimation.estimators import get_estimator
from .estimation.proxies import FreeProxies
from .estimation.run_estimates import RunEstimates
from .estimation.shared_weights import Progress, estimate_accuracy
from .nb201_table import NB201Table
from .pareto import pareto_ranks
from .pareto_stage import (
    fit_alpha,
    known_targets,
    predicted_front,
    prune,
    sample_paths,
    sample_targets,
    target_accuracy,
)
from .pretrained import load_init
from .profiling import PathTable
from .pruning import MAXIMIZE
from .runs import CONFIG, LOG, RunLog, resumed_config, write_json
from .search import PathMetrics, build_front
from .spaces import Path as ArchPath
from .spaces import get_space
from .streams import ALPHA_PATHS, BATCHES, TARGET_POOL, W_PATHS, epoch_rng
from .supernet import Supernet
from .weight_step import (
    ComplexityLR,
    shard,
    step_paths,
    sync_state,
    weight_optimizer,
    weight_step,
)

__all__ = [
    "MainRankLog",
    "Progress",
    "Tensors",
    "Trainer",
    "TrainingError",
    "estimate_accuracy",
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

    The loop and the state it changes are here; the stages work on explicit values beside
    it: `weight_step` (one W update, the gradient all-reduce), `pareto_stage` (target
    accuracies, the alpha-fitting loop, pruning), `estimation.run_estimates` (the run's
    accuracy estimates and free proxies), `checkpoint` (save, resume), `streams` (the seeded
    random streams), `datasets.bad_images` (the images it trains without) and `pretrained`
    (--init)."""

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
        # The space decides the resolution (`--image-size` sets its input_size).
        self.data: DataSplits | StreamSplits = (
            data if data is not None else cfg.open_data(self.space.input_shape[-1])
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
        self.cost_model = cfg.build_cost_model()
        self.cost: PathTable = price_supernet(self.supernet, self.cost_model)
        self.truth = NB201Table.load(cfg.truth_table) if cfg.truth_table else None
        self.opt_w = weight_optimizer(self.supernet, cfg.lr, cfg.momentum, cfg.weight_decay)
        self.complexity_lr = (
            ComplexityLR.of(self.supernet, cfg.complexity_lr) if cfg.complexity_lr else None
        )
        self.opt_a = torch.optim.Adam([self.supernet.alpha], lr=cfg.alpha_lr, betas=(0.5, 0.999))
        self.epoch = 0  # epochs completed
        self.log = MainRankLog(self.run_dir / LOG)
        self.bad_images = TrainingRecord(
            self.run_dir,
            [*self.data.left_out, *self.tensors.left_out],
            writes=distributed.is_main(),
        )
        # Target accuracies: estimates of a pool of paths made once, right after stage 1.
        self.targets: dict[ArchPath, float] = {}
        estimator = get_estimator(cfg.estimator)
        self.estimates = RunEstimates(
            self.supernet,
            self.tensors,
            cfg,
            estimator,
            FreeProxies(
                self.space, self.data, cfg.seed, self.device, self.progress, estimator.free_members
            ),
            self.progress,
        )

    # ------------------------------------------------------------ bookkeeping
    @property
    def total_epochs(self) -> int:
        return self.cfg.epochs_fair + self.cfg.epochs_pareto

    def stage_of(self, epoch: int) -> str:
        """prp: fair then pareto; the baselines train one way throughout (fair or uniform)."""
        if self.cfg.method != "prp":
            return self.cfg.method
        return "fair" if epoch < self.cfg.epochs_fair else "pareto"

    def _lr(self, epoch: int) -> float:
        """Cosine decay over the whole run, evaluated per epoch (no scheduler state to save)."""
        return self.cfg.lr * self._decay(epoch)

    def _decay(self, epoch: int) -> float:
        """The cosine factor of `_lr`, 1 at the first epoch, above 0 at the last."""
        return 0.5 * (1 + math.cos(math.pi * epoch / max(self.total_epochs, 1)))

    # ------------------------------------------------------------- checkpoint
    def load_checkpoint(self) -> bool:
        """Resume from the run directory's checkpoint; False if there is none."""
        cfg = self.cfg
        restored = load_checkpoint(
            self.run_dir / CHECKPOINT,
            self.device,
            self.supernet,
            self.opt_a,
            lambda: weight_optimizer(self.supernet, cfg.lr, cfg.momentum, cfg.weight_decay),
            self.total_epochs,
        )
        if restored is None:
            return False
        self.epoch, self.opt_w = restored.epoch, restored.opt_w
        self.estimates.evaluated, self.targets = restored.evaluated, restored.targets
        self.cost = price_supernet(self.supernet, self.cost_model)
        self.log.truncate_after(self.epoch - 1)
        return True

    # ---------------------------------------------------------------- training
    def _check_finite(self, loss: Tensor, epoch: int, step: int, what: str) -> None:
        if not torch.isfinite(loss):
            raise TrainingError(
                f"{what} became {loss.item()} at epoch {epoch + 1}, step {step}; the run keeps "
                f"its last checkpoint (epoch {self.epoch}). Lower --lr (now {self.cfg.lr}) "
                f"or --alpha-lr (now {self.cfg.alpha_lr}) and --resume"
            )

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
            part = shard(x, y)
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
            None
            if self.complexity_lr is None
            else self.complexity_lr.weights(paths, self._decay(epoch)),
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
            "alpha_entropy": self.supernet.alpha_entropy(),
            "ops_left": self.supernet.ops_left(),
            "alpha": self.supernet.alpha.detach().cpu().numpy().round(5),
            "op_mask": self.supernet.op_mask.cpu().numpy().astype(int),
        }
        return record

    def train_weights(self, epoch: int, stage: str) -> dict[str, Any]:
        """W steps over the training set: fair groups of m paths (stage 1, and stage 2 with
        `pareto_w_paths="fair"`), the argmax path (stage 2), one of alpha's predicted top-N
        paths (stage 2 with `pareto_w_paths="front"`) or one uniform path (baseline)."""
        rng, _ = epoch_rng(self.cfg.seed, epoch, W_PATHS)
        for group in self.opt_w.param_groups:
            group["lr"] = self._lr(epoch)
        self.supernet.train()
        n_batches = self.tensors.batches_per_epoch(self.cfg.batch_size)
        losses, images, paths_run = [], 0, 0
        mode = stage if stage != "pareto" else self.cfg.pareto_w_paths
        front = (
            predicted_front(self.supernet, self.targets, self.estimates.evaluated, self.cfg.top_n)
            if mode == "front"
            else []
        )
        loader = self.tensors.loader
        # Under torchrun a streamed loader reads only this rank's part of each global batch.
        global_size = loader.global_size if loader is not None and loader.world_size > 1 else None
        start = time.perf_counter()
        _, g = epoch_rng(self.cfg.seed, epoch, BATCHES)
        epoch_batches = self.tensors.epoch_batches(epoch, self.cfg.batch_size, self.cfg.augment, g)
        for step, (x, y) in enumerate(epoch_batches):
            paths = step_paths(self.supernet, mode, front, rng)
            if loader is not None and loader.world_size == 1 and len(y) < 2:
                continue  # a batch whose images all but one would not decode (`TrainLoader`)
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
        skipped = self.bad_images.add(epoch, loader.skipped if loader is not None else [])
        return {
            **({"w_paths": [list(p) for p in front]} if front else {}),
            **({"images_skipped": skipped} if skipped else {}),
            "lr": self._lr(epoch),
            "task_loss": float(np.mean(losses)),
            "train_seconds": seconds,
            "images_per_s": images / seconds,  # the whole batch's images, over all ranks
            "path_steps": paths_run,
            "world_size": distributed.world_size(),
        }

    # ------------------------------------------------------- alpha and pruning
    def _ranking_points(self, paths: list[ArchPath], estimates: np.ndarray) -> np.ndarray:
        """(target accuracy, cost) of each of `paths`, the points they are Pareto-ranked by
        (`pareto_stage.target_accuracy`)."""
        target = target_accuracy(
            paths,
            estimates,
            self.targets,
            self.truth,
            self.cfg.truth_column,
            self.estimates.ranked,
            self.space,
        )
        return np.column_stack([target, self.cost.many(paths)])

    def ensure_target_pool(self, epoch: int) -> None:
        """Estimate the target pool once, with the weights stage 1 left (DESIGN: target ranks
        come from the supernet's own estimates after strict fairness, which trains every path
        alike; later estimates favour the paths stage 2 trains and would feed back into
        alpha)."""
        if self.truth is not None or self.targets or not self.cfg.target_pool:
            return
        rng, _ = epoch_rng(self.cfg.seed, epoch, TARGET_POOL)
        pool = sample_paths(self.supernet, rng, self.cfg.target_pool)
        acc = self.estimates.estimate(pool, epoch, f"target pool: estimating {len(pool)} paths")
        target = self.estimates.ranked(pool, acc)
        self.targets = {p: float(a) for p, a in zip(pool, target, strict=True)}
        self.log.append(
            {
                "event": "target_pool",
                "epoch": epoch,
                "paths": len(pool),
                "acc_mean": float(acc.mean()),
                "acc_max": float(acc.max()),
                **self.estimates.proxy_record(),
            }
        )

    def update_alpha(self, epoch: int) -> dict[str, Any]:
        """One Pareto-rank update of alpha: estimate the sampled paths, rank them (with the
        known targets when `alpha_history`) by target accuracy and cost, and take
        `alpha_steps` steps of the ranking loss plus the hinge loss. Returns the epoch
        record's fields."""
        cfg = self.cfg
        self.ensure_target_pool(epoch)
        rng, _ = epoch_rng(cfg.seed, epoch, ALPHA_PATHS)
        paths = sample_targets(self.supernet, self.targets, rng, cfg.samples)
        task = f"epoch {epoch + 1}: estimating {len(paths)} paths"
        est = self.estimates.estimate(paths, epoch, task)
        sampled = len(paths)
        if cfg.alpha_history:
            evaluated = self.estimates.evaluated
            paths = known_targets(self.supernet, paths, self.targets, evaluated)
            est = np.array([evaluated.get(p, self.targets.get(p, 0.0)) for p in paths])
        ranks = pareto_ranks(self._ranking_points(paths, est), MAXIMIZE)
        rank_losses, hinge_losses = fit_alpha(
            self.supernet,
            self.opt_a,
            paths,
            ranks,
            cfg.alpha_steps,
            cfg.rank_temperature,
            cfg.hinge_weight,
            cfg.top_n,
            lambda loss, step: self._check_finite(loss, epoch, step, "the alpha loss"),
        )
        return {
            "rank_loss": rank_losses[-1],
            "rank_loss_first": rank_losses[0],
            "hinge_loss": hinge_losses[-1],
            "sampled": sampled,
            "ranked": len(paths),
            "acc_mean": float(est.mean()),
            "acc_max": float(est.max()),
            "front_size": int((ranks == 1).sum()),
            **self.estimates.proxy_record(),
        }

    def prune(self, epoch: int) -> dict[str, Any]:
        """Stage 3 on the paths estimated so far that are still live: ops none of the best
        paths uses go, the weight optimizer is rebuilt over what is left and the supernet
        priced again."""
        cfg, evaluated = self.cfg, self.estimates.evaluated
        paths = [p for p in (self.targets or evaluated) if self.supernet.is_live(p)]
        est = np.array([evaluated[p] for p in paths])
        result, record = prune(self.supernet, paths, self._ranking_points(paths, est), cfg.samples)
        self.opt_w = weight_optimizer(
            self.supernet, cfg.lr, cfg.momentum, cfg.weight_decay, carry_from=self.opt_w
        )
        self.cost = price_supernet(self.supernet, self.cost_model)
        for r in result.pruned:
            self.log.append(
                {
                    "event": "pruned",
                    "epoch": epoch,
                    "slot": r.slot,
                    "op": r.op,
                    "op_name": r.op_name,
                    "hvi": r.hvi,
                    "reason": r.reason,
                }
            )
        return record

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
            resumed_config(self.run_dir, self.cfg.to_json())
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
                    "images_left_out": len(self.data.left_out) + len(self.tensors.left_out),
                    "world_size": distributed.world_size(),
                }
            )
        self.bad_images.resume(self.epoch)
        distributed.barrier()  # every rank set up (a rank that failed to stops the others here)
        while self.epoch < self.total_epochs:
            record = self.train_epoch(self.epoch)
            self.epoch += 1
            sync_state(self.supernet)
            if distributed.is_main():  # every rank holds the same state: rank 0 writes it
                save_checkpoint(
                    self.run_dir / CHECKPOINT,
                    self.epoch,
                    self.supernet,
                    self.opt_w,
                    self.opt_a,
                    self.estimates.evaluated,
                    self.targets,
                )
            self.log.append(record)
            if after_epoch is not None:
                after_epoch(self.epoch)
        return self.final_front()

    def final_front(self) -> list[PathMetrics]:
        epoch = self.total_epochs  # its own random stream, after the last training epoch
        rng, _ = epoch_rng(self.cfg.seed, epoch, ALPHA_PATHS)
        paths = sample_paths(self.supernet, rng, self.cfg.final_samples)
        acc = self.estimates.estimate(paths, epoch, f"final front: estimating {len(paths)} paths")
        ranked = self.estimates.ranked(paths, acc)
        proxies = self.estimates.proxy_record()
        if proxies:
            self.log.append(
                {"event": "final_front", "epoch": epoch, "paths": len(paths), **proxies}
            )
        return build_front(self.space, paths, ranked, self.cost.many(paths), weights_accuracy=acc)
