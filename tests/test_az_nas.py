"""AZ-NAS's scores: hand-computed values on hand-made features and blocks, its initialisation,
and its scores of real NB201 architectures (the tiny space)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from prp.trainer.estimation.az_nas import (
    az_nas,
    expressivity_of,
    kaiming_init_,
    trainability_of,
)
from prp.trainer.estimation.proxies import fresh_supernet
from prp.trainer.spaces import get_space
from torch import nn


def test_expressivity_is_the_entropy_of_the_channel_covariance_spectrum() -> None:
    # Two channels over 4 images of 1 x 2 pixels: x and 2y with x, y orthogonal +-1 patterns of
    # mean 0, so the covariance is diag(1, 4) and the normalised spectrum (0.2, 0.8).
    x = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    y = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0])
    feature = torch.stack([x, 2 * y], dim=1).reshape(4, 1, 2, 2).permute(0, 3, 1, 2)
    assert feature.shape == (4, 2, 1, 2)
    expected = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert expressivity_of(feature) == pytest.approx(expected, rel=1e-5)
    # One direction only (two equal channels): no entropy. A constant feature: undefined.
    same = torch.stack([x, x], dim=1).reshape(4, 2, 2, 1).permute(0, 3, 1, 2)
    assert expressivity_of(same) == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(expressivity_of(torch.zeros(4, 2, 2, 2)))


def test_trainability_of_scaling_and_pooling_blocks() -> None:
    g = torch.Generator().manual_seed(0)
    f_in = torch.randn(8, 1, 4, 4, requires_grad=True)
    # One channel scaled by 2: the gradient is scaled by 2, sigma = 2, score 2 - 2 - 1/2.
    assert trainability_of(f_in, 2.0 * f_in, g) == pytest.approx(-0.5, rel=1e-5)
    # An identity block passes the gradient unchanged: -inf, as in the authors' code.
    assert trainability_of(f_in, f_in * 1.0, g) == float("-inf")
    # 2x2 average pooling halves the resolution: each of the four folded input positions gets a
    # quarter of the output gradient, M = (1/4, 1/4, 1/4, 1/4)^T, sigma = 1/2, score -1/2.
    pooled = nn.functional.avg_pool2d(f_in, 2)
    assert trainability_of(f_in, pooled, g) == pytest.approx(-0.5, rel=1e-5)
    # A block that neither amplifies nor damps (an orthogonal mix of channels) scores ~0.
    two = torch.randn(8, 2, 4, 4, requires_grad=True)
    rotate = torch.tensor([[0.6, -0.8], [0.8, 0.6]])
    mixed = torch.einsum("oc,bchw->bohw", rotate, two)
    assert trainability_of(two, mixed, g) == pytest.approx(0.0, abs=0.05)


def test_kaiming_init_draws_each_module_by_its_name() -> None:
    net = nn.Sequential(nn.Conv2d(16, 32, 3), nn.BatchNorm2d(32), nn.Linear(64, 10))
    kaiming_init_(net, seed=0)
    assert float(net[0].weight.detach().std()) == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.05)
    assert float(net[2].weight.detach().std()) == pytest.approx(math.sqrt(2 / 64), rel=0.1)
    assert torch.all(net[1].weight == 1) and torch.all(net[1].bias == 0)
    assert torch.all(net[2].bias == 0)
    # The conv's weights do not depend on what else the network holds.
    alone = nn.Sequential(nn.Conv2d(16, 32, 3))
    kaiming_init_(alone, seed=0)
    assert torch.equal(alone[0].weight, net[0].weight)
    kaiming_init_(alone, seed=1)
    assert not torch.equal(alone[0].weight, net[0].weight)


def test_az_nas_on_real_nb201_architectures() -> None:
    space = get_space("nb201", size="tiny")
    supernet = fresh_supernet(space, seed=0)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    paths = [
        space.decode(
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
            "nor_conv_3x3~1|nor_conv_3x3~2|"
        ),
        (1, 1, 1, 1, 1, 1),  # every edge a skip: each cell is 4 x its input
        (0, 0, 0, 0, 0, 0),  # every edge none: each cell outputs zeros
    ]
    scores = az_nas(supernet, paths, seed=0)
    # The supernet scored is a copy: its weights and BatchNorm statistics are unchanged.
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())
    conv, skip, none = (
        dict(zip(scores, col, strict=True)) for col in zip(*scores.values(), strict=True)
    )
    assert np.isfinite(list(conv.values())).all()
    # Cells of skips scale their input by 4: the gradient through each is 4 times the output's
    # (sigma about 4, score about 2 - 4 - 1/4), far below the conv cells' (about 0); the mean
    # over the blocks (3 cells, 2 reduction blocks) stays below -1.
    assert skip["trainability"] < -1.0 < conv["trainability"]
    # Zero cells: nothing to express, and the aggregate ranks them last.
    assert none["expressivity"] == none["progressivity"] == float("-inf")
    # A conv cell spreads its features over more directions than a cell that only adds copies.
    assert conv["expressivity"] > skip["expressivity"]
