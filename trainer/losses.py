"""The alpha losses of the paper (section 3.2): listwise Pareto-ranking loss, eq. 2 hinge loss."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from .supernet import Supernet


def rank_target(ranks: Sequence[int] | np.ndarray, temperature: float = 1.0) -> Tensor:
    """Target distribution over paths from their Pareto ranks: softmax(-rank / temperature).

    Rank 1 paths get the most mass; paths of one rank get equal mass.
    """
    r = torch.as_tensor(np.asarray(ranks, dtype=np.float64), dtype=torch.float32)
    return torch.softmax(-r / temperature, dim=0)


def listwise_ranking_loss(
    scores: Tensor, ranks: Sequence[int] | np.ndarray, temperature: float = 1.0
) -> Tensor:
    """Cross-entropy between softmax of the path scores P_s and the Pareto-rank target (ListNet)."""
    if scores.ndim != 1 or len(scores) != len(ranks):
        raise ValueError(f"{len(scores)} scores for {len(ranks)} ranks; give one score per path")
    target = rank_target(ranks, temperature).to(scores.device)
    return -(target * torch.log_softmax(scores, dim=0)).sum()


def op_counts(paths: Sequence[Sequence[int]], num_slots: int, width: int) -> np.ndarray:
    """counts[slot, op]: how many of `paths` use `op` at `slot` (g and g-hat of eq. 2)."""
    counts = np.zeros((num_slots, width))
    for p in paths:
        counts[np.arange(num_slots), list(p)] += 1
    return counts


def hinge_loss(
    alpha: Tensor,
    op_mask: Tensor,
    paths: Sequence[Sequence[int]],
    scores: Tensor,
    true_ranks: Sequence[int] | np.ndarray,
    top_n: int,
    margin: float | None = None,
) -> Tensor:
    """Eq. 2: sum over slots j and ops i != argmax(alpha_j) with g(i, j) > g-hat(i, j) of
    max[0, m - g(argmax alpha_j, j) - g-hat(i, j)].

    g counts ops among the top-N paths by predicted score, g-hat among the top-N by true Pareto
    rank. Counts are integers and carry no gradient, so g is made soft: each path's share of the
    predicted top-N is N x softmax(P_s), and g(i, j) sums the shares of the paths using op i at
    slot j. The hard counts decide which terms are active (g > g-hat), the soft counts carry the
    gradient into alpha. The margin m defaults to N (the best op should be in every top-N path).
    Normalised by N so the loss does not grow with it.
    """
    n_paths = len(paths)
    if not 1 <= top_n <= n_paths:
        raise ValueError(f"top_n={top_n} must be between 1 and the number of paths ({n_paths})")
    m = float(top_n) if margin is None else margin
    num_slots, width = alpha.shape
    order_pred = np.argsort(-scores.detach().cpu().numpy(), kind="stable")[:top_n]
    order_true = np.argsort(np.asarray(true_ranks), kind="stable")[:top_n]
    g_hard = op_counts([paths[k] for k in order_pred], num_slots, width)
    g_true = op_counts([paths[k] for k in order_true], num_slots, width)

    share = top_n * torch.softmax(scores, dim=0)  # soft membership of the predicted top-N
    onehot = torch.zeros(n_paths, num_slots, width, device=alpha.device)
    idx = torch.as_tensor([list(p) for p in paths], device=alpha.device)
    onehot.scatter_(2, idx.unsqueeze(2), 1.0)
    g_soft = torch.einsum("p,psw->sw", share, onehot)

    best = alpha.detach().masked_fill(~op_mask, float("-inf")).argmax(dim=1)
    active = torch.as_tensor(g_hard > g_true, device=alpha.device) & op_mask
    active[torch.arange(num_slots), best] = False
    g_best = g_soft[torch.arange(num_slots), best].unsqueeze(1)
    terms = torch.relu(
        m - g_best - torch.as_tensor(g_true, dtype=g_soft.dtype, device=alpha.device)
    )
    return (terms * active).sum() / top_n


def alpha_loss(
    supernet: Supernet,
    paths: Sequence[Sequence[int]],
    ranks: Sequence[int] | np.ndarray,
    temperature: float,
    hinge_weight: float,
    top_n: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Stage 2's loss on the supernet's alpha for `paths` of Pareto `ranks`: listwise ranking
    loss + hinge_weight x eq. 2 hinge loss, both on P_s. Returns (total, listwise, hinge)."""
    scores = supernet.path_scores(paths)
    l_rank = listwise_ranking_loss(scores, ranks, temperature)
    l_hinge = hinge_loss(supernet.alpha, supernet.op_mask, paths, scores, ranks, top_n)
    return l_rank + hinge_weight * l_hinge, l_rank, l_hinge
