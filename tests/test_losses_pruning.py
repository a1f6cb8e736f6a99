"""The alpha losses and stage-3 pruning on a real (tiny) supernet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from prp.trainer.losses import hinge_loss, listwise_ranking_loss, op_counts, rank_target
from prp.trainer.pareto import pareto_ranks
from prp.trainer.pruning import MAXIMIZE, prune_by_pareto, reference_point
from prp.trainer.spaces import PrunedOp, get_space
from prp.trainer.supernet import Supernet


def test_rank_target_and_listwise_loss() -> None:
    target = rank_target([1, 1, 2, 3])
    assert target.sum() == pytest.approx(1.0)
    assert target[0] == target[1] > target[2] > target[3]
    good = listwise_ranking_loss(torch.tensor([3.0, 3.0, 1.0, -1.0]), [1, 1, 2, 3])
    bad = listwise_ranking_loss(torch.tensor([-1.0, -1.0, 1.0, 3.0]), [1, 1, 2, 3])
    assert good < bad
    with pytest.raises(ValueError, match="one score per path"):
        listwise_ranking_loss(torch.zeros(3), [1, 2])


def test_listwise_loss_moves_alpha_towards_the_front() -> None:
    """Gradient steps on the ranking loss raise the score of rank-1 paths over rank-3 ones."""
    supernet = Supernet(get_space("nb201", size="tiny"))
    paths = [(3,) * 6, (2,) * 6, (0,) * 6, (1, 3, 2, 4, 0, 1)]
    ranks = [1, 2, 3, 2]
    opt = torch.optim.SGD([supernet.alpha], lr=1.0)
    for _ in range(20):
        opt.zero_grad()
        listwise_ranking_loss(supernet.path_scores(paths), ranks).backward()
        opt.step()
    scores = supernet.path_scores(paths).detach()
    assert scores[0] > scores[1] > scores[2]
    assert supernet.argmax_path() == (3,) * 6


def test_op_counts() -> None:
    counts = op_counts([(0, 1), (0, 2), (1, 2)], 2, 3)
    np.testing.assert_array_equal(counts, [[2, 1, 0], [0, 1, 2]])


def test_hinge_loss_is_zero_when_the_front_agrees_and_pushes_alpha_otherwise() -> None:
    supernet = Supernet(get_space("nb201", size="tiny"))
    paths = [(3,) * 6, (2,) * 6, (0,) * 6, (4,) * 6]
    true_ranks = [1, 2, 3, 3]
    # Predicted scores agree with the truth on the top-2: no op is over-represented.
    with torch.no_grad():
        supernet.alpha[:, 3] = 2.0
        supernet.alpha[:, 2] = 1.0
    loss = hinge_loss(
        supernet.alpha, supernet.op_mask, paths, supernet.path_scores(paths), true_ranks, top_n=2
    )
    assert loss.item() == 0.0
    # Now the predicted top-2 holds op 0 and op 4, which the true top-2 lacks.
    with torch.no_grad():
        supernet.alpha.zero_()
        supernet.alpha[:, 0] = 2.0
        supernet.alpha[:, 4] = 1.5
    scores = supernet.path_scores(paths)
    loss = hinge_loss(supernet.alpha, supernet.op_mask, paths, scores, true_ranks, top_n=2)
    assert loss.item() > 0
    loss.backward()
    assert supernet.alpha.grad is not None and supernet.alpha.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="top_n=9"):
        hinge_loss(supernet.alpha, supernet.op_mask, paths, scores, true_ranks, top_n=9)


def test_reference_point_is_beyond_the_worst() -> None:
    ref = reference_point(np.array([[90.0, 10.0], [80.0, 5.0]]), MAXIMIZE)
    np.testing.assert_allclose(ref, [79.0, 10.5])


def test_prune_by_pareto_keeps_the_front_and_frees_the_rest() -> None:
    supernet = Supernet(get_space("nb201", size="tiny"))
    # (accuracy, cost): conv3x3 paths are accurate and costly, skip cheap, none and pool dominated.
    paths = [(3,) * 6, (2,) * 6, (1,) * 6, (0,) * 6, (4,) * 6, (3, 3, 3, 2, 2, 2)]
    points = np.array([[90, 10], [85, 5], [70, 1], [10, 1], [40, 4], [88, 8]], dtype=float)
    assert list(pareto_ranks(points, MAXIMIZE)) == [1, 1, 1, 2, 2, 1]
    before = sum(p.numel() for p in supernet.parameters())
    result = prune_by_pareto(supernet, paths, points, keep=3)
    assert len(result.kept) == 3 and set(result.kept) <= set(paths)
    used = {(s, p[s]) for p in result.kept for s in range(6)}
    for s in range(6):
        assert set(supernet.live_ops(s)) == {op for (slot, op) in used if slot == s}
    assert result.pruned and all(r.reason and r.hvi >= 0 for r in result.pruned)
    assert all(
        isinstance(b.candidates[r.op], PrunedOp)
        for r in result.pruned
        for b in supernet.blocks_of(r.slot)
    )
    if any(r.op_name.startswith("nor_conv") for r in result.pruned):
        assert sum(p.numel() for p in supernet.parameters()) < before
    assert result.freed_bytes >= 0


def test_selection_along_the_front_labels_and_fills_from_later_ranks() -> None:
    from prp.trainer.search import build_front, knee_index, select_along_front

    space = get_space("nb201", size="tiny")
    paths = [(3,) * 6, (2,) * 6, (1,) * 6, (0,) * 6, (4,) * 6, (3, 3, 3, 2, 2, 2)]
    acc = np.array([90.0, 85.0, 70.0, 10.0, 40.0, 89.0])
    cost = np.array([10.0, 5.0, 1.0, 1.0, 4.0, 8.0])
    front = build_front(space, paths, acc, cost)
    assert [m.pareto_rank for m in front] == [1, 1, 1, 1, 2, 2]
    picks = select_along_front(front, 3)
    assert [label for label, _ in picks] == ["best-accuracy", "best-cost", "optimal"]
    assert picks[0][1].path == (3,) * 6 and picks[1][1].path == (1,) * 6
    assert picks[2][1].path == (2,) * 6  # the knee: 85 % for half the cost of 90 %
    six = select_along_front(front, 6)
    assert [label for label, _ in six][-2:] == ["rank-2", "rank-2"]
    assert len({m.path for _, m in six}) == 6
    assert knee_index(np.array([[90.0, 10.0], [85.0, 5.0], [70.0, 1.0]])) == 1


def test_prune_by_pareto_fills_from_later_ranks_when_the_first_two_are_few() -> None:
    supernet = Supernet(get_space("nb201", size="tiny"))
    # A chain of dominance: each path dominates the next, so ranks 1..5, one path each.
    paths = [(3,) * 6, (2,) * 6, (1,) * 6, (4,) * 6, (0,) * 6]
    points = np.array([[90, 1], [80, 2], [70, 3], [60, 4], [50, 5]], dtype=float)
    assert list(pareto_ranks(points, MAXIMIZE)) == [1, 2, 3, 4, 5]
    result = prune_by_pareto(supernet, paths, points, keep=3)
    # Ranks 1-2 hold 2 paths; rank 3 fills the third place, ranks 4-5 go.
    assert result.kept == [(3,) * 6, (2,) * 6, (1,) * 6]
    for s in range(6):
        assert supernet.live_ops(s) == [1, 2, 3]
    assert {r.op_name for r in result.pruned} == {"none", "avg_pool_3x3"}
    assert all("ranks 1-3" in r.reason for r in result.pruned)
    with pytest.raises(ValueError, match="keep must be at least 1"):
        prune_by_pareto(supernet, paths, points, keep=0)
