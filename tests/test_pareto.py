"""Pareto math against brute force (hypothesis) and hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prp.trainer.pareto import (
    greedy_hypervolume_subset,
    hypervolume,
    hypervolume_improvement,
    is_nondominated,
    kendall_tau_b,
    pareto_ranks,
)


def brute_force_ranks(points: np.ndarray, maximize: list[bool]) -> np.ndarray:
    """Paper eq. 1 by definition: peel off the non-dominated set, again and again."""
    sign = np.where(maximize, -1.0, 1.0)
    p = points * sign  # all minimised

    def dominates(a: np.ndarray, b: np.ndarray) -> bool:
        return bool(np.all(a <= b) and np.any(a < b))

    ranks = np.zeros(len(p), dtype=int)
    left = set(range(len(p)))
    rank = 1
    while left:
        front = {i for i in left if not any(dominates(p[j], p[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


points_strategy = st.integers(1, 4).flatmap(
    lambda d: st.tuples(
        st.lists(st.lists(st.integers(-5, 5), min_size=d, max_size=d), min_size=1, max_size=30),
        st.lists(st.booleans(), min_size=d, max_size=d),
    )
)


@settings(max_examples=200, deadline=None)
@given(points_strategy)
def test_pareto_ranks_match_the_definition(data) -> None:
    rows, maximize = data
    points = np.array(rows, dtype=float)  # small integers: many ties and duplicates
    ranks = pareto_ranks(points, maximize)
    np.testing.assert_array_equal(ranks, brute_force_ranks(points, maximize))
    np.testing.assert_array_equal(is_nondominated(points, maximize), ranks == 1)


def test_ranks_of_accuracy_and_energy() -> None:
    # (accuracy %, energy mJ): accuracy maximised, energy minimised.
    pts = [[94.0, 30.0], [90.0, 20.0], [89.0, 25.0], [85.0, 10.0], [80.0, 12.0], [94.0, 30.0]]
    assert list(pareto_ranks(pts, [True, False])) == [1, 1, 2, 1, 2, 1]


def test_hypervolume_hand_cases() -> None:
    staircase = [[1, 3], [2, 2], [3, 1]]
    assert hypervolume(staircase, [4, 4], maximize=False) == pytest.approx(6.0)
    # A dominated point and a point beyond the reference add nothing.
    assert hypervolume(staircase + [[3, 3], [5, 0]], [4, 4], False) == pytest.approx(6.0)
    # Mixed directions: accuracy up from 0, energy down from 3.
    assert hypervolume([[90, 2], [80, 1]], [0, 3], [True, False]) == pytest.approx(170.0)
    # 3-D: a unit cube corner.
    assert hypervolume([[0, 0, 0]], [1, 2, 3], False) == pytest.approx(6.0)
    assert hypervolume(np.zeros((0, 2)), [1, 1], False) == 0.0
    with pytest.raises(ValueError, match="does not match 2 objectives"):
        hypervolume(staircase, [4, 4, 4], False)
    with pytest.raises(ValueError, match="NaN"):
        hypervolume([[1, math.nan]], [4, 4], False)


def test_hypervolume_improvement_eq3() -> None:
    front = [[1, 3], [2, 2], [3, 1]]
    # Removing the middle point loses the unit square it alone dominates.
    assert hypervolume_improvement(front, [[2, 2]], [4, 4], False) == pytest.approx(1.0)
    # A new point adds what it dominates beyond the front: [1.5,2)x[1.5,3) and [2,3)x[1.5,2).
    gain = hypervolume_improvement(front, [[1.5, 1.5]], [4, 4], False)
    assert gain == pytest.approx(hypervolume(front + [[1.5, 1.5]], [4, 4], False) - 6.0)
    assert gain == pytest.approx(0.5 * 1.5 + 1.0 * 0.5)
    assert hypervolume_improvement(front, np.zeros((0, 2)), [4, 4], False) == pytest.approx(0.0)


def test_greedy_hypervolume_subset() -> None:
    pts = [[1, 3], [2, 2], [3, 1], [2.1, 2.1], [1, 3.5]]
    chosen = greedy_hypervolume_subset(pts, 2, [4, 4], False)
    assert chosen == [1, 0]  # (2,2) alone covers 4; then (1,3) adds 1 (ties broken by order)
    assert sorted(greedy_hypervolume_subset(pts, 10, [4, 4], False)) == [0, 1, 2, 3, 4]


def test_kendall_tau_b_hand_cases() -> None:
    assert kendall_tau_b([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # 4 concordant pairs, 2 ties in the first ranking: 4 / sqrt((6 - 2) * 6).
    assert kendall_tau_b([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(4 / math.sqrt(24))
    with pytest.raises(ValueError, match="one length"):
        kendall_tau_b([1, 2], [1, 2, 3])
