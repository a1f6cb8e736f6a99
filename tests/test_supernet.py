"""Supernet verbs on real (tiny) networks: sampling, alpha, pruning, BatchNorm recalibration."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from prp.trainer.errors import PathError
from prp.trainer.spaces import PrunedOp, get_space, list_spaces
from prp.trainer.supernet import Supernet


# DARTS' nodes keep two inputs each, which rules strict fairness out (test_darts.py tests the
# nearest group it samples instead).
@pytest.mark.parametrize("name", [n for n in list_spaces() if n != "darts"])
def test_strict_fair_sampling_uses_every_op_once(name: str) -> None:
    supernet = Supernet(get_space(name, size="tiny"))
    rng = np.random.default_rng(0)
    for _ in range(5):
        paths = supernet.sample_fair(rng)
        m = max(len(s.ops) for s in supernet.space.slots)
        assert len(paths) == m
        for s, slot in enumerate(supernet.space.slots):
            counts = Counter(p[s] for p in paths)
            assert set(counts) == set(range(len(slot.ops)))
            if len(slot.ops) == m:
                assert all(c == 1 for c in counts.values())  # strict fairness
            else:  # narrower slots: as even as possible
                assert max(counts.values()) - min(counts.values()) <= 1


def test_fair_sampling_after_pruning_covers_live_ops_only() -> None:
    supernet = Supernet(get_space("nb201", size="tiny"))
    supernet.prune(0, 3)
    supernet.prune(0, 4)
    paths = supernet.sample_fair(np.random.default_rng(0))
    assert len(paths) == 5  # other slots still have 5 ops
    assert Counter(p[0] for p in paths).keys() == {0, 1, 2}
    assert all(supernet.validate(p) == p for p in paths)


def test_uniform_sampling_draws_every_live_op() -> None:
    supernet = Supernet(get_space("nb201", size="tiny"))
    supernet.prune(2, 1)
    rng = np.random.default_rng(0)
    seen = Counter(supernet.sample_uniform(rng)[2] for _ in range(500))
    assert set(seen) == {0, 2, 3, 4}
    assert min(seen.values()) > 80  # roughly uniform over 4 ops


def test_prune_frees_weights_and_refuses_the_pruned_op() -> None:
    supernet = Supernet(get_space("nb201", size="tiny"))
    before = sum(p.numel() for p in supernet.parameters())
    freed = supernet.prune(4, 3)  # nor_conv_3x3 on edge 3<-1, in every cell
    after = sum(p.numel() for p in supernet.parameters())
    assert freed > 0 and after < before
    assert (before - after) * 4 <= freed  # parameters are part of what was freed (BN buffers too)
    assert all(isinstance(b.candidates[3], PrunedOp) for b in supernet.blocks_of(4))
    assert not supernet.op_mask[4, 3]
    with pytest.raises(PathError, match="was pruned"):
        supernet.validate((0, 0, 0, 0, 3, 0))
    x = torch.randn(2, 3, 32, 32)
    supernet(x, (0, 0, 0, 0, 2, 0))  # the other ops still run


def test_cannot_prune_last_op_or_twice() -> None:
    supernet = Supernet(get_space("nb201", size="tiny"))
    for op in range(4):
        supernet.prune(1, op)
    with pytest.raises(PathError, match="last op"):
        supernet.prune(1, 4)
    with pytest.raises(PathError, match="not a live op"):
        supernet.prune(1, 0)
    assert supernet.live_ops(1) == [4]


def test_argmax_path_and_scores_follow_alpha() -> None:
    supernet = Supernet(get_space("nb201", size="tiny"))
    with torch.no_grad():
        supernet.alpha[:, 2] = 1.0
        supernet.alpha[0, 3] = 2.0
    assert supernet.argmax_path() == (3, 2, 2, 2, 2, 2)
    supernet.prune(0, 3)  # a pruned op never wins, whatever its alpha was
    assert supernet.argmax_path()[0] == 2
    scores = supernet.path_scores([(2, 2, 2, 2, 2, 2), (0, 0, 0, 0, 0, 0)])
    torch.testing.assert_close(scores, torch.tensor([6.0, 0.0]))
    scores[0].backward()
    assert supernet.alpha.grad is not None
    assert supernet.alpha.grad[:, 2].eq(1).all() and supernet.alpha.grad.sum() == 6


def test_recalibrate_bn_gives_the_path_its_own_statistics() -> None:
    torch.manual_seed(0)
    supernet = Supernet(get_space("nb201", size="tiny"))
    path = (3, 3, 3, 3, 3, 3)
    batches = [torch.randn(8, 3, 32, 32) * 2 + 1 for _ in range(3)]
    seen = supernet.recalibrate_bn(path, batches)
    assert seen == 24
    stem_bn = supernet.net.stem[1]
    # The stem's statistics are exactly those of its conv outputs over all 24 images.
    with torch.no_grad():
        conv_out = torch.cat([supernet.net.stem[0](b) for b in batches])
    torch.testing.assert_close(stem_bn.running_mean, conv_out.mean(dim=(0, 2, 3)))
    assert stem_bn.momentum == 0.1  # restored
    with pytest.raises(ValueError, match="no batches"):
        supernet.recalibrate_bn(path, [])
