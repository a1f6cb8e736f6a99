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

import hashlib
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import distributed
from .benchmarks import NB201Table
from .config import TrainConfig
from .costs import get_cost_model, price_supernet
from .datasets import (
    DataSplits,
    StreamSplits,
    batches,
    load_dataset,
    open_dataset,
    streams_by_default,
    to_tensor,
)
from .errors import PRPError
from .estimators import FREE_COMBINATION, calibrated_accuracy, combined_members
from .loader import TrainLoader, load_tensor
from .losses import alpha_loss
from .pareto import pareto_ranks
from .pretrained import resolve_init
from .profiling import PathTable
from .proxies import free_scores, proxy_images
from .pruning import MAXIMIZE, prune_by_pareto
from .runs import (
    CHECKPOINT,
    CHECKPOINT_VERSION,
    CONFIG,
    LOG,
    RunError,
    RunLog,
    atomic_path,
    one_line,
    read_checkpoint,
    read_config,
    write_json,
)
from .search import PathMetrics, build_front
from .spaces import Path as ArchPath
from .spaces import get_space
from .supernet import Supernet

# Config keys `--resume` may change: they decide where the run computes, not what it computes.
RESUME_MAY_CHANGE = frozenset({"compute_device"})


def resume_differences(saved: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """`key given != saved` for each key of `given` whose value differs from the run's saved
    config, leaving out `RESUME_MAY_CHANGE`."""

    def show(v: Any) -> str:
        return repr(v) if isinstance(v, str) else str(v)

    return [
        f"{k} {show(v)} != {show(saved.get(k))}"
        for k, v in given.items()
        if k not in RESUME_MAY_CHANGE and v != saved.get(k)
    ]


class TrainingError(PRPError):
    """Training cannot go on (a NaN loss, say); the run directory keeps its last good epoch."""


@dataclass
class Tensors:
    """What training and estimates read, normalised, on the compute device.

    In memory (`DataSplits`): the whole train and val splits; training batches are slices of
    train_x (`batches`). Streamed (`StreamSplits`): training batches come from `loader` (a
    DataLoader); train_x is a fixed pool of `bn_batches * batch_size` train images drawn by the
    seed, for BatchNorm recalibration, and val_x the first `eval_images` validation images, the
    ones an estimate reads: memory grows with those settings, not with the data set.
    """

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    loader: TrainLoader | None = None

    @classmethod
    def of(
        cls, data: DataSplits | StreamSplits, device: torch.device, cfg: TrainConfig | None = None
    ) -> Tensors:
        """`data`'s splits, normalised by its mean and std, on `device` (`cfg` is needed, and
        only read, for streamed data)."""
        if isinstance(data, DataSplits):
            return cls(
                to_tensor(data.train.images, data.mean, data.std).to(device),
                torch.tensor(data.train.labels).to(device),
                to_tensor(data.val.images, data.mean, data.std).to(device),
                torch.tensor(data.val.labels).to(device),
            )
        if cfg is None:
            raise ValueError("Tensors.of needs the TrainConfig for streamed data")
        n = len(data.train)
        pool = np.sort(
            np.random.default_rng([cfg.seed, 5]).permutation(n)[: cfg.bn_batches * cfg.batch_size]
        )
        val = np.arange(min(cfg.eval_images, len(data.val)))
        return cls(
            load_tensor(data.train, pool, data.mean, data.std).to(device),
            torch.from_numpy(data.train.labels[pool].copy()).to(device),
            load_tensor(data.val, val, data.mean, data.std).to(device),
            torch.from_numpy(data.val.labels[val].copy()).to(device),
            TrainLoader(
                data.train,
                batch_size=cfg.batch_size,
                seed=cfg.seed,
                device=device,
                mean=data.mean,
                std=data.std,
                augment=cfg.augment,
            ),
        )

    def batches_per_epoch(self, batch_size: int) -> int:
        if self.loader is not None:
            return len(self.loader)
        return math.ceil(len(self.train_y) / batch_size)


def torch_device(name: str) -> torch.device:
    """The torch device `name` (cpu or cuda), refused when it asks for a GPU this machine lacks."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PRPError("--compute-device cuda was asked for but no CUDA GPU is available")
    return distributed.local_device(device)  # under torchrun: this rank's GPU


Progress = Callable[[str, int, int], None]  # (task, done, total)


@torch.no_grad()
def estimate_accuracy(
    supernet: Supernet,
    path: ArchPath,
    tensors: Tensors,
    cfg: TrainConfig,
    generator: torch.Generator,
) -> float:
    """Top-1 % of `path` on the first `cfg.eval_images` held-out images, with the shared
    weights and BatchNorm recalibrated for the path on `cfg.bn_batches` training batches."""
    calib = itertools.islice(
        (
            x
            for x, _ in batches(
                tensors.train_x,
                tensors.train_y,
                cfg.batch_size,
                shuffle=True,
                augment=False,
                generator=generator,
            )
        ),
        cfg.bn_batches,
    )
    supernet.recalibrate_bn(path, calib)
    was_training = supernet.training
    supernet.eval()
    n = min(cfg.eval_images, len(tensors.val_y))
    correct = 0
    for i in range(0, n, 256):
        j = min(i + 256, n)
        pred = supernet(tensors.val_x[i:j], path).argmax(dim=1)
        correct += int((pred == tensors.val_y[i:j]).sum())
    supernet.train(was_training)
    return 100.0 * correct / n


class MainRankLog(RunLog):
    """The run's log, written by rank 0 alone: every rank computes the same records."""

    def append(self, record: dict[str, Any]) -> None:
        if distributed.is_main():
            super().append(record)

    def truncate_after(self, epoch: int) -> None:
        if distributed.is_main():
            super().truncate_after(epoch)


class Trainer:
    """Owns one run directory. `run()` trains from the last checkpoint to the end."""

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
        self.init_sha256 = self._load_init(cfg.init) if cfg.init != "scratch" else None
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
        # Free proxy scores of each path scored so far (estimator "weights+free"), computed
        # once per path on a fresh supernet seeded with cfg.seed. Not checkpointed: the same
        # seed and data give the same scores, whatever the batch of paths they were scored in.
        self.free: dict[ArchPath, dict[str, float]] = {}
        self._proxy_images: Tensor | None = None
        self._proxy_seconds, self._proxy_paths = 0.0, 0  # since `_proxy_record` last read them

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

    def _load_init(self, spec: str) -> str:
        """Start W (weights and BatchNorm buffers, not alpha) from a trained supernet (`spec`:
        a shipped one's name, a run folder or its checkpoint file); returns the file's sha256
        for the log. A classifier of another class count is left at its initialisation (the
        cells transfer to another data set; the classifier is learnt by this run)."""
        path = resolve_init(spec)
        state = read_checkpoint(path, self.device)  # weights-only: cannot run code
        if not bool(state["op_mask"].all()):
            raise PRPError(
                f"--init {spec}: that supernet was pruned ({int((~state['op_mask']).sum())} ops "
                f"removed); start from an unpruned one, such as a --method fair run"
            )
        own = self.supernet.state_dict()
        weights = {k: v for k, v in state["supernet"].items() if k != "alpha"}
        missing = sorted(set(own) - set(weights) - {"alpha"})
        unknown = sorted(set(weights) - set(own))
        wrong = [k for k in weights if k in own and weights[k].shape != own[k].shape]
        head = [k for k in wrong if k.split(".")[-2:-1] == ["classifier"]]
        wrong = [k for k in wrong if k not in head]
        if missing or unknown or wrong:
            what = (
                f"{own[wrong[0]].shape} wanted for {wrong[0]}, got {weights[wrong[0]].shape}"
                if wrong
                else f"keys missing {missing[:3]}, unknown {unknown[:3]}"
            )
            raise PRPError(
                f"--init {spec}: its supernet does not fit this run's space ({what}); train it "
                f"with the same --space, --size and channels, or use --init scratch"
            )
        for k in head:
            del weights[k]
        self.supernet.load_state_dict(weights, strict=False)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    # ------------------------------------------------------------- checkpoint
    def save_checkpoint(self) -> None:
        """The last completed epoch, as tensors and plain Python data only: the checkpoint is
        read back with torch's weights-only unpickler (`read_checkpoint`), which refuses
        anything else (numpy values, RNG states, objects) so that loading cannot run code.
        Rank 0 alone writes it: every rank holds the same state (`_sync_state`)."""
        if not distributed.is_main():
            return
        state = {
            "version": CHECKPOINT_VERSION,
            "epoch": int(self.epoch),
            "op_mask": self.supernet.op_mask.cpu(),
            "supernet": self.supernet.state_dict(),
            "opt_w": self.opt_w.state_dict(),
            "opt_a": self.opt_a.state_dict(),
            "evaluated": [[[int(i) for i in p], float(a)] for p, a in self.evaluated.items()],
            "targets": [[[int(i) for i in p], float(a)] for p, a in self.targets.items()],
        }
        with atomic_path(self.run_dir / CHECKPOINT) as tmp:
            torch.save(state, tmp)

    def load_checkpoint(self) -> bool:
        """Resume from the run directory's checkpoint; False if there is none."""
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            return False
        state = read_checkpoint(path, self.device)
        try:
            mask = state["op_mask"]
            if tuple(mask.shape) != tuple(self.supernet.op_mask.shape):
                raise ValueError(
                    f"op_mask is {tuple(mask.shape)}, the supernet's "
                    f"{tuple(self.supernet.op_mask.shape)}"
                )
            epoch = int(state["epoch"])
            if not 0 <= epoch <= self.total_epochs:
                raise ValueError(f"epoch {epoch} is outside 0..{self.total_epochs}")
            for s in range(self.space.num_slots):
                for op in self.supernet.live_ops(s):
                    if not bool(mask[s, op]):
                        self.supernet.prune(s, op)
            self.supernet.load_state_dict(state["supernet"])
            self.opt_w = self._weight_optimizer()
            self.opt_w.load_state_dict(state["opt_w"])
            self.opt_a.load_state_dict(state["opt_a"])
            evaluated = {tuple(int(i) for i in p): float(a) for p, a in state["evaluated"]}
            targets = {tuple(int(i) for i in p): float(a) for p, a in state["targets"]}
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as e:
            raise RunError(
                f"checkpoint {path} does not fit run {self.run_dir} ({one_line(e)}); it is "
                f"damaged or from another run: restore it from a backup or train again"
            ) from None
        self.epoch, self.evaluated, self.targets = epoch, evaluated, targets
        self.cost = price_supernet(self.supernet, self.cost_model)
        self.log.truncate_after(self.epoch - 1)
        return True

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

    def shard(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float] | None:
        """This rank's part of a global batch, images rank, rank + world, ... (the split of
        DistributedSampler), and its share of the batch's images; the whole batch for one
        process. None, on every rank alike, when the batch is too small to give each rank the
        two images BatchNorm needs in training mode (a short last batch)."""
        world = distributed.world_size()
        if world == 1:
            return x, y, 1.0
        n = len(y)
        if n < 2 * world:
            return None
        mine = distributed.shard_indices(n)
        return x[mine.start :: world], y[mine.start :: world], len(mine) / n

    def _step(
        self, x: Tensor, y: Tensor, paths: list[ArchPath], epoch: int, step: int
    ) -> float | None:
        """One W update: gradients of every path in `paths` accumulated (FairNAS), one step.

        With several processes every rank runs the same paths on its shard of the batch; each
        rank's loss is weighted by its share of the images, so the sum over the ranks, made by
        one all-reduce of the flattened gradients (and the losses) per update, is the gradient
        of the whole batch's mean loss. BatchNorm keeps per-rank batch statistics, as the
        SPOS and FairNAS implementations do: SyncBatchNorm needs a GPU, and with weight sharing
        it would add one collective per BN layer per path. Returns None for a skipped step."""
        part = self.shard(x, y)
        if part is None:
            return None
        x, y, share = part
        self.opt_w.zero_grad(set_to_none=True)
        losses = []
        for path in paths:
            loss = nn.functional.cross_entropy(self.supernet(x, path), y)
            (loss if share == 1.0 else loss * share).backward()
            losses.append(loss.detach() * share)
        totals = self._all_reduce_gradients(torch.stack(losses))
        for loss in totals:  # the whole batch's losses, the same on every rank
            self._check_finite(loss, epoch, step, "the task loss")
        nn.utils.clip_grad_norm_(self.supernet.weight_parameters(), self.cfg.grad_clip)
        self.opt_w.step()
        return sum(totals.tolist()) / len(paths)  # one host sync per update, not per path

    def _all_reduce_gradients(self, losses: Tensor) -> Tensor:
        """The weight gradients and `losses` summed over the ranks in one all-reduce."""
        if distributed.world_size() == 1:
            return losses
        grads = [p.grad for p in self.supernet.weight_parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads] + [losses.to(grads[0].dtype)])
        distributed.all_reduce_sum(flat)
        k = 0
        for g in grads:
            g.copy_(flat[k : k + g.numel()].view_as(g))
            k += g.numel()
        return flat[k:]

    def _sync_state(self) -> None:
        """Rank 0's alpha and BatchNorm buffers on every rank, before a checkpoint. The weights
        are equal already (same all-reduced gradients); alpha is computed alike on every rank
        from the same gathered estimates (tested), and the broadcast keeps it so where GPU
        kernels are not deterministic; BN running statistics differ per rank (per-rank BN)."""
        if distributed.world_size() == 1:
            return
        buffers = [b for name, b in self.supernet.named_buffers() if name != "op_mask"]
        distributed.broadcast([self.supernet.alpha, *buffers])

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

    def predicted_front(self) -> list[ArchPath]:
        """alpha's predicted front: the top-N (`top_n`) live paths with a known target by P_s,
        the paths stage 2 trains with `pareto_w_paths="front"`; empty if none is known."""
        paths = self.known_targets([])
        if not paths:
            return []
        with torch.no_grad():
            scores = self.supernet.path_scores(paths).cpu().numpy()
        order = np.argsort(-scores, kind="stable")[: min(self.cfg.top_n, len(paths))]
        return [paths[int(k)] for k in order]

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
        front = self.predicted_front() if mode == "front" else []
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
            loss = self._step(x, y, paths, epoch, step)
            if loss is None:  # a last batch too small to split over the ranks
                continue
            losses.append(loss)
            images += len(y) * len(paths)
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
        """Accuracy estimates of `paths`. With several processes each rank estimates its share
        of them (`distributed.shard_indices`) and the shares are gathered onto every rank: the
        values are those one process computes, as each estimate draws its BN calibration
        batches from its own generator, whichever rank runs it."""
        mine = distributed.shard_indices(len(paths))
        local = np.empty(len(mine))
        for k, i in enumerate(mine):
            local[k] = self.estimate_accuracy(paths[i], epoch)
            self.progress(task, min(i + 1, len(paths)), len(paths))
        acc = distributed.gather_shards(local, len(paths))
        for p, a in zip(paths, acc, strict=True):
            self.evaluated[p] = float(a)
        return acc

    def free_scores(self, paths: list[ArchPath]) -> dict[str, np.ndarray]:
        """The free proxies of `FREE_COMBINATION` for `paths` (name -> one score per path),
        computing only those of paths not scored before, in one batch."""
        missing = list(dict.fromkeys(p for p in paths if p not in self.free))
        if missing:
            start = time.perf_counter()
            if self._proxy_images is None:
                self._proxy_images = proxy_images(self.data, self.cfg.seed)
            # Sharded over the ranks like the estimates: a path's scores do not depend on the
            # other paths scored with it.
            mine = [missing[i] for i in distributed.shard_indices(len(missing))]
            scores: dict[str, np.ndarray] = {m: np.empty(0) for m in FREE_COMBINATION}
            if mine:
                scores, _ = free_scores(
                    self.space,
                    mine,
                    self._proxy_images,
                    self.cfg.seed,
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
                self.free[p] = {m: float(scores[m][j]) for m in FREE_COMBINATION}
            self._proxy_seconds += time.perf_counter() - start
            self._proxy_paths += len(missing)
        return {m: np.array([self.free[p][m] for p in paths]) for m in FREE_COMBINATION}

    def _proxy_record(self) -> dict[str, Any]:
        """Seconds spent on free proxies (and paths scored) since the last call, for the log."""
        if self.cfg.estimator == "weights":
            return {}
        out = {"proxy_seconds": self._proxy_seconds, "proxy_paths": self._proxy_paths}
        self._proxy_seconds, self._proxy_paths = 0.0, 0
        return out

    def estimator_accuracy(self, paths: list[ArchPath], estimates: np.ndarray) -> np.ndarray:
        """The accuracy the run ranks `paths` by (`cfg.estimator`): the shared-weight
        `estimates` themselves ("weights"), or those values reassigned by rank of their
        log-rank aggregate with the free proxies over these paths ("weights+free",
        `estimators.calibrated_accuracy`)."""
        if self.cfg.estimator == "weights":
            return np.asarray(estimates, dtype=float)
        free = self.free_scores(paths)
        return calibrated_accuracy(estimates, combined_members(estimates, free))

    def target_accuracy(self, paths: list[ArchPath], estimates: np.ndarray) -> np.ndarray:
        """Accuracies that define the target Pareto ranks: the benchmark table's if one was
        given, else the post-stage-1 targets of the target pool, else the run's estimator over
        `paths` (`estimator_accuracy` of `estimates`)."""
        if self.truth is not None:
            return self.truth.lookup(self.space, paths, self.cfg.truth_column)
        if all(p in self.targets for p in paths):
            return np.array([self.targets[p] for p in paths])
        base = self.estimator_accuracy(paths, estimates)
        return np.array([self.targets.get(p, e) for p, e in zip(paths, base, strict=True)])

    def ensure_target_pool(self, epoch: int) -> None:
        """Estimate the target pool once, with the weights stage 1 left (DESIGN: target ranks
        come from the supernet's own estimates after strict fairness, which trains every path
        alike; later estimates favour the paths stage 2 trains and would feed back into alpha)."""
        if self.truth is not None or self.targets or not self.cfg.target_pool:
            return
        rng, _ = self._rng(epoch, 4)
        pool = self.sample_paths(rng, self.cfg.target_pool)
        acc = self.evaluate(pool, epoch, f"target pool: estimating {len(pool)} paths")
        target = self.estimator_accuracy(pool, acc)
        self.targets = {p: float(a) for p, a in zip(pool, target, strict=True)}
        self.log.append(
            {
                "event": "target_pool",
                "epoch": epoch,
                "paths": len(pool),
                "acc_mean": float(acc.mean()),
                "acc_max": float(acc.max()),
                **self._proxy_record(),
            }
        )

    def sample_targets(self, rng: np.random.Generator) -> list[ArchPath]:
        """n paths for an alpha update: from the live part of the target pool when it has at
        least two, else fresh samples of the supernet."""
        live = [p for p in self.targets if self._is_live(p)]
        if len(live) >= 2:
            take = rng.choice(len(live), min(self.cfg.samples, len(live)), replace=False)
            return [live[int(k)] for k in sorted(take)]
        return self.sample_paths(rng, self.cfg.samples)

    def known_targets(self, fresh: list[ArchPath]) -> list[ArchPath]:
        """`fresh` and every earlier live path whose target is known: the whole live target
        pool, or (with a benchmark table) every path sampled so far. Ranking them together
        gives alpha a listwise target over many paths instead of a new small list each epoch."""
        earlier = self.targets if self.targets else self.evaluated
        seen = dict.fromkeys(fresh)
        seen |= dict.fromkeys(p for p in earlier if self._is_live(p))
        return list(seen)

    # ------------------------------------------------------------------- alpha
    def update_alpha(self, epoch: int) -> dict[str, Any]:
        self.ensure_target_pool(epoch)
        rng, _ = self._rng(epoch, 3)
        paths = self.sample_targets(rng)
        est = self.evaluate(paths, epoch, f"epoch {epoch + 1}: estimating {len(paths)} paths")
        sampled = len(paths)
        if self.cfg.alpha_history:
            paths = self.known_targets(paths)
            est = np.array([self.evaluated.get(p, self.targets.get(p, 0.0)) for p in paths])
        cost = self.cost.many(paths)
        ranks = pareto_ranks(np.column_stack([self.target_accuracy(paths, est), cost]), MAXIMIZE)
        top_n = min(self.cfg.top_n, len(paths))
        rank_losses, hinge_losses = [], []
        for step in range(self.cfg.alpha_steps):
            self.opt_a.zero_grad(set_to_none=True)
            loss, l_rank, l_hinge = alpha_loss(
                self.supernet,
                paths,
                ranks,
                self.cfg.rank_temperature,
                self.cfg.hinge_weight,
                top_n,
            )
            self._check_finite(loss, epoch, step, "the alpha loss")
            loss.backward()
            self.opt_a.step()
            with torch.no_grad():  # pruned ops and padding keep alpha 0 (masked anyway)
                self.supernet.alpha.masked_fill_(~self.supernet.op_mask, 0.0)
            rank_losses.append(l_rank.item())
            hinge_losses.append(l_hinge.item())
        return {
            "rank_loss": rank_losses[-1],
            "rank_loss_first": rank_losses[0],
            "hinge_loss": hinge_losses[-1],
            "sampled": sampled,
            "ranked": len(paths),
            "acc_mean": float(est.mean()),
            "acc_max": float(est.max()),
            "front_size": int((ranks == 1).sum()),
            **self._proxy_record(),
        }

    def prune(self, epoch: int) -> dict[str, Any]:
        """Stage 3 on the paths estimated so far that are still live."""
        paths = [p for p in (self.targets or self.evaluated) if self._is_live(p)]
        est = np.array([self.evaluated[p] for p in paths])
        points = np.column_stack([self.target_accuracy(paths, est), self.cost.many(paths)])
        params_before = sum(p.numel() for p in self.supernet.weight_parameters())
        result = prune_by_pareto(self.supernet, paths, points, self.cfg.samples)
        self._rebuild_weight_optimizer()
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
        return {
            "pruned_ops": len(result.pruned),
            "freed_bytes": result.freed_bytes,
            "params_before": params_before,
            "params_after": sum(p.numel() for p in self.supernet.weight_parameters()),
            "kept_paths": len(result.kept),
        }

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
            self._sync_state()
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
