"""DARTS: cells of 4 intermediate nodes over 14 edges, 8 ops per edge, normal and reduction cells.

Skeleton (Liu et al., ICLR 2019, the CIFAR-10 network): a 3x3 conv stem to 3C channels; a chain
of cells, each reading the two cells before it (`c_{k-2}`, `c_{k-1}`) through 1x1 ReLU-conv-BN
preprocessing (a FactorizedReduce where `c_{k-2}` is at twice the resolution); reduction cells
at 1/3 and 2/3 of the depth halve the resolution and double C; each cell concatenates its 4
intermediate nodes (4C channels out); global average pooling and a linear classifier.

Every normal cell shares one genotype and every reduction cell another, as DARTS derives them.

Slots: the 14 edges of the normal cell, then the 14 edges of the reduction cell (28 slots);
each slot's ops are DARTS' 8 primitives, `none` first. Numbering and edge order are DARTS':
states 0 (`c_{k-2}`) and 1 (`c_{k-1}`) are the cell's inputs, states 2..5 its nodes, and node n
reads states 0..n-1 (slot `normal.node4<-2` is the edge from node 2 to node 4).

Why one slot per edge, with `none` an op, and not a slot per node for its input pair plus op
slots: a path's cost must add up over (slot, op) pairs (`PathTable`, the paper's per-op LUT,
pruning by (slot, op)). With an input-pair slot, the cost of an op slot would depend on which
input it reads (in a reduction cell, inputs 0 and 1 are read at stride 2 and the nodes at
stride 1, and a skip there is a FactorizedReduce, not an identity): not additive. With one slot
per edge, each (edge, op) has one fixed module at one fixed shape, so costs stay additive and
`none` costs nothing. The price is a constraint between slots, which the space enforces through
the path hooks of `SearchSpace` the supernet samples, ranks and prunes through:

- `validate` refuses a path where a node does not keep exactly two non-`none` inputs;
- `sample` draws, per node, a pair of inputs uniformly among the pairs the live ops allow, then
  each kept edge's op uniformly among its live non-`none` ops (DARTS' random-search sampler);
- `sample_fair`: FairNAS' strict fairness (every op of every slot once per m paths) cannot hold
  here (node 0 has two inputs, both always kept, so its edges never use `none`, while node 3's
  five edges each use `none` in 3 paths out of 5). A group is the closest that holds: m = the
  most live non-`none` ops of any edge (7 unpruned); within a node, the kept inputs are spread
  so that no edge is kept more than once more than another, and an edge kept c times uses c
  distinct live ops (each op once where c is the number of its live ops: node 0 exactly);
- `best_path` is the exact arg-max of P_s (sum of alpha) over valid paths: per node, the pair
  maximising its kept edges' best non-`none` alpha plus the other edges' `none` alpha;
- `count_paths` / `all_paths` count and list valid paths only, and the supernet refuses to prune
  an op when no valid path would be left (pruning to the ops of kept valid paths never does).

Sizes: `real` is DARTS' CIFAR-10 search network (C=16, 8 cells, 32 px, 10 classes); `tiny`
(C=4, 3 cells: normal, reduction, reduction) is for tests.
"""

from __future__ import annotations

import ast
import itertools
import math
from collections import namedtuple
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import PathError
from .base import SPACES, ChoiceBlock, Path, Priced, SearchSpace, Shape, Slot

OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
NONE = 0
NODES = 4
# Edges of a cell in DARTS' order, as (node index 0..3, the state it reads 0..node+1); node
# index i is DARTS' state i + 2.
EDGES = tuple((node, inp) for node in range(NODES) for inp in range(node + 2))
CELL_TYPES = ("normal", "reduce")
CONCAT = list(range(2, 2 + NODES))

# DARTS' notation (genotypes.py of the DARTS code); `repr` writes the usual genotype string.
Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")


def _hwc(shape: Shape) -> str:
    return f"H{shape[2]}_W{shape[3]}_C{shape[1]}"


# ------------------------------------------------------------------------------------ ops
class Zero(nn.Module, Priced):
    """`none`: zeros at the edge's output resolution (free: the program drops the term)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return None


class Identity(nn.Identity, Priced):
    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return None


class Pool(nn.Module, Priced):
    """3x3 max or average pooling with the edge's stride (no parameters, as in DARTS)."""

    def __init__(self, name: str, stride: int) -> None:
        super().__init__()
        self.name, self.stride = name, stride
        self.pool: nn.Module = (
            nn.MaxPool2d(3, stride, padding=1)
            if name == "max_pool_3x3"
            else nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x)

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"{self.name}_{_hwc(in_shape)}_s{self.stride}"


class SepConv(nn.Sequential, Priced):
    """DARTS' separable conv: (ReLU, kxk depthwise, 1x1 pointwise, BN) twice, stride first."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        c, pad = channels, kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride, pad, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, 1, pad, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )
        self.kernel, self.stride = kernel, stride

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"sep_conv_{self.kernel}x{self.kernel}_{_hwc(in_shape)}_s{self.stride}"


class DilConv(nn.Sequential, Priced):
    """DARTS' dilated separable conv: ReLU, kxk depthwise at dilation 2, 1x1 pointwise, BN."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        c = channels
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride, kernel - 1, dilation=2, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )
        self.kernel, self.stride = kernel, stride

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"dil_conv_{self.kernel}x{self.kernel}_{_hwc(in_shape)}_s{self.stride}"


class FactorizedReduce(nn.Module, Priced):
    """Halves the resolution: ReLU, two 1x1 stride-2 convs on offset grids, concatenated, BN.

    DARTS' `skip_connect` on a stride-2 edge, and the preprocessing of c_{k-2} after a reduction.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"factorized_reduce_{_hwc(in_shape)}_Cout{out_shape[1]}"


class ReLUConvBN(nn.Sequential, Priced):
    """A cell's 1x1 preprocessing of one of its inputs."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        )

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"relu_conv_bn_1x1_{_hwc(in_shape)}_Cout{out_shape[1]}"


def make_op(name: str, channels: int, stride: int) -> nn.Module:
    if name == "none":
        return Zero(stride)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return Pool(name, stride)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(channels, channels)
    if name.startswith(("sep_conv_", "dil_conv_")):
        kernel = int(name[-1])
        return (SepConv if name.startswith("sep") else DilConv)(channels, kernel, stride)
    raise ValueError(f"unknown DARTS op {name!r}; ops are: {', '.join(OPS)}")


# ------------------------------------------------------------------------------ network
class Cell(nn.Module):
    def __init__(
        self, c_prev_prev: int, c_prev: int, channels: int, reduction: bool, reduction_prev: bool
    ) -> None:
        super().__init__()
        self.pre0: nn.Module = (
            FactorizedReduce(c_prev_prev, channels)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, channels)
        )
        self.pre1 = ReLUConvBN(c_prev, channels)
        first = len(EDGES) if reduction else 0
        self.edges = nn.ModuleList(
            ChoiceBlock(
                first + k,
                [make_op(op, channels, 2 if reduction and inp < 2 else 1) for op in OPS],
            )
            for k, (_, inp) in enumerate(EDGES)
        )

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        k = 0
        for node in range(NODES):
            total = self.edges[k](states[0])
            for inp in range(1, node + 2):
                total = total + self.edges[k + inp](states[inp])
            k += node + 2
            states.append(total)
        return torch.cat(states[2:], dim=1)


class Stem(nn.Sequential, Priced):
    def __init__(self, c_out: int) -> None:
        super().__init__(nn.Conv2d(3, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"stem_conv_3x3_{_hwc(in_shape)}_Cout{out_shape[1]}"


class Head(nn.Module, Priced):
    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.pool(x), 1))

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"head_{_hwc(in_shape)}_Cout{out_shape[1]}"


def reduction_cells(cells: int) -> frozenset[int]:
    """DARTS' reduction positions: at 1/3 and 2/3 of the depth."""
    return frozenset({cells // 3, 2 * cells // 3})


class DartsNetwork(nn.Module):
    def __init__(self, channels: int, cells: int, stem_multiplier: int, num_classes: int) -> None:
        super().__init__()
        c = stem_multiplier * channels
        self.stem = Stem(c)
        c_prev_prev, c_prev, c = c, c, channels
        reductions = reduction_cells(cells)
        layers: list[Cell] = []
        reduction_prev = False
        for i in range(cells):
            reduction = i in reductions
            c = 2 * c if reduction else c
            layers.append(Cell(c_prev_prev, c_prev, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, NODES * c
        self.cells = nn.ModuleList(layers)
        self.head = Head(c_prev, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(s1)


# --------------------------------------------------------------------------- the space
# One node's choice: its kept input pair and each kept edge's op, as {slot: op}.
NodeChoice = dict[int, int]


@dataclass(frozen=True)
class DartsSpace(SearchSpace):
    channels: int = 16
    cells: int = 8
    stem_multiplier: int = 3
    num_classes: int = 10
    input_size: int = 32
    size: str = "real"
    name: str = "darts"

    @property
    def slots(self) -> tuple[Slot, ...]:  # type: ignore[override]
        return tuple(
            Slot(f"{cell}.node{node + 2}<-{inp}", OPS) for cell in CELL_TYPES for node, inp in EDGES
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (3, self.input_size, self.input_size)

    @property
    def num_paths(self) -> int:
        return self.count_paths([range(len(OPS))] * self.num_slots)

    def build(self) -> nn.Module:
        return DartsNetwork(self.channels, self.cells, self.stem_multiplier, self.num_classes)

    # ------------------------------------------------------------- the node constraint
    @staticmethod
    def node_slots() -> Iterator[tuple[str, int, list[int]]]:
        """(cell type, node, the slots of its input edges in input order) for all 8 nodes."""
        for c, cell in enumerate(CELL_TYPES):
            for node in range(NODES):
                first = c * len(EDGES) + EDGES.index((node, 0))
                yield cell, node, list(range(first, first + node + 2))

    def validate(self, path: Sequence[int]) -> Path:
        p = super().validate(path)
        for cell, node, slots in self.node_slots():
            kept = [s - slots[0] for s in slots if p[s] != NONE]
            if len(kept) != 2:
                raise PathError(
                    f"path {p}: node {node + 2} of the {cell} cell keeps {len(kept)} inputs "
                    f"({kept or 'none'}); each DARTS node keeps exactly two, so exactly two of "
                    f"slots {slots[0]}..{slots[-1]} must be an op other than 'none'"
                )
        return p

    @staticmethod
    def _pairs(live: Sequence[Sequence[int]], slots: list[int]) -> list[tuple[int, int]]:
        """The input pairs the live ops allow: both edges have a live op other than `none`,
        and every other edge of the node can be `none`."""
        on = {s for s in slots if any(o != NONE for o in live[s])}
        return [
            (a, b)
            for a, b in itertools.combinations(slots, 2)
            if a in on and b in on and all(NONE in live[s] for s in slots if s not in (a, b))
        ]

    @staticmethod
    def _on(live: Sequence[Sequence[int]], slot: int) -> list[int]:
        return [int(o) for o in live[slot] if o != NONE]

    def _path(self, choices: Sequence[NodeChoice]) -> Path:
        path = [NONE] * self.num_slots
        for choice in choices:
            for s, op in choice.items():
                path[s] = op
        return tuple(path)

    def _node_options(self, live: Sequence[Sequence[int]], slots: list[int]) -> list[NodeChoice]:
        return [
            {a: oa, b: ob}
            for a, b in self._pairs(live, slots)
            for oa in self._on(live, a)
            for ob in self._on(live, b)
        ]

    def count_paths(self, live: Sequence[Sequence[int]]) -> int:
        return math.prod(
            sum(len(self._on(live, a)) * len(self._on(live, b)) for a, b in self._pairs(live, s))
            for _, _, s in self.node_slots()
        )

    def all_paths(self, live: Sequence[Sequence[int]]) -> list[Path]:
        per_node = [self._node_options(live, slots) for _, _, slots in self.node_slots()]
        return [self._path(choices) for choices in itertools.product(*per_node)]

    def _pairs_or_raise(
        self, live: Sequence[Sequence[int]], cell: str, node: int, slots: list[int]
    ) -> list[tuple[int, int]]:
        pairs = self._pairs(live, slots)
        if not pairs:
            raise PathError(
                f"node {node + 2} of the {cell} cell has no two inputs left among the live ops of "
                f"slots {slots[0]}..{slots[-1]}; the supernet was pruned past a valid path"
            )
        return pairs

    def sample(self, rng: np.random.Generator, live: Sequence[Sequence[int]]) -> Path:
        choices = []
        for cell, node, slots in self.node_slots():
            pairs = self._pairs_or_raise(live, cell, node, slots)
            a, b = pairs[int(rng.integers(len(pairs)))]
            choices.append({s: int(rng.choice(self._on(live, s))) for s in (a, b)})
        return self._path(choices)

    def sample_fair(self, rng: np.random.Generator, live: Sequence[Sequence[int]]) -> list[Path]:
        m = max(len(self._on(live, s)) for s in range(self.num_slots))
        paths = np.full((m, self.num_slots), NONE, dtype=np.int64)
        for cell, node, slots in self.node_slots():
            self._pairs_or_raise(live, cell, node, slots)
            for kept in self._fair_pairs(rng, live, slots, m):
                paths[np.arange(m), kept] = -1  # a kept edge: its op is filled in below
        for s in range(self.num_slots):
            kept = np.flatnonzero(paths[:, s] == -1)
            if len(kept):
                ops = self._on(live, s)
                full, extra = divmod(len(kept), len(ops))
                column = np.concatenate([np.tile(ops, full), rng.choice(ops, extra, replace=False)])
                paths[kept, s] = rng.permutation(column)
        return [tuple(int(i) for i in row) for row in paths]

    def _fair_pairs(
        self, rng: np.random.Generator, live: Sequence[Sequence[int]], slots: list[int], m: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """m input pairs of one node, each edge kept as evenly as the live ops allow.

        Edges whose `none` is pruned are kept in every pair; the others that can be kept share
        the remaining places, counts within one of each other. Pairing place i with place
        i + m of the grouped list never pairs an edge with itself, as no edge has more than m.
        """
        forced = [s for s in slots if NONE not in live[s]]
        free = [s for s in slots if s not in forced and self._on(live, s)]
        places = 2 - len(forced)
        counts = np.full(len(free), places * m // max(len(free), 1))
        extra = places * m - int(counts.sum())
        if extra:
            counts[rng.choice(len(free), extra, replace=False)] += 1
        grouped = np.repeat(np.asarray(free, dtype=np.int64), counts)
        if places == 2:
            first, second = grouped[:m], grouped[m:]
        else:
            first = np.full(m, forced[0], dtype=np.int64)
            second = grouped if places == 1 else np.full(m, forced[1], dtype=np.int64)
        order = rng.permutation(m)
        return first[order], second[order]

    def best_path(self, scores: np.ndarray) -> Path:
        s = np.asarray(scores, dtype=float)
        choices = []
        for cell, node, slots in self.node_slots():
            best: tuple[float, NodeChoice] | None = None
            for a, b in itertools.combinations(slots, 2):
                ops = {e: NONE + 1 + int(np.argmax(s[e, NONE + 1 :])) for e in (a, b)}
                total = sum(s[e, o] for e, o in ops.items())
                total += sum(s[e, NONE] for e in slots if e not in ops)
                if np.isfinite(total) and (best is None or total > best[0]):
                    best = (float(total), ops)
            if best is None:
                raise PathError(
                    f"node {node + 2} of the {cell} cell has no two inputs left among the live ops"
                )
            choices.append(best[1])
        return self._path(choices)

    # ------------------------------------------------------------------ genotype notation
    def to_genotype(self, path: Sequence[int]) -> Any:
        """The path as DARTS' `Genotype` (inputs of each node in ascending order)."""
        p = self.validate(path)
        cells = []
        for c in range(len(CELL_TYPES)):
            cells.append(
                [
                    (OPS[p[c * len(EDGES) + k]], inp)
                    for k, (_, inp) in enumerate(EDGES)
                    if p[c * len(EDGES) + k] != NONE
                ]
            )
        return Genotype(cells[0], range(2, 2 + NODES), cells[1], range(2, 2 + NODES))

    def from_genotype(self, genotype: Any) -> Path:
        """The path of a DARTS `Genotype` (or any object with its four fields)."""
        path = [NONE] * self.num_slots
        for c, cell in enumerate(CELL_TYPES):
            pairs = list(getattr(genotype, cell))
            concat = list(getattr(genotype, f"{cell}_concat"))
            if concat != CONCAT:
                raise PathError(
                    f"genotype {cell}_concat is {concat}; this space concatenates every "
                    f"intermediate node, {CONCAT}"
                )
            if len(pairs) != 2 * NODES:
                raise PathError(
                    f"genotype {cell} cell lists {len(pairs)} edges; DARTS cells list "
                    f"{2 * NODES}, two per node"
                )
            for k, (op, inp) in enumerate(pairs):
                node = k // 2
                if not isinstance(inp, int) or not 0 <= inp < node + 2:
                    raise PathError(
                        f"genotype {cell} cell: node {node + 2} reads input {inp!r}; it can read "
                        f"0..{node + 1} (the two cell inputs and the earlier nodes)"
                    )
                slot = c * len(EDGES) + EDGES.index((node, inp))
                if path[slot] != NONE:
                    raise PathError(
                        f"genotype {cell} cell: node {node + 2} reads input {inp} twice; a node "
                        f"keeps two distinct inputs in this space (one op per edge)"
                    )
                op_index = self.slots[slot].op_index(str(op))
                if op_index == NONE:
                    raise PathError(f"genotype {cell} cell: node {node + 2} keeps a 'none' edge")
                path[slot] = op_index
        return self.validate(path)

    def encode(self, path: Sequence[int]) -> str:
        """DARTS' genotype string, `Genotype(normal=[('sep_conv_3x3', 0), ...], ...)`."""
        return repr(self.to_genotype(path))

    def decode(self, text: str) -> Path:
        """A path from DARTS' genotype string (list or range concats, any order in a node)."""
        return self.from_genotype(parse_genotype(text))


def parse_genotype(text: str) -> Any:
    """DARTS' `Genotype(...)` string as a `Genotype`, read without evaluating code."""
    try:
        call = ast.parse(text.strip(), mode="eval").body
        if not isinstance(call, ast.Call) or len(call.args) + len(call.keywords) != 4:
            raise ValueError("not a Genotype(...) call with 4 fields")
        fields = dict(zip(Genotype._fields, call.args, strict=False))
        fields.update({kw.arg: kw.value for kw in call.keywords if kw.arg is not None})
        return Genotype(**{k: _literal(v) for k, v in fields.items()})
    except (SyntaxError, ValueError, TypeError) as e:
        raise PathError(
            f"cannot read DARTS genotype {text!r}: {e}; write it as DARTS prints it, "
            f"Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), "
            f"reduce=[...], reduce_concat=range(2, 6))"
        ) from None


def _literal(node: ast.expr) -> Any:
    """A literal, or `range(a, b)` of literals."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        return list(range(*(int(ast.literal_eval(a)) for a in node.args)))
    return ast.literal_eval(node)


@SPACES.register("darts", "DARTS cells (2 x 14 edges x 8 ops, two inputs per node), CIFAR")
def darts(size: str = "real", **overrides: object) -> DartsSpace:
    base: dict[str, object] = (
        {"channels": 16, "cells": 8} if size == "real" else {"channels": 4, "cells": 3}
    )
    base.update(overrides)
    return DartsSpace(size=size, **base)  # type: ignore[arg-type]
