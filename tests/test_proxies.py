"""Zero-cost proxies and free baselines: hand-computed values on hand-made nets, independence
from the rest of the supernet, params against the real NB201 table, and the rank aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from prp.trainer.datasets import load_dataset
from prp.trainer.estimation.proxies import (
    FREE_BASELINES,
    PROXIES,
    ProxyBatch,
    free_scores,
    fresh_supernet,
    hamming_kernel,
    linearised,
    naswot_score,
    proxy_batch,
    synflow_score,
)
from prp.trainer.nb201_table import NB201Table
from prp.trainer.profiling import trace_ops
from prp.trainer.spaces import get_space
from prp.trainer.stats import log_rank_aggregate, paired_bootstrap
from prp.trainer.supernet import Supernet
from scipy import stats
from torch import nn


def chain() -> nn.Sequential:
    """Linear(3->2) - BatchNorm - ReLU - Linear(2->1), weights with mixed signs."""
    net = nn.Sequential(
        nn.Linear(3, 2, bias=False), nn.BatchNorm1d(2), nn.ReLU(), nn.Linear(2, 1, bias=False)
    )
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [-1.0, 3.0, 2.0]]))
        net[3].weight.copy_(torch.tensor([[-0.5, 2.0]]))
        # BatchNorm that would change everything if synflow did not bypass it
        net[1].weight.fill_(-7.0)
        net[1].bias.fill_(3.0)
        net[1].running_mean.fill_(5.0)
        net[1].running_var.fill_(0.01)
    return net


def test_synflow_of_a_linear_chain_is_the_product_formula() -> None:
    net = chain()
    before = [p.clone() for p in net.parameters()]
    # With |W| and an all-ones input, R = 1^T |W2| |W1| 1 = 0.5 x 3.5 + 2 x 6 = 13.75. R is
    # linear in each layer's weights, so sum |theta dR/dtheta| over a layer is R itself: two
    # layers give 2R = 27.5 (BatchNorm bypassed, ReLU the identity on positive values).
    assert synflow_score(linearised(net), (3,)) == pytest.approx(27.5, rel=1e-12)
    # Three layers: 3 x (1^T |W3| |W2| |W1| 1).
    deeper = nn.Sequential(*chain(), nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        deeper[4].weight.fill_(-4.0)
    assert synflow_score(linearised(deeper), (3,)) == pytest.approx(3 * 4 * 13.75, rel=1e-12)
    # The net scored is a copy: the original keeps its signs and precision.
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert next(net.parameters()).dtype == torch.float32


def test_naswot_of_constructed_codes() -> None:
    codes = torch.tensor([[1, 0, 1, 1], [1, 1, 0, 1], [0, 0, 0, 0]])
    # K[i, j] = 4 units - Hamming distance: rows 0/1 differ in 2 units, 0/2 and 1/2 in 3.
    k = hamming_kernel([codes])
    assert np.array_equal(k, [[4, 2, 1], [2, 4, 1], [1, 1, 4]])
    # A net whose one ReLU sees exactly those codes (+1 / -1 inputs): log det K = log 44.
    x = codes.float() * 2 - 1
    relu = nn.Sequential(nn.Flatten(), nn.ReLU())
    assert naswot_score(relu, x) == pytest.approx(math.log(44.0), rel=1e-12)
    # A second ReLU with the same codes adds K again: log det 2K = 3 log 2 + log 44.
    identity = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        identity.weight.copy_(torch.eye(4))
    twice = nn.Sequential(nn.Flatten(), nn.ReLU(), identity, nn.ReLU())
    assert naswot_score(twice, x) == pytest.approx(3 * math.log(2) + math.log(44), rel=1e-12)
    # Two images with the same code make K singular.
    assert naswot_score(relu, torch.stack([x[0], x[0], x[1]])) == float("-inf")


def test_naswot_leaves_the_network_as_it_was() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    net.eval()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    naswot_score(net, torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
    assert not net.training
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


@pytest.fixture(scope="module")
def batch() -> ProxyBatch:
    return proxy_batch(load_dataset("default", limit_per_class=10), seed=0, n=16)


def every_proxy(net: Supernet, path: tuple[int, ...], batch: ProxyBatch) -> dict[str, float]:
    """Each registered proxy's scores of `path` on `net` (seed 0)."""
    out: dict[str, float] = {}
    for proxy in PROXIES.values():
        out |= {k: float(v[0]) for k, v in proxy.compute(net, [path], batch, 0, None).items()}
    return out


def test_proxies_depend_only_on_the_paths_own_ops(batch) -> None:
    images = batch.images
    space = get_space("nb201", size="tiny")
    path = (3, 1, 2, 4, 3, 1)  # every op but none
    supernet = fresh_supernet(space, seed=0)
    scores = every_proxy(supernet, path, batch)
    assert set(scores) == set(FREE_BASELINES) - {"params", "macs"}
    # The same seed gives the same weights; another seed other weights and another score.
    again = fresh_supernet(space, seed=0)
    assert every_proxy(again, path, batch) == scores
    other = fresh_supernet(space, seed=1)
    assert every_proxy(other, path, batch)["synflow"] != scores["synflow"]
    # Prune every op the path does not use: nothing the path runs changes, nor its scores.
    for s in range(space.num_slots):
        for op in supernet.live_ops(s):
            if op != path[s]:
                supernet.prune(s, op)
    pruned = every_proxy(supernet, path, batch)
    assert pruned == pytest.approx(scores, rel=1e-9)
    # And they are the scores of the standalone architecture (a plain net of its ops only).
    alone = again.standalone(path)
    assert synflow_score(linearised(alone), images.shape[1:]) == pytest.approx(
        scores["synflow"], rel=1e-12
    )
    assert naswot_score(alone, batch.first()) == pytest.approx(scores["naswot"], rel=1e-12)
    # Order and company do not matter: each path is scored alone.
    paths = [path, (0, 0, 0, 0, 0, 0), (2, 2, 2, 3, 3, 3)]
    forward, _ = free_scores(space, paths, batch, seed=0)
    backward, _ = free_scores(space, paths[::-1], batch, seed=0)
    for name in forward:
        assert np.array_equal(forward[name], backward[name][::-1], equal_nan=True)
    # A path whose output is cut off by `none` edges: no synaptic flow, every code equal,
    # constant (zero) cell outputs, an input Jacobian of zeros and no varying weight gradient.
    assert forward["synflow"][1] == 0.0 and forward["naswot"][1] == float("-inf")
    assert forward["expressivity"][1] == float("-inf") and forward["jacov"][1] == float("-inf")
    assert forward["zico"][1] == 0.0


def test_params_rank_like_the_tables_params_mb_on_every_nb201_row(nb201_csv) -> None:
    table = NB201Table.load(nb201_csv)
    space = get_space("nb201")  # the benchmark's own network: 16 channels, 5 cells per stage
    paths = [space.decode(a) for a in table.arch_strs]
    ours = trace_ops(fresh_supernet(space, seed=0)).params().many(paths)
    mb = table.column("params_MB")
    # The table stores MB (1e6 parameters) to 6 significant digits.
    same = np.array([float(f"{v / 1e6:.6g}") for v in ours]) == mb
    # About 1 % of the table's rows (150 of 15,625 here) carry another architecture's count
    # (e.g. 129,306 for a cell with three 1x1 convolutions, which has 157,306 parameters).
    assert same.mean() > 0.98
    assert np.array_equal(stats.rankdata(ours[same]), stats.rankdata(mb[same]))
    assert stats.kendalltau(ours, mb, variant="b").statistic > 0.99


def test_log_rank_aggregate_by_hand() -> None:
    # Two members over N = 3 items; ascending ranks (3 = best): a -> 1, 2, 3; b -> 3, 1, 2.
    a, b = [0.1, 0.5, 0.9], [9.0, -1.0, 2.0]
    got = log_rank_aggregate([a, b])
    expected = [math.log(1 / 3) + math.log(3 / 3), math.log(2 / 3) + math.log(1 / 3)]
    expected.append(math.log(3 / 3) + math.log(2 / 3))
    assert got == pytest.approx(expected)
    # Consensus: item 2 (ranks 3 and 2) beats item 0 (ranks 1 and 3), whose worst rank weighs.
    assert got[2] > got[0] > got[1]
    # Ties share the average rank; -inf ranks last; a NaN is refused.
    assert log_rank_aggregate([[1.0, 1.0]]) == pytest.approx([math.log(0.75)] * 2)
    assert np.argmin(log_rank_aggregate([[float("-inf"), 0.0, 1.0]])) == 0
    with pytest.raises(ValueError, match="NaN"):
        log_rank_aggregate([[1.0, float("nan")]])


def test_paired_bootstrap_pairs_one_statistic_with_several_baselines() -> None:
    x = np.arange(20.0)

    def statistics(idx: np.ndarray) -> dict[str, float]:
        return {"a": float(x[idx].mean()), "b": float(x[idx].mean() - 1), "c": float("nan")}

    boot = paired_bootstrap(statistics, 20, [("a", "b"), ("a", "c")], resamples=50, seed=0)
    # a - b is exactly 1 on every resample; a - c is never defined.
    assert boot["against"]["a - b"]["ci95"] == pytest.approx([1.0, 1.0])
    assert boot["against"]["a - b"]["p_not_better"] == 0.0
    assert all(math.isnan(v) for v in boot["against"]["a - c"]["ci95"])
