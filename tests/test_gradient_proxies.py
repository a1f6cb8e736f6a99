"""ZiCo and jacov: hand-computed values on constructed gradients and Jacobians, and on real
networks; and the score file that keeps proxy scores between runs."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch
from prp.trainer.errors import PRPError
from prp.trainer.estimation.gradient_proxies import JACOV_K, jacov_of, jacov_score, zico_of
from prp.trainer.estimation.score_file import ScoreFile
from torch import nn


def test_zico_by_hand() -> None:
    # One layer, two batches: gradients (1, 3) then (3, 1): mean |g| = (2, 2), std = (1, 1),
    # so the layer adds log(2/1 + 2/1) = log 4.
    first = [torch.tensor([1.0, 3.0]), torch.tensor([1.0, 0.0]), None]
    second = [torch.tensor([3.0, 1.0]), torch.tensor([1.0, 0.0]), None]
    # The second layer's gradient does not vary (std 0): it adds nothing; the third got none.
    assert zico_of([first, second]) == pytest.approx(math.log(4.0))
    # Entries that do not vary are left out, those that vary counted: (2 + 2) / 1 + 0 -> log 4.
    third = [torch.tensor([1.0, 3.0, 5.0]), torch.tensor([1.0]), None]
    fourth = [torch.tensor([3.0, 1.0, 5.0]), torch.tensor([2.0]), None]
    # Layer 2: mean |g| = 1.5, std = 0.5 -> log 3.
    assert zico_of([third, fourth]) == pytest.approx(math.log(4.0) + math.log(3.0))
    # A layer whose gradients vary more relative to their mean scores lower.
    noisy = zico_of([[torch.tensor([1.0, -1.0])], [torch.tensor([-1.0, 1.0])]])
    steady = zico_of([[torch.tensor([1.0, 1.0])], [torch.tensor([1.2, 0.8])]])
    assert noisy < steady


def test_jacov_by_hand() -> None:
    # Uncorrelated rows: the correlation matrix is I, eigenvalues 1 and 1.
    rows = np.array([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])
    expected = -2 * (math.log(1 + JACOV_K) + 1 / (1 + JACOV_K))
    assert jacov_of(rows) == pytest.approx(expected)
    # Perfectly correlated rows: eigenvalues 0 and 2, far worse (the 1/k term).
    correlated = np.array([[1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]])
    worse = -(math.log(JACOV_K) + 1 / JACOV_K + math.log(2 + JACOV_K) + 1 / (2 + JACOV_K))
    assert jacov_of(correlated) == pytest.approx(worse, rel=1e-6)
    # A row without variation has no correlation: ranked last.
    assert jacov_of(np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])) == float("-inf")


def test_jacov_of_real_networks() -> None:
    images = torch.randn(8, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    # A linear network has the same Jacobian for every image: every pair correlated.
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 36, 4))
    eigen = -(7 * (math.log(JACOV_K) + 1 / JACOV_K) + math.log(8 + JACOV_K) + 1 / (8 + JACOV_K))
    assert jacov_score(linear, images) == pytest.approx(eigen, rel=1e-4)
    # ReLUs make the Jacobian depend on the image: less correlated, a higher score.
    torch.manual_seed(0)
    relu = nn.Sequential(
        nn.Conv2d(3, 16, 3),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 4, 4),
    )
    assert jacov_score(relu, images) > jacov_score(linear, images) + 1e4


def test_score_file_keeps_scores_for_its_settings_only(tmp_path) -> None:
    path = tmp_path / "scores.json.gz"
    settings = {"proxy": "az-nas", "seed": 0}
    held = ScoreFile(path, settings)
    assert held.scores == {}
    held.add("|a~0|", {"x": 1.5, "y": float("-inf")})
    held.save()
    again = ScoreFile(path, {"seed": 0, "proxy": "az-nas"})  # key order does not matter
    assert again.scores == {"|a~0|": {"x": 1.5, "y": float("-inf")}}
    with pytest.raises(PRPError, match="other settings .*seed"):
        ScoreFile(path, {"proxy": "az-nas", "seed": 1})
    path.write_bytes(gzip.compress(b"{not json"))
    with pytest.raises(PRPError, match="not a readable score file"):
        ScoreFile(path, settings)
