"""Paired tests that decide which exported paths may stand on the battery and schedule ladders.

A costlier path earns its rung only if it is measurably more accurate than every cheaper path
on the ladder. "Measurably" is an exact McNemar test: on the same held-out images (never used
to train a weight), the images only the costlier path gets right against those only the cheaper
one gets right, a one-sided binomial test at level `ALPHA`. The runtime reads the recorded
outcomes (`prp.runtime.policies.passed_pairs`) and builds the ladder from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from prp.runtime.policies import COST_FIELDS
from scipy.stats import binomtest
from torch import Tensor, nn

ALPHA = 0.05
METHOD = (
    "exact McNemar test, one-sided: a binomial test of the held-out images only the costlier "
    "path classifies right against those only the cheaper one does"
)


@torch.no_grad()
def correct_on(module: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> np.ndarray:
    """Per image of (x, y): whether `module` classifies it right. The module is run as given
    (the exporter's are in eval mode already; an int8 PT2E module refuses `.eval()`)."""
    hits = [
        (module(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).numpy()
        for i in range(0, len(y), batch_size)
    ]
    return np.concatenate(hits) if hits else np.zeros(0, dtype=bool)


def mcnemar_p(only_upper: int, only_lower: int) -> float:
    """One-sided exact McNemar p-value that the upper path is more accurate: the chance of at
    least `only_upper` of the discordant images going its way if both were equally good."""
    n = only_upper + only_lower
    if n == 0:
        return 1.0
    return float(binomtest(only_upper, n, 0.5, alternative="greater").pvalue)


def ladder_tests(
    cost: Mapping[str, float],
    correct: Mapping[str, np.ndarray],
    split: str,
    alpha: float = ALPHA,
) -> dict[str, object]:
    """Every pair (path, strictly cheaper path) tested on the images `correct` covers; the
    manifest's `ladder_tests` record. `split` says which images those are."""
    ids = list(cost)
    sizes = {len(correct[i]) for i in ids}
    if len(sizes) != 1:
        raise ValueError(f"paths were measured on different image counts: {sorted(sizes)}")
    pairs = []
    for upper in ids:
        for lower in ids:
            if not cost[lower] < cost[upper]:
                continue
            a, b = correct[upper], correct[lower]
            only_upper, only_lower = int((a & ~b).sum()), int((~a & b).sum())
            p = mcnemar_p(only_upper, only_lower)
            pairs.append(
                {
                    "path": upper,
                    "cheaper": lower,
                    "only_path_right": only_upper,
                    "only_cheaper_right": only_lower,
                    "p_value": p,
                    "more_accurate": bool(p < alpha),
                }
            )
    return {
        "method": METHOD,
        "alpha": alpha,
        "images": sizes.pop() if sizes else 0,
        "split": split,
        "pairs": pairs,
    }


def bundle_ladder_tests(
    entries: Sequence[Mapping[str, Any]],
    modules: Mapping[str, nn.Module],
    x: Tensor,
    y: Tensor,
    objective: str,
) -> dict[str, object] | None:
    """The `ladder_tests` record of a bundle: its paths (manifest `entries`, run by `modules`,
    what the backends run) tested pairwise on the held-out images (x, y), priced by the
    objective's cost. None where there are no held-out images or a path has no such cost: the
    ladder is then the non-dominated paths alone."""
    field = COST_FIELDS[objective][0]
    if len(y) == 0 or any(e.get(field) is None for e in entries):
        return None
    cost = {str(e["id"]): float(e[field]) for e in entries}
    correct = {pid: correct_on(modules[pid], x, y) for pid in cost}
    split = (
        f"the run's validation split: {len(y)} images held out of the train images, never "
        "used to train a weight; the test images only report"
    )
    return ladder_tests(cost, correct, split)
