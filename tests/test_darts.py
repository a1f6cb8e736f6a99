"""The DARTS space: genotype notation, the two-inputs-per-node rule in every path the supernet
samples, ranks or prunes to, analytic energy of every op, and a real tiny run."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from prp.trainer.config import preset
from prp.trainer.costs import get_cost_model, price_supernet
from prp.trainer.datasets import load_dataset
from prp.trainer.errors import PathError, UnknownNameError
from prp.trainer.pareto import is_nondominated
from prp.trainer.profiling import trace_ops
from prp.trainer.runs import RunLog
from prp.trainer.spaces import get_space
from prp.trainer.spaces.darts import EDGES, NONE, OPS, parse_genotype, reduction_cells
from prp.trainer.supernet import Supernet
from prp.trainer.train import Trainer
from torch import nn

# Liu et al., ICLR 2019: the published CIFAR-10 cell (genotypes.py of the DARTS code).
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
DARTS_V1 = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"
)
# One op per edge: a node cannot read the same input twice.
TWICE = DARTS_V2.replace(
    "normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)",
    "normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 0)",
)


@pytest.fixture(scope="module")
def space():
    return get_space("darts", size="tiny")


def edges_of(genotype_cell: list[tuple[str, int]]) -> set[tuple[int, str, int]]:
    return {(k // 2, op, inp) for k, (op, inp) in enumerate(genotype_cell)}


def kept_inputs(path: tuple[int, ...]) -> list[int]:
    """How many non-none inputs each of the 8 nodes keeps."""
    counts: Counter[tuple[int, int]] = Counter()
    for s, op in enumerate(path):
        node = EDGES[s % len(EDGES)][0]
        counts[(s // len(EDGES), node)] += op != NONE
    return [counts[(c, n)] for c in range(2) for n in range(4)]


def test_the_paper_preset_takes_table_5s_darts_row() -> None:
    cfg = preset("paper", space="darts")
    assert (cfg.epochs_fair, cfg.epochs_pareto, cfg.samples, cfg.batch_size, cfg.lr) == (
        30,
        150,
        100,
        256,
        0.025,
    )


def test_the_default_preset_searches_darts_at_a_proxy_size() -> None:
    """`prp-train --space darts`: 8 channels, 5 cells (reductions at 1/3 and 2/3), 2 + 4
    epochs from scratch; the tiny size, given cells and the paper preset keep their own."""
    cfg = preset("default", space="darts")
    assert cfg.space_overrides == {"channels": 8, "cells": 5}
    assert (cfg.epochs_fair, cfg.epochs_pareto, cfg.init) == (2, 4, "scratch")
    assert (cfg.prune_after, cfg.target_pool, cfg.final_samples) == (2, 64, 64)
    cfg.validate()
    built = get_space(cfg.space, size=cfg.space_size, **cfg.space_overrides)
    assert (built.channels, built.cells) == (8, 5)
    # reductions at 1/3 and 2/3 of the depth: normal, reduction, normal, reduction, normal
    assert sorted(reduction_cells(built.cells)) == [1, 3]
    assert preset("default", space="darts", space_size="tiny").space_overrides == {}
    given = preset("default", space="darts", space_overrides={"channels": 16, "cells": 8})
    assert given.space_overrides == {"channels": 16, "cells": 8}
    assert preset("paper", space="darts").space_overrides == {}
    assert preset("default").space_overrides == {"channels": 8, "cells_per_stage": 2}


def test_sizes_and_path_count() -> None:
    real, tiny = get_space("darts"), get_space("darts", size="tiny")
    assert (real.channels, real.cells, real.input_shape) == (16, 8, (3, 32, 32))
    assert real.num_slots == 28 and all(s.ops == OPS for s in real.slots)
    # Per cell: node j chooses 2 of j + 2 inputs, 7 ops each: (1 x 3 x 6 x 10) x 7^8; squared.
    assert real.num_paths == (1 * 3 * 6 * 10 * 7**8) ** 2 == tiny.num_paths  # ~1e18
    assert Supernet(tiny).count_paths() == tiny.num_paths


def test_published_genotypes_round_trip(space) -> None:
    v1 = space.decode(DARTS_V1)  # a node may list its inputs in any order (DARTS sorts by weight)
    assert space.decode(space.encode(v1)) == v1
    assert edges_of(space.to_genotype(v1).normal) == edges_of(parse_genotype(DARTS_V1).normal)
    path = space.decode(DARTS_V2)
    assert kept_inputs(path) == [2] * 8
    published = parse_genotype(DARTS_V2)
    ours = space.to_genotype(path)
    assert edges_of(ours.normal) == edges_of(published.normal)
    assert edges_of(ours.reduce) == edges_of(published.reduce)
    assert list(ours.normal_concat) == [2, 3, 4, 5]
    text = space.encode(path)
    assert text.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)")
    assert "normal_concat=range(2, 6)" in text and space.decode(text) == path
    assert space.from_genotype(published) == path
    # Node 4 of the normal cell reads input 0 by skip_connect and input 1 by sep_conv_3x3.
    assert space.op_names(path)[EDGES.index((2, 0))] == "skip_connect"
    assert space.op_names(path)[EDGES.index((2, 1))] == "sep_conv_3x3"


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        (TWICE, PathError, "node 2 reads input 0 twice"),
        (
            DARTS_V2.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[4, 5]"),
            PathError,
            "concat",
        ),
        (DARTS_V2.replace("('dil_conv_3x3', 2)", "('none', 2)"), PathError, "'none' edge"),
        (
            DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"),
            PathError,
            "node 5 reads input 5; it can read 0..4",
        ),
        (DARTS_V2.replace("('dil_conv_3x3', 2)]", "]"), PathError, "lists 7 edges"),
        (DARTS_V2.replace("dil_conv_3x3", "conv_9x9"), UnknownNameError, "conv_9x9"),
        ("Genotype(normal=[", PathError, "cannot read DARTS genotype"),
        ("__import__('os').system('true')", PathError, "cannot read DARTS genotype"),
    ],
)
def test_bad_genotypes_are_refused_in_one_line(space, text, error, match) -> None:
    with pytest.raises(error, match=match) as info:
        space.decode(text)
    assert "\n" not in str(info.value)


def test_paths_breaking_the_two_inputs_rule_are_refused(space) -> None:
    good = space.decode(DARTS_V2)
    three = list(good)
    three[EDGES.index((1, 2))] = OPS.index("sep_conv_3x3")  # node 3 now reads states 0, 1 and 2
    one = list(good)
    one[len(EDGES) + EDGES.index((0, 1))] = NONE  # reduction node 2 keeps input 0 only
    supernet = Supernet(space)
    for bad, match in ((three, "node 3 of the normal cell keeps 3 inputs"), (one, "keeps 1")):
        with pytest.raises(PathError, match=match) as info:
            supernet(torch.zeros(1, *space.input_shape), bad)
        assert "\n" not in str(info.value)
    with pytest.raises(PathError, match="keeps 0 inputs"):
        space.validate((NONE,) * space.num_slots)


def test_uniform_samples_are_valid_and_spread_over_input_pairs(space) -> None:
    supernet = Supernet(space)
    rng = np.random.default_rng(0)
    paths = [supernet.sample_uniform(rng) for _ in range(1000)]
    assert all(kept_inputs(p) == [2] * 8 for p in paths)
    node5 = [s for s, (node, _) in enumerate(EDGES) if node == 3]  # 5 inputs: 10 pairs
    pairs = Counter(tuple(s for s in node5 if p[s] != NONE) for p in paths)
    assert len(pairs) == 10 and min(pairs.values()) > 60  # ~100 each
    ops = Counter(p[0] for p in paths)  # node 2 keeps both inputs: never none
    assert set(ops) == set(range(1, 8)) and min(ops.values()) > 100


def test_fair_groups_are_valid_and_as_fair_as_the_rule_allows(space) -> None:
    supernet = Supernet(space)
    rng = np.random.default_rng(0)
    for _ in range(20):
        group = supernet.sample_fair(rng)
        assert len(group) == 7 and all(kept_inputs(p) == [2] * 8 for p in group)
        for cell in range(2):
            for node in range(4):
                slots = [cell * 14 + k for k, (n, _) in enumerate(EDGES) if n == node]
                kept = [sum(p[s] != NONE for p in group) for s in slots]
                assert max(kept) - min(kept) <= 1  # inputs kept evenly
                for s in slots:  # an edge kept c times uses c distinct ops
                    ops = [p[s] for p in group if p[s] != NONE]
                    assert len(set(ops)) == len(ops)
                if node == 0:  # both inputs always kept: every op once (strict fairness)
                    assert all(sorted(p[s] for p in group) == list(range(1, 8)) for s in slots)


def test_pruning_keeps_a_valid_path_and_sampling_respects_the_mask(space) -> None:
    supernet = Supernet(space)
    node3 = [EDGES.index((1, i)) for i in range(3)]  # EDGES counts nodes from 0
    supernet.prune(node3[0], NONE)  # node 3 must now keep input 0 ...
    supernet.prune(node3[1], NONE)  # ... and input 1
    with pytest.raises(PathError, match="no valid path"):
        supernet.prune(node3[2], NONE)  # three forced inputs: refused, one line
    for op in range(1, 7):
        supernet.prune(0, op)  # node 2's input 0: dil_conv_5x5 alone
    with pytest.raises(PathError, match="no valid path"):
        supernet.prune(0, 7)  # none only would leave node 2 one input
    rng = np.random.default_rng(1)
    paths = [supernet.sample_uniform(rng) for _ in range(200)]
    paths += [p for _ in range(10) for p in supernet.sample_fair(rng)]
    for p in paths:
        assert supernet.validate(p) == p and p[0] == 7 and p[node3[2]] == NONE


def test_argmax_path_is_the_best_valid_path_by_alpha(space) -> None:
    supernet = Supernet(space)
    rng = np.random.default_rng(2)
    with torch.no_grad():
        supernet.alpha.copy_(torch.from_numpy(rng.normal(size=supernet.alpha.shape)))
    # Leave few ops so that every valid path can be listed and scored.
    for s in range(space.num_slots):
        for op in range(2, 8):
            supernet.prune(s, op)  # none and max_pool_3x3 left everywhere
    paths = supernet.space.all_paths(supernet.live())
    assert len(paths) == len(set(paths)) == supernet.count_paths() == (1 * 3 * 6 * 10) ** 2
    scores = supernet.path_scores(paths).detach().numpy()
    best = paths[int(np.argmax(scores))]
    assert supernet.argmax_path() == best
    assert supernet.validate(supernet.first_path())


def _independent_macs(net: nn.Module, x: torch.Tensor) -> int:
    """MACs of a plain network counted by hooks on its layers, not through the trace."""
    total = [0]

    def hook(m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(m, nn.Conv2d):
            total[0] += out.numel() * m.in_channels // m.groups * m.kernel_size[0] ** 2
        elif isinstance(m, nn.Linear):
            total[0] += out.numel() * m.in_features
        elif isinstance(m, (nn.BatchNorm2d, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d)):
            total[0] += args[0].numel()

    hooks = [m.register_forward_hook(hook) for m in net.modules()]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return total[0]


def test_analytic_energy_prices_every_op_and_adds_up() -> None:
    supernet = Supernet(get_space("darts")).eval()  # the real size, C=16, 8 cells
    trace = trace_ops(supernet)
    energy = price_supernet(supernet, get_cost_model("analytic", "energy"))
    cost = {op: energy.per_op[:, k] for k, op in enumerate(OPS)}
    stride2 = np.array([c == 1 and inp < 2 for c in range(2) for _, inp in EDGES])
    assert (cost["none"] == 0).all()
    assert (cost["skip_connect"][~stride2] == 0).all()  # identity
    assert (cost["skip_connect"][stride2] > 0).all()  # FactorizedReduce
    for op in OPS[1:3] + OPS[4:]:
        assert (cost[op] > 0).all(), op
    assert (cost["sep_conv_5x5"] > cost["sep_conv_3x3"]).all()
    assert (cost["dil_conv_5x5"] > cost["dil_conv_3x3"]).all()
    assert (cost["sep_conv_3x3"] > cost["dil_conv_3x3"]).all()  # two stacks against one
    # A path's figures are the fixed part plus one per (slot, op), and that sum is what its
    # own network computes: MACs counted on standalone networks agree exactly.
    macs = trace.macs()
    rng = np.random.default_rng(0)
    x = torch.zeros(1, *supernet.space.input_shape)
    paths = [supernet.space.decode(DARTS_V2)] + [supernet.sample_uniform(rng) for _ in range(2)]
    for path in paths:
        assert macs(path) == _independent_macs(supernet.standalone(path), x)
        parts = energy.per_op[np.arange(len(path)), list(path)]
        assert energy(path) == pytest.approx(energy.fixed + parts.sum())
        assert energy(path) > energy.fixed > 0


def test_tiny_darts_run_trains_prunes_and_finds_a_front(tmp_path) -> None:
    cfg = preset("tiny", space="darts", limit_per_class=10, epochs_fair=1, bn_batches=1)
    data = load_dataset("default", limit_per_class=10)
    trainer = Trainer(cfg, tmp_path, data=data)
    front = trainer.run()
    trainer.write_front(front)
    records = RunLog(tmp_path / "log.jsonl").records()
    epochs = [r for r in records if r.get("event") == "epoch"]
    assert [r["stage"] for r in epochs] == ["fair", "pareto", "pareto"]
    assert all(np.isfinite(r["task_loss"]) for r in epochs)
    assert epochs[0]["path_steps"] == 7 * epochs[1]["path_steps"]  # groups of 7 paths
    assert np.abs(np.array(epochs[-1]["alpha"])).max() > 0  # the Pareto-rank stage ran
    assert any(r.get("event") == "pruned" for r in records)
    supernet = trainer.supernet
    assert epochs[-1]["ops_left"] < 28 * 8 and supernet.count_paths() >= 1
    assert front and all(m.pareto_rank >= 1 for m in front)
    for m in front:  # every path found is a valid DARTS genotype the pruned supernet runs
        assert supernet.validate(m.path) == m.path and m.key == supernet.space.encode(m.path)
        assert m.cost > 0
    first = np.array([[m.accuracy, m.cost] for m in front if m.pareto_rank == 1])
    assert is_nondominated(first, [True, False]).all()
    assert (tmp_path / "front.json").exists()
