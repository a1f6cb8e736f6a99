"""Training configuration and presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from .errors import PRPError
from .estimation.estimators import ESTIMATORS
from .pretrained import DEFAULT_INIT, PRETRAINED, fitting

if TYPE_CHECKING:
    from .costs import CostModel
    from .datasets import DataSplits, StreamSplits

# Cost model used when none is named, per (space, objective).
DEFAULT_COST_MODELS: dict[tuple[str, str], str] = {
    ("fbnet", "energy"): "hwnasbench",
    ("fbnet", "latency"): "hwnasbench",
    ("proxyless", "latency"): "proxyless-mobile",
}


# prp: the paper's Algorithm 1. Baselines for the ranking benchmark, trained for the same
# epochs: fair = strict fairness (FairNAS) throughout, uniform = single-path one-shot with
# uniform sampling (the "vanilla" supernet). Neither trains alpha nor prunes.
METHODS = ("prp", "fair", "uniform")
PARETO_W_PATHS = ("argmax", "front", "fair")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run; saved as `config.json` and checked on `--resume`."""

    method: str = "prp"  # prp (Algorithm 1); baselines: fair (stage 1 only), uniform (SPOS)
    space: str = "nb201"
    space_size: str = "real"
    space_overrides: dict[str, Any] = field(default_factory=dict)
    objective: str = "energy"
    cost_model: str | None = None  # None: DEFAULT_COST_MODELS, else "analytic"
    cost_device: str | None = None  # None: the cost model's default device
    cost_lut: str | None = None  # file for the "lut" cost model
    dataset: str = "default"
    limit_per_class: int | None = None
    # Train without the images that fail the data set's check (else they are refused, named).
    skip_bad_images: bool = False
    val_fraction: float = 0.1
    epochs_fair: int = 8  # N_f
    epochs_pareto: int = 8  # N_p
    samples: int = 24  # n: paths sampled per Pareto epoch, and kept at pruning
    top_n: int = 8  # N of eq. 2
    prune_after: int = 4  # prune after this many Pareto epochs (0: never)
    target_pool: int = 96  # paths estimated after stage 1 whose estimates set target ranks
    final_samples: int = 128  # paths evaluated for the final front (all if fewer exist)
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float = 5.0
    alpha_lr: float = 0.05
    alpha_steps: int = 50  # alpha updates per Pareto epoch
    # Rank alpha on every path with a known target so far (the target pool, or every path
    # sampled with a benchmark table), not only this epoch's n: see bench/ranking's attempts.
    alpha_history: bool = True
    hinge_weight: float = 0.1
    # W in stage 2: "argmax" trains each slot's highest-alpha path (the paper's Algorithm 1);
    # "front" trains, each batch, one of the top-N paths of the target pool by P_s (alpha's
    # predicted front; the per-slot argmax can be a path on no front, e.g. an identity cell);
    # "fair" keeps strict-fair groups over the ops still live (alpha then steers ranking and
    # pruning only). bench/ranking compares them.
    pareto_w_paths: str = "argmax"
    # Complexity-aware lr (`weight_step.ComplexityLR`, after DYNAS): the most complex paths'
    # lr decays only to this fraction of its start, the least complex to 0. 0: one lr for all.
    complexity_lr: float = 0.0
    rank_temperature: float = 5.0  # target = softmax(-rank / T) over the ranked paths
    # A registered estimator (`estimators.ESTIMATORS`): the accuracy that target ranks, pruning
    # and the front use.
    estimator: str = "weights"
    eval_images: int = 500  # held-out images per accuracy estimate
    bn_batches: int = 4  # training batches for BN recalibration per path
    augment: bool = True
    truth_table: str | None = None  # NB201 CSV: target ranks from its accuracies, not estimates
    truth_column: str = "cifar10_valid_acc"
    seed: int = 0
    compute_device: str = "cpu"
    # "scratch", a shipped supernet's name (`pretrained.PRETRAINED`), or a run folder /
    # checkpoint.pt of a supernet of the same space (e.g. a `--method fair` run trained once at
    # a larger scale): its weights W start this run, the way Once-for-All ships trained
    # supernets (stage 1 is objective-independent).
    init: str = "scratch"

    @property
    def image_size(self) -> int | None:
        """Image side in pixels asked for with `--image-size`, None: the space's own (32 for
        nb201, fbnet and the tiny sizes, 224 for real proxyless). Kept as the space's
        `input_size` override, so everything that rebuilds the space from this config (export,
        evaluation) builds it at the size the run trained at."""
        size = self.space_overrides.get("input_size")
        return None if size is None else int(size)

    def with_image_size(self, image_size: int | None) -> TrainConfig:
        """This config at `image_size` pixels (None: unchanged)."""
        if image_size is None:
            return self
        return replace(self, space_overrides={**self.space_overrides, "input_size": image_size})

    def resolved_cost_model(self) -> str:
        if self.cost_model:
            return self.cost_model
        return DEFAULT_COST_MODELS.get((self.space, self.objective), "analytic")

    def build_cost_model(self) -> CostModel:
        """The cost model this run prices paths with: its name, objective, device and table."""
        from .costs import get_cost_model

        return get_cost_model(
            self.resolved_cost_model(),
            self.objective,
            self.cost_device,
            **({"path": self.cost_lut} if self.cost_lut else {}),
        )

    def load_data(self, image_size: int) -> DataSplits:
        """This run's data set, split as the run splits it (seed, validation fraction, images
        per class), decoded into memory at `image_size` pixels: the side of the space the run
        trains, `SearchSpace.input_shape[-1]`."""
        from .datasets import load_dataset

        return load_dataset(
            self.dataset,
            val_fraction=self.val_fraction,
            seed=self.seed,
            limit_per_class=self.limit_per_class,
            image_size=image_size,
            skip_bad_images=self.skip_bad_images,
        )

    def open_data(self, image_size: int) -> DataSplits | StreamSplits:
        """`load_data`, except that folder trees and archives stream image by image through a
        DataLoader (`datasets.open_dataset`); the small 32 px sources stay in memory."""
        from .datasets import open_dataset, streams_by_default

        if not streams_by_default(self.dataset):
            return self.load_data(image_size)
        return open_dataset(
            self.dataset,
            val_fraction=self.val_fraction,
            seed=self.seed,
            limit_per_class=self.limit_per_class,
            image_size=image_size,
            skip_bad_images=self.skip_bad_images,
        )

    def validate(self) -> TrainConfig:
        if self.method not in METHODS:
            raise PRPError(f"unknown --method {self.method!r}; methods are: {', '.join(METHODS)}")
        if self.pareto_w_paths not in PARETO_W_PATHS:
            raise PRPError(
                f"unknown pareto_w_paths {self.pareto_w_paths!r}; use 'argmax' (paper), "
                f"'front' or 'fair'"
            )
        if self.estimator not in ESTIMATORS:
            known = " or ".join(f"{n!r} ({ESTIMATORS.doc(n)})" for n in ESTIMATORS.names())
            raise PRPError(f"unknown --estimator {self.estimator!r}; use {known}")
        if self.method != "prp" and ESTIMATORS.create(self.estimator).uses_alpha:
            raise PRPError(
                f"--estimator {self.estimator} aggregates alpha's path scores, which only "
                f"--method prp trains; use --method prp or an estimator without alpha"
            )
        if not 0.0 <= self.complexity_lr <= 1.0:
            raise PRPError(
                f"--complexity-lr must be between 0 (off) and 1 (the most complex paths keep "
                f"their starting lr), got {self.complexity_lr}"
            )
        if self.samples < 2:
            raise PRPError(f"--samples must be at least 2 to rank paths, got {self.samples}")
        if not 1 <= self.top_n <= self.samples:
            raise PRPError(
                f"--top-n ({self.top_n}) must be between 1 and --samples ({self.samples}): "
                f"eq. 2 counts ops among the top-N of the n sampled paths"
            )
        if (
            self.epochs_fair < 0
            or self.epochs_pareto < 0
            or self.epochs_fair + self.epochs_pareto == 0
        ):
            raise PRPError("give at least one epoch (--epochs-fair and/or --epochs-pareto)")
        if self.prune_after > self.epochs_pareto:
            raise PRPError(
                f"--prune-after ({self.prune_after}) is beyond --epochs-pareto "
                f"({self.epochs_pareto})"
            )
        size = self.space_overrides.get("input_size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 8):
            raise PRPError(f"--image-size must be a whole number of pixels >= 8, got {size}")
        if self.batch_size < 2:
            raise PRPError(f"--batch-size must be at least 2 (BatchNorm), got {self.batch_size}")
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise PRPError(
                f"config has unknown keys {sorted(unknown)}; was it written by a newer version?"
            )
        return cls(**data)


PRESETS: dict[str, TrainConfig] = {
    # Finishes in minutes on 2 CPU cores on the embedded CIFAR-10 subset: NB201 cells at 8
    # channels, two cells per stage, a proxy searching for the benchmark's network (C=16, N=5),
    # priced as that network by HW-NAS-Bench's measured edge-GPU energy (`NB201_DEFAULT_COST`;
    # the analytic model for another space, or for a device HW-NAS-Bench did not measure).
    # Stage 1 is the shipped strict-fair supernet (`pretrained.DEFAULT_INIT`, trained once on
    # the 45,000 CIFAR-10 images the subset lacks); the run trains the Pareto-rank stage from
    # it, W on strict-fair groups at a lower learning rate, and ranks paths by the shared
    # weights and alpha's path scores aggregated with every free proxy (bench/results/README.md
    # measures it: above the free proxies' own aggregate on accuracy on three seeds and on
    # Pareto ranks on two, priced so; level with it when the search was priced by the analytic
    # model, whose Pareto ranks alpha then learns). Without the shipped supernet (`--init
    # scratch`, another space, a baseline method) it is `SCRATCH_RECIPE`.
    "default": TrainConfig(
        space_overrides={"channels": 8, "cells_per_stage": 2},
        init=DEFAULT_INIT,
        epochs_fair=0,
        lr=0.01,
        pareto_w_paths="fair",
        estimator="weights+alpha+all-free",
    ),
    # Seconds: for tests and smoke runs.
    "tiny": TrainConfig(
        space_size="tiny",
        limit_per_class=30,
        epochs_fair=2,
        epochs_pareto=2,
        samples=8,
        top_n=3,
        prune_after=1,
        target_pool=16,
        final_samples=16,
        batch_size=32,
        eval_images=100,
        bn_batches=2,
        alpha_steps=3,
    ),
    # The paper's Table 5 for NAS-Bench-201 (SGD, momentum 0.9), on a GPU. N (top_n), the
    # pruning epoch and the alpha settings are not in the paper; these are ours.
    "paper": TrainConfig(
        epochs_fair=20,
        epochs_pareto=50,
        samples=50,
        top_n=10,
        prune_after=25,
        target_pool=500,
        final_samples=1000,
        batch_size=128,
        lr=0.01,
        momentum=0.9,
        eval_images=5000,
        bn_batches=8,
        compute_device="cuda",
    ),
}


# Table 5 for the chain spaces (its DARTS and ProxylessNAS rows are equal).
PAPER_CHAIN_SPACES: dict[str, Any] = {
    "epochs_fair": 30,
    "epochs_pareto": 150,
    "samples": 100,
    "prune_after": 75,
    "target_pool": 1000,
    "batch_size": 256,
    "lr": 0.025,
}


# The default preset's settings for a space other than NB201, where they differ from the
# preset's. DARTS: even at 8 channels and 5 cells (normal, reduction, normal, reduction,
# normal) a strict-fair epoch trains 7 paths a batch and takes about 190 s on 2 threads here,
# and each path estimate about 1 s; 2 fair and 4 Pareto-rank epochs with a pool and a final
# sample of 64 paths keep the run within 15 minutes on 2 cores: a proxy size for the search, as
# NB201's default is (bench/results: "DARTS at the default size").
DEFAULT_BY_SPACE: dict[str, dict[str, Any]] = {
    "darts": {
        "space_overrides": {"channels": 8, "cells": 5},
        "epochs_fair": 2,
        "epochs_pareto": 4,
        "prune_after": 2,
        "target_pool": 64,
        "final_samples": 64,
    },
}


# The default preset's cost model for NB201 where the user names none: HW-NAS-Bench's measured
# figures for the benchmark's network, fitted per (edge, op) (`costs.hwnasbench_nb201`). The
# analytic 45 nm model ranks the measured edge-GPU energy at tau-b 0.42 only, and alpha learns
# the Pareto ranks of whatever model prices the search (bench/results: "the default run").
NB201_DEFAULT_COST = "hwnasbench-nb201"


# The default preset's settings for a run that does not start from the shipped supernet: the
# paper's two stages from random weights (what `--init scratch` always ran).
SCRATCH_RECIPE: dict[str, Any] = {
    "init": "scratch",
    "epochs_fair": 8,
    "lr": 0.05,
    "pareto_w_paths": "argmax",
    "estimator": "weights",
}


def preset(name: str, **overrides: Any) -> TrainConfig:
    """A preset with `overrides` (None values ignored) applied on top. The default preset
    starts from the shipped supernet that fits its space (`pretrained.fitting`: the default
    space's, or the one-cell-per-stage space's); with `init="scratch"`, a space no shipped
    supernet fits or a baseline method (fair, uniform) it is `SCRATCH_RECIPE` below the
    overrides."""
    if name not in PRESETS:
        raise PRPError(f"unknown preset {name!r}; presets are: {', '.join(PRESETS)}")
    base = PRESETS[name]
    space = overrides.get("space")
    if space not in (None, base.space) and not overrides.get("space_overrides"):
        # The preset's space settings are for its own space (NB201's channels and cells per
        # stage); another space is built at its own size.
        base = replace(base, space_overrides={})
    if name == "default" and base.init in PRETRAINED:
        init = overrides.get("init")
        shipped = fitting(
            overrides.get("space") or base.space,
            overrides.get("space_size") or base.space_size,
            overrides.get("space_overrides") or base.space_overrides,
        )
        baseline = overrides.get("method") not in (None, "prp")
        if init == "scratch" or (init is None and (baseline or shipped is None)):
            base = replace(base, **SCRATCH_RECIPE)
        elif shipped is not None:  # the shipped supernet of the space asked for
            base = replace(base, init=shipped)
    if name == "paper" and overrides.get("space", "nb201") != "nb201":
        base = replace(base, **PAPER_CHAIN_SPACES)
    if (
        name == "default"
        and space in DEFAULT_BY_SPACE
        and not overrides.get("space_overrides")
        and overrides.get("space_size") in (None, "real")
    ):
        base = replace(base, **DEFAULT_BY_SPACE[space])
    if name == "default" and _nb201_default_cost_fits(overrides, base):
        base = replace(base, cost_model=NB201_DEFAULT_COST)
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _nb201_default_cost_fits(overrides: dict[str, Any], base: TrainConfig) -> bool:
    """Whether the default preset prices this run with `NB201_DEFAULT_COST`: an NB201 run that
    names no cost model or table, on a device that model has for the objective (or none)."""
    from .costs import COST_MODEL_DEVICES

    if (overrides.get("space") or base.space) != "nb201":
        return False
    if overrides.get("cost_model") is not None or overrides.get("cost_lut") is not None:
        return False
    objective = overrides.get("objective") or base.objective
    device = overrides.get("cost_device")
    return device is None or device in COST_MODEL_DEVICES[NB201_DEFAULT_COST].get(objective, [])
