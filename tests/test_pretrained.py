"""The shipped strict-fair supernets (`--init nb201-c8n2-fair`, the default space's, and
`nb201-c8-fair`) and the default preset that starts from them: installed, small, weights-only,
really trained, and used only where they fit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from prp.trainer.config import SCRATCH_RECIPE, preset
from prp.trainer.datasets import DataSplits, ImageSet, load_dataset
from prp.trainer.errors import PRPError
from prp.trainer.pretrained import DEFAULT_INIT, PRETRAINED, pretrained_path, resolve_init
from prp.trainer.runs import read_checkpoint
from prp.trainer.spaces import get_space
from prp.trainer.supernet import Supernet
from prp.trainer.train import Tensors, Trainer, estimate_accuracy


@pytest.fixture(scope="module")
def default_data():
    """The embedded default data at 40 images per class (its validation split is held out)."""
    return load_dataset("default", val_fraction=0.2, seed=0, limit_per_class=40)


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_the_shipped_supernet_is_installed_small_unpruned_and_weights_only(name: str) -> None:
    path = pretrained_path(name)
    assert path.stat().st_size < 10 * 2**20  # the package budget
    state = read_checkpoint(path)  # torch's weights-only unpickler
    assert bool(state["op_mask"].all())
    assert state["opt_w"]["state"] == {}  # no optimizer state shipped
    assert resolve_init(name) == path
    # It loads into the space it claims to fit.
    entry = PRETRAINED[name]
    cfg = preset("default", space_overrides=entry.space_overrides)
    assert cfg.init == name
    space = get_space(entry.space, size=entry.space_size, **entry.space_overrides)
    own = Supernet(space).state_dict()
    assert {k: v.shape for k, v in own.items()} == {
        k: v.shape for k, v in state["supernet"].items()
    }


def test_default_preset_starts_from_it_only_where_it_fits(tmp_path) -> None:
    cfg = preset("default")
    assert (cfg.init, cfg.epochs_fair, cfg.estimator) == (DEFAULT_INIT, 0, "weights+alpha+all-free")
    assert PRETRAINED[DEFAULT_INIT].fits(cfg.space, cfg.space_size, cfg.space_overrides)
    # --init scratch, another space or a baseline method: the paper's two stages from scratch.
    for overrides in ({"init": "scratch"}, {"space": "fbnet"}, {"method": "fair"}):
        cfg = preset("default", **overrides)
        assert {k: getattr(cfg, k) for k in SCRATCH_RECIPE} == SCRATCH_RECIPE, overrides
        assert cfg.epochs_fair > 0
    # An explicit option still wins over the recipe, and another init keeps the recipe.
    assert preset("default", init="scratch", epochs_fair=3).epochs_fair == 3
    assert preset("default", init=str(tmp_path)).epochs_fair == 0


def test_default_preset_prices_nb201_by_hw_nas_bench_where_it_can() -> None:
    """NB201 runs of the default preset are priced by HW-NAS-Bench's measured figures, as the
    benchmark's network; another space, a named cost model or table, or a device HW-NAS-Bench
    did not measure keeps the space's default."""
    cfg = preset("default")
    assert cfg.resolved_cost_model() == "hwnasbench-nb201"
    model = cfg.build_cost_model()
    assert (model.objective, model.device, model.unit) == ("energy", "edgegpu", "mJ")
    latency = preset("default", objective="latency", cost_device="pixel3").build_cost_model()
    assert (latency.device, latency.unit) == ("pixel3", "ms")
    assert preset("default", space="fbnet").resolved_cost_model() == "hwnasbench"
    assert preset("default", space="darts").resolved_cost_model() == "analytic"
    assert preset("default", cost_model="analytic").resolved_cost_model() == "analytic"
    assert preset("default", cost_device="horowitz45-int8").resolved_cost_model() == "analytic"
    assert preset("tiny").resolved_cost_model() == "analytic"
    # The default space is a proxy of the priced network; the benchmark's size is that network.
    small = get_space(cfg.space, size=cfg.space_size, **cfg.space_overrides)
    assert not model.prices_as_built(small)
    assert model.prices_as_built(get_space("nb201", size="real"))
    assert not model.prices_as_built(get_space("nb201", size="real", input_size=64))


def test_the_shipped_supernet_is_trained_and_a_scratch_one_is_not(default_data, tmp_path) -> None:
    """Estimated on held-out images of the embedded subset (which the pretraining never saw),
    conv cells of the shipped supernet are far above chance; the same paths of a scratch
    supernet of the same seed are near it."""
    cfg = replace(preset("default"), eval_images=200, bn_batches=2, batch_size=32)
    space = Trainer(cfg, tmp_path / "a", data=default_data).space
    paths = [space.decode(s) for s in _CONV_CELLS]
    shipped = Trainer(cfg, tmp_path / "a", data=default_data)
    scratch = Trainer(replace(cfg, init="scratch"), tmp_path / "b", data=default_data)
    tensors = Tensors.of(default_data, torch.device("cpu"))

    def accuracy(trainer: Trainer) -> np.ndarray:
        g = torch.Generator().manual_seed(0)
        return np.array([estimate_accuracy(trainer.supernet, p, tensors, cfg, g) for p in paths])

    trained, untrained = accuracy(shipped), accuracy(scratch)
    assert trained.min() > 40.0, trained  # 10 classes: chance is 10 %
    assert untrained.max() < 25.0, untrained


_CONV_CELLS = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_3x3~0|nor_conv_1x1~1|"
    "nor_conv_3x3~2|",
)


def test_a_data_set_of_other_classes_keeps_the_cells_and_learns_its_classifier(
    default_data, tmp_path
) -> None:
    def first(split: ImageSet, k: int) -> ImageSet:
        keep = split.labels < k
        return ImageSet(
            split.images[keep],
            split.labels[keep],
            split.classes[:k],
            split.source,
            tuple(n for n, kept in zip(split.names, keep, strict=True) if kept),
            split.index[keep],
        )

    five = DataSplits(
        *(first(s, 5) for s in (default_data.train, default_data.val, default_data.test)),
        classes=default_data.classes[:5],
        mean=default_data.mean,
        std=default_data.std,
        source=default_data.source,
    )
    trainer = Trainer(preset("default"), tmp_path / "run", data=five)
    saved = read_checkpoint(pretrained_path(DEFAULT_INIT))["supernet"]
    own = trainer.supernet.state_dict()
    cells = [k for k in saved if k != "alpha" and "classifier" not in k]
    assert cells and all(torch.equal(own[k], saved[k]) for k in cells)
    assert own["net.head.classifier.weight"].shape[0] == 5


def test_an_init_that_does_not_exist_is_one_line(tmp_path, default_data) -> None:
    with pytest.raises(PRPError, match="does not exist; use scratch, a run folder"):
        Trainer(
            replace(preset("default"), init=str(tmp_path / "nowhere")),
            tmp_path / "run",
            data=default_data,
        )
