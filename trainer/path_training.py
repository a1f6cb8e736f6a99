"""Training the paths a search chose at full size, jointly, so their weights stay stored once.

A search runs at a proxy size (NB201 at 8 channels, 2 cells per stage, on 5,000 images) because
it must evaluate hundreds of paths in minutes. What ships is a handful of paths, and those must
be trained properly: `prp-train-paths RUN --top 5` rebuilds the run's space at its real size
(NB201: C=16, N=5, the size HW-NAS-Bench measured), keeps only the ops those paths use, and
trains them together on a full data set, the way BigNAS and Once-for-All train their subnets:

- one set of weights W; a path's ops are the same modules whichever path runs them, and each
  op's BatchNorm is shared by the paths that use that op (the exporter re-estimates the
  BatchNorm statistics per path, so each path still runs with statistics of its own);
- the sandwich rule with in-place distillation: each step trains every path on the same batch,
  the largest (most MACs) on the labels, every other on a mix of the labels and the largest
  path's own softened prediction; their gradients are summed into one update of W;
- SGD with Nesterov momentum, a linear warm-up then a cosine learning rate, standard CIFAR
  augmentation (`augment_batch`), label smoothing; `--resume --epochs N` trains a run on past
  its plan with a warm restart (`extend`: a new cosine cycle, as SGDR).

No benchmark label is read. The held-out validation split (`val_fraction` of the train images,
never trained on) measures each path after every epoch; the test split is not read here.

The output is a run folder `prp-export` reads like any other: `config.json` (the space at its
real size, the data and the cost model), `front.json` (the paths with their validation accuracy
and their cost at this size), `checkpoint.pt`; plus `paths.json` (this recipe and the paths)
and `log.jsonl`. A checkpoint is written every few minutes and at every epoch's end, holding
the step reached: `--resume` continues from it exactly (each step's batch order and augmentation
come from generators seeded by seed, epoch and step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .config import TrainConfig
from .costs import price_supernet
from .datasets import DataSplits, augment_batch, to_tensor
from .datasets.bad_images import write_record
from .errors import PRPError
from .profiling import trace_ops
from .report import write_front
from .runs import (
    CHECKPOINT,
    CHECKPOINT_VERSION,
    CONFIG,
    RunLog,
    atomic_path,
    one_line,
    read_checkpoint,
    read_json,
    write_json,
)
from .search import PathMetrics, build_front
from .spaces import Path as ArchPath
from .spaces import SearchSpace, get_space
from .supernet import Supernet

RECIPE = "paths.json"
LOG = "log.jsonl"


class PathTrainingError(PRPError):
    """Bad input to path training, or a run folder it cannot continue."""


@dataclass(frozen=True)
class PathRecipe:
    """How the chosen paths are trained; saved as `paths.json` and checked on `--resume`."""

    search_run: str
    keys: tuple[str, ...]  # the paths, in the space's encoding, most accurate (search) first
    space: str
    space_overrides: dict[str, Any] = field(default_factory=dict)
    dataset: str = "default"
    val_fraction: float = 0.1
    limit_per_class: int | None = None
    skip_bad_images: bool = False  # train without the images that do not decode
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    distill: float = 0.5  # share of a non-largest path's loss taken from the largest path
    bn_images: int = 2000  # train images that re-estimate BatchNorm per path before measuring
    seed: int = 0
    # "bf16": forward and backward under bfloat16 autocast with channels-last activations
    # (PRECISIONS); master weights, the optimizer, the loss and every measurement stay float32.
    precision: str = "fp32"
    # Warm restarts added by `extend` (`--resume --epochs N`): at each (epoch, lr) a new cosine
    # cycle begins at lr and decays to zero at the next restart or at `epochs`, as SGDR does.
    restarts: tuple[tuple[int, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["keys"] = list(self.keys)
        d["restarts"] = [list(r) for r in self.restarts]
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PathRecipe:
        restarts = tuple((int(e), float(lr)) for e, lr in data.get("restarts", ()))
        return cls(**{**data, "keys": tuple(data["keys"]), "restarts": restarts})


# Training precisions. bf16 is 2.4x faster than fp32 per step on a CPU with AVX-512 BF16
# (bench/path_precision.py: the five NB201 edge-GPU paths at real size, 1 thread), and the usual
# mixed-precision recipe on GPUs.
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise PathTrainingError(
            f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    return precision


@dataclass
class Progress:
    """Where training stands: the epoch and the step within it (the next to run)."""

    epoch: int = 0
    step: int = 0
    images: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def _generator(*parts: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence(list(parts)).generate_state(1)[0]))
    return g


def learning_rate(recipe: PathRecipe, step: int, steps_per_epoch: int) -> float:
    """Linear warm-up over `warmup_epochs`, then a cosine decay to zero at the end of the cycle:
    the last step, or the first warm restart, after which each restart's cycle decays from its
    own lr (no warm-up: the weights are trained) to zero at the next restart or the last step."""
    starts = [0, *(e for e, _ in recipe.restarts)]
    ends = [*starts[1:], recipe.epochs]
    peaks = [recipe.lr, *(lr for _, lr in recipe.restarts)]
    cycle = max(i for i, e in enumerate(starts) if e * steps_per_epoch <= step)
    step -= starts[cycle] * steps_per_epoch
    total = (ends[cycle] - starts[cycle]) * steps_per_epoch
    warm = int(recipe.warmup_epochs * steps_per_epoch) if cycle == 0 else 0
    if step < warm:
        return recipe.lr * (step + 1) / warm
    done = (step - warm) / max(1, total - warm)
    return 0.5 * peaks[cycle] * (1.0 + math.cos(math.pi * min(1.0, done)))


def compute_path(space: SearchSpace, path: ArchPath) -> ArchPath:
    """`path` with every op whose result never reaches the output replaced by `none`, where the
    space has one: the same function (the exported program drops those ops too), less work."""
    live = space.live_slots(np.asarray([path]))
    if live is None or "none" not in space.slots[0].ops:
        return path
    return tuple(op if live[0, s] else space.slots[s].op_index("none") for s, op in enumerate(path))


def distilled_loss(logits: Tensor, y: Tensor, teacher: Tensor | None, recipe: PathRecipe) -> Tensor:
    """Cross-entropy on the labels; with a `teacher` (the largest path's logits, detached), a
    `distill` share of it is the KL divergence to the teacher's prediction (in-place
    distillation, as BigNAS and Once-for-All train their children)."""
    ce = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    if teacher is None or recipe.distill == 0:
        return ce
    kd = F.kl_div(F.log_softmax(logits, 1), F.softmax(teacher, 1), reduction="batchmean")
    return (1 - recipe.distill) * ce + recipe.distill * kd


def train_step(
    supernet: Supernet,
    paths: Sequence[ArchPath],
    x: Tensor,
    y: Tensor,
    recipe: PathRecipe,
) -> list[float]:
    """One sandwich step: every path on batch (x, y), the first (the largest) as the teacher;
    gradients accumulate in W (the caller steps the optimizer). Returns each path's loss."""
    losses = []
    teacher = None
    bf16 = recipe.precision == "bf16"
    if bf16:
        x = x.contiguous(memory_format=torch.channels_last)
    for path in paths:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = supernet(x, path)
        logits = logits.float()
        loss = distilled_loss(logits, y, teacher, recipe)
        loss.backward()
        if teacher is None:
            teacher = logits.detach()
        losses.append(float(loss.detach()))
    return losses


def bn_rows(n: int, count: int, seed: int = 0) -> Tensor:
    """`count` of `n` training rows (all where fewer), drawn at random with a fixed `seed`: the
    images that re-estimate BatchNorm. A split is stored class by class, so its first rows would
    be one class, whose statistics are not the data's (measured: 13 points of accuracy lost)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[: min(count, n)].sort().values


@torch.no_grad()
def measure_paths(
    supernet: Supernet,
    paths: Sequence[ArchPath],
    train_x: Tensor,
    x: Tensor,
    y: Tensor,
    bn_images: int,
    batch_size: int = 500,
) -> list[float]:
    """Each path's top-1 % on (x, y), its BatchNorm statistics first re-estimated from
    `bn_images` of `train_x` (unaugmented) drawn across the whole split (`bn_rows`)."""
    was_training = supernet.training
    accuracy = []
    rows = bn_rows(len(train_x), bn_images).to(train_x.device)
    calib = [train_x[rows[i : i + batch_size]] for i in range(0, len(rows), batch_size)]
    for path in paths:
        supernet.recalibrate_bn(path, calib)
        supernet.eval()
        correct = sum(
            int((supernet(x[i : i + batch_size], path).argmax(1) == y[i : i + batch_size]).sum())
            for i in range(0, len(y), batch_size)
        )
        accuracy.append(100.0 * correct / max(1, len(y)))
    supernet.train(was_training)
    return accuracy


def weight_optimizer(supernet: Supernet, recipe: PathRecipe) -> torch.optim.SGD:
    """SGD with Nesterov momentum; weight decay on conv and linear weights, none on BatchNorm
    and biases (the usual CIFAR recipe: decaying BN scales only slows training)."""
    decay = [p for p in supernet.weight_parameters() if p.ndim > 1]
    rest = [p for p in supernet.weight_parameters() if p.ndim <= 1]
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    return torch.optim.SGD(
        groups,
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=True,
    )


def prune_to(supernet: Supernet, paths: Sequence[ArchPath]) -> int:
    """Prune every op none of `paths` uses; returns the bytes freed."""
    freed = 0
    for s in range(supernet.space.num_slots):
        used = {p[s] for p in paths}
        for op in supernet.live_ops(s):
            if op not in used:
                freed += supernet.prune(s, op)
    return freed


@dataclass
class Session:
    """Everything a path-training run holds while it trains."""

    out: Path
    recipe: PathRecipe
    config: TrainConfig  # what prp-export reads: space, data, cost model
    supernet: Supernet
    paths: list[ArchPath]  # most MACs first: paths[0] is the teacher
    data: DataSplits
    optimizer: torch.optim.SGD
    progress: Progress

    def save(self) -> None:
        """The run's state as tensors and plain data (`read_checkpoint` reads it weights-only),
        in the layout prp-export reads, plus where training stands."""
        state = {
            "version": CHECKPOINT_VERSION,
            "epoch": self.progress.epoch,
            "op_mask": self.supernet.op_mask.cpu(),
            "supernet": self.supernet.state_dict(),
            "opt_w": self.optimizer.state_dict(),
            "opt_a": {},
            "evaluated": [],  # no path's accuracy fed any decision here
            "targets": [],
            "path_training": {
                "paths": [list(p) for p in self.paths],
                "epoch": self.progress.epoch,
                "step": self.progress.step,
                "images": self.progress.images,
                "train_seconds": self.progress.train_seconds,
                "history": self.progress.history,
            },
        }
        with atomic_path(self.out / CHECKPOINT) as tmp:
            torch.save(state, tmp)


def _read_recipe(out: Path) -> PathRecipe:
    data = read_json(out / RECIPE)
    try:
        return PathRecipe.from_json(data)
    except (TypeError, KeyError) as e:
        raise PathTrainingError(
            f"{out / RECIPE} is not a path-training recipe ({one_line(e)})"
        ) from None


def _order_by_size(supernet: Supernet, paths: Sequence[ArchPath]) -> list[ArchPath]:
    """Most parameters first: the first path is the sandwich's largest, the teacher."""
    size = {p: sum(q.numel() for q in supernet.path_parameters(p)) for p in paths}
    return sorted(paths, key=lambda p: -size[p])


def compute_device(name: str | None) -> torch.device:
    """`cpu`, `cuda` or None (cuda where available, else cpu); a one-line error for others."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise PathTrainingError(f"unknown --compute-device {name!r}: use cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise PathTrainingError("--compute-device cuda, but torch sees no CUDA device here")
    return torch.device(name)


def open_session(
    out: Path, recipe: PathRecipe, config: TrainConfig, resume: bool, device: str | None = None
) -> Session:
    """The run in `out`: built from `recipe` on `device` (cpu or cuda; the device may change
    between a run and its resumption), and continued from its checkpoint on `resume`."""
    # `start` set the config's data and space fields from the recipe (the search's image size
    # kept): the run's data, split as it trains, at the side of the space it trains.
    side = get_space(config.space, size="real", **config.space_overrides).input_shape[-1]
    data = config.load_data(side)
    if data.left_out:
        write_record(out, data.left_out, [])
    space = get_space(
        config.space, size="real", **{**config.space_overrides, "num_classes": len(data.classes)}
    )
    torch.manual_seed(recipe.seed)
    supernet = Supernet(space)
    paths = [space.validate(space.decode(k)) for k in recipe.keys]
    computed = [compute_path(space, p) for p in paths]
    prune_to(supernet, paths + computed)
    supernet.to(compute_device(device))
    if recipe.precision == "bf16":
        supernet.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    session = Session(
        out,
        recipe,
        config,
        supernet,
        _order_by_size(supernet, paths),
        data,
        weight_optimizer(supernet, recipe),
        Progress(),
    )
    if resume and (out / CHECKPOINT).exists():
        state = read_checkpoint(out / CHECKPOINT, map_location=supernet.alpha.device)
        try:
            supernet.load_state_dict(state["supernet"])
            if state["opt_w"]:  # a portable copy (`portable_checkpoint`) has none
                session.optimizer.load_state_dict(state["opt_w"])
            at = state["path_training"]
            session.progress = Progress(
                int(at["epoch"]),
                int(at["step"]),
                int(at["images"]),
                float(at["train_seconds"]),
                list(at["history"]),
            )
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise PathTrainingError(
                f"checkpoint of {out} does not fit its {RECIPE} ({one_line(e)}); it is damaged "
                f"or from another run: restore it, or start again in a new folder"
            ) from None
    return session


def start(
    search_run: Path,
    out: Path,
    *,
    top: int = 5,
    keys: Sequence[str] = (),
    space_overrides: dict[str, Any] | None = None,
    device: str | None = None,
    **recipe_fields: Any,
) -> Session:
    """A new path-training run in `out` (missing or empty) for the paths `prp-export --top top`
    (or `--paths keys`) would take from `search_run`."""
    from .export import choose_paths, load_run

    if out.exists() and any(out.iterdir()):
        raise PathTrainingError(
            f"{out} is not empty; give a new folder, or add --resume to continue the run there"
        )
    run = load_run(search_run)
    chosen = choose_paths(run, top, keys or None)
    search = run.cfg
    recipe = PathRecipe(
        search_run=str(search_run),
        keys=tuple(m.key for m in chosen),
        space=search.space,
        space_overrides=dict(space_overrides or {}),
        **recipe_fields,
    )
    kept = {k: v for k, v in search.space_overrides.items() if k == "input_size"}
    config = replace(
        search,
        space_size="real",
        space_overrides={**kept, **recipe.space_overrides},
        dataset=recipe.dataset,
        val_fraction=recipe.val_fraction,
        limit_per_class=recipe.limit_per_class,
        skip_bad_images=recipe.skip_bad_images,
        seed=recipe.seed,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        init="scratch",
        truth_table=None,
    )
    # The data is read (and checked) before anything is written: a refused start leaves no
    # folder that a corrected command would then have to --resume.
    session = open_session(out, recipe, config, resume=False, device=device)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG, config.to_json())
    write_json(out / RECIPE, recipe.to_json())
    return session


def resume(out: Path, device: str | None = None, precision: str | None = None) -> Session:
    """The run in `out`, continued from its last checkpoint (on `device`). A `precision` other
    than the run's is recorded in its recipe and logged from the step where it takes over."""
    if not (out / RECIPE).is_file():
        raise PathTrainingError(
            f"{out} holds no path-training run (no {RECIPE}); start one without --resume"
        )
    from .runs import read_config

    was = _read_recipe(out)
    recipe = was
    if precision is not None and check_precision(precision) != was.precision:
        recipe = replace(was, precision=precision)
    session = open_session(out, recipe, read_config(out), resume=True, device=device)
    if recipe != was:  # recorded once the run has opened in the new precision
        at = session.progress
        change = {"event": "precision", "precision": recipe.precision, "was": was.precision}
        RunLog(out / LOG).append({**change, "epoch": at.epoch, "step": at.step})
        write_json(out / RECIPE, recipe.to_json())
    return session


def extend(session: Session, epochs: int, lr: float | None = None) -> None:
    """Train `session` on to `epochs` in all with a warm restart: from the epoch it stands at, a
    new cosine cycle from `lr` (default: the recipe's peak lr, as SGDR restarts) to zero. A run
    still inside its schedule may only be extended once it stands at the end of an epoch."""
    recipe, at = session.recipe, session.progress
    if epochs <= recipe.epochs:
        raise PathTrainingError(
            f"--epochs {epochs} does not extend {session.out}, planned for {recipe.epochs} "
            f"epochs; give more, or leave --epochs out to resume as planned"
        )
    if at.step != 0:
        raise PathTrainingError(
            f"{session.out} stands inside epoch {at.epoch + 1}; resume it without --epochs to "
            f"the end of an epoch, then extend it"
        )
    peak = recipe.lr if lr is None else lr
    if peak <= 0:
        raise PathTrainingError(f"--lr must be above 0, got {peak}")
    session.recipe = replace(recipe, epochs=epochs, restarts=(*recipe.restarts, (at.epoch, peak)))
    record = {"event": "restart", "epoch": at.epoch, "epochs": epochs, "lr": peak}
    RunLog(session.out / LOG).append(record)
    write_json(session.out / RECIPE, session.recipe.to_json())


Say = Callable[[dict[str, Any]], None]


def _peak_rss_mib() -> float:
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024


def train(session: Session, say: Say | None = None, checkpoint_seconds: float = 600.0) -> None:
    """Train `session` to its last epoch, checkpointing every `checkpoint_seconds` and at each
    epoch's end; `say` hears every step and every epoch. `finish` then writes the front."""
    recipe, progress, net = session.recipe, session.progress, session.supernet
    tell = say or (lambda record: None)
    on = net.alpha.device
    train_x = to_tensor(session.data.train.images, session.data.mean, session.data.std).to(on)
    train_y = torch.tensor(session.data.train.labels).to(on)
    val_x = to_tensor(session.data.val.images, session.data.mean, session.data.std).to(on)
    val_y = torch.tensor(session.data.val.labels).to(on)
    steps = len(train_y) // recipe.batch_size
    if steps == 0:
        raise PathTrainingError(
            f"{len(train_y)} train images make no batch of {recipe.batch_size}; lower --batch-size"
        )
    computed = [compute_path(net.space, p) for p in session.paths]
    log = RunLog(session.out / LOG)
    last_save = time.monotonic()
    net.train()
    while progress.epoch < recipe.epochs:
        order = torch.randperm(len(train_y), generator=_generator(recipe.seed, progress.epoch))
        order = order.to(on)
        while progress.step < steps:
            t0 = time.perf_counter()
            rows = order[
                progress.step * recipe.batch_size : (progress.step + 1) * recipe.batch_size
            ]
            g = _generator(recipe.seed, progress.epoch, progress.step)
            x = augment_batch(train_x[rows], generator=g)
            lr = learning_rate(recipe, progress.epoch * steps + progress.step, steps)
            for group in session.optimizer.param_groups:
                group["lr"] = lr
            session.optimizer.zero_grad(set_to_none=True)
            losses = train_step(net, computed, x, train_y[rows], recipe)
            if not all(math.isfinite(v) for v in losses):
                raise PathTrainingError(
                    f"loss became {losses} at epoch {progress.epoch} step {progress.step}; "
                    f"lower --lr and start again (the last checkpoint is before this step)"
                )
            torch.nn.utils.clip_grad_norm_(list(net.weight_parameters()), 5.0)
            session.optimizer.step()
            progress.step += 1
            progress.images += len(rows)
            progress.train_seconds += time.perf_counter() - t0
            tell(
                {
                    "event": "step",
                    "epoch": progress.epoch,
                    "step": progress.step,
                    "steps": steps,
                    "lr": lr,
                    "loss": losses,
                }
            )
            if time.monotonic() - last_save > checkpoint_seconds:
                session.save()
                last_save = time.monotonic()
        t0 = time.perf_counter()
        accuracy = measure_paths(net, session.paths, train_x, val_x, val_y, recipe.bn_images)
        net.train()
        record = {
            "event": "epoch",
            "epoch": progress.epoch,
            "val_accuracy": accuracy,
            "images": progress.images,
            "train_seconds": round(progress.train_seconds, 1),
            "measure_seconds": round(time.perf_counter() - t0, 1),
            "threads": torch.get_num_threads(),
            "device": str(on),
            "peak_rss_mib": round(_peak_rss_mib(), 1),
        }
        log.append(record)
        progress.history.append(record)
        progress.epoch += 1
        progress.step = 0
        session.save()
        last_save = time.monotonic()
        tell(record)


def finish(session: Session) -> dict[str, Any]:
    """`front.json` (and its plots) of the trained paths: validation accuracy after the last
    epoch, and cost at this size from the search run's cost model."""
    cfg, net = session.config, session.supernet
    if not session.progress.history:
        raise PathTrainingError(f"{session.out} has not finished an epoch yet; train it first")
    accuracy = np.array(session.progress.history[-1]["val_accuracy"], dtype=float)
    net.cpu()  # op tracing runs on the host
    model = cfg.build_cost_model()
    table = price_supernet(net, model, trace_ops(net))
    cost = np.array([table(p) for p in session.paths], dtype=float)
    front: list[PathMetrics] = build_front(net.space, session.paths, accuracy, cost)
    return write_front(
        session.out,
        net.space,
        front,
        objective=cfg.objective,
        unit=model.unit,
        device=model.device,
        cost_source=model.source,
        top=len(front),
        estimator="weights",
    )


def portable_checkpoint(out: Path, dest: Path) -> int:
    """A copy of run `out`'s checkpoint without the optimizer state, at `dest`: half the bytes,
    small enough to carry a long run to another machine (commit it with the run's `config.json`,
    `paths.json` and `log.jsonl`). A run resumed from it restarts SGD's momentum at zero, which
    the next steps rebuild; everything else continues exactly. Returns the bytes written."""
    state = read_checkpoint(out / CHECKPOINT)
    state["opt_w"] = {}
    with atomic_path(dest) as tmp:
        torch.save(state, tmp)
    return dest.stat().st_size
