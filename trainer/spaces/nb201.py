"""NAS-Bench-201: a 4-node cell with 6 edges, 5 ops each, in the benchmark's macro skeleton.

Skeleton (Dong & Yang, ICLR 2020): 3x3 conv stem; three stages of N cells at C, 2C, 4C channels,
separated by residual reduction blocks; BN-ReLU, global average pooling and a linear classifier.
Every cell uses the same choice of ops, so one slot is one edge and drives all 3N cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import PathError
from .base import SPACES, ChoiceBlock, Path, Priced, SearchSpace, Shape, Slot

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# Edges (to_node, from_node) in the order NB201's arch_str lists them.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class ReLUConvBN(nn.Sequential, Priced):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, op_name: str) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.op_name = op_name

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"{self.op_name}_H{in_shape[2]}_W{in_shape[3]}_C{in_shape[1]}"


class Zero(nn.Module, Priced):
    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return None


class Skip(nn.Identity, Priced):
    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return None


class AvgPool3x3(nn.AvgPool2d, Priced):
    def __init__(self) -> None:
        super().__init__(3, stride=1, padding=1, count_include_pad=False)

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"avg_pool_3x3_H{in_shape[2]}_W{in_shape[3]}_C{in_shape[1]}"


def make_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return Skip()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, name)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, name)
    if name == "avg_pool_3x3":
        return AvgPool3x3()
    raise ValueError(f"unknown NB201 op {name!r}; ops are: {', '.join(OPS)}")


class Cell(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            ChoiceBlock(slot, [make_op(op, channels) for op in OPS]) for slot in range(len(EDGES))
        )

    def forward(self, x: Tensor) -> Tensor:
        nodes = [x]
        slot = 0
        for to_node in range(1, 4):
            total = self.edges[slot](nodes[0])
            slot += 1
            for _from_node in range(1, to_node):
                total = total + self.edges[slot](nodes[_from_node])
                slot += 1
            nodes.append(total)
        return nodes[3]


class Stem(nn.Sequential, Priced):
    def __init__(self, c_out: int) -> None:
        super().__init__(nn.Conv2d(3, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"Stem_H{in_shape[2]}_W{in_shape[3]}_Cin{in_shape[1]}_Cout{out_shape[1]}"


class ResBlock(nn.Module, Priced):
    """NB201's residual reduction block: two ReLU-Conv-BN (stride 2 first), pooled 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.conv_b = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"ResBlock_H{in_shape[2]}_W{in_shape[3]}_Cin{in_shape[1]}_Cout{out_shape[1]}_stride2"


class Head(nn.Module, Priced):
    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.pool(self.lastact(x)), 1))

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"Head_H{in_shape[2]}_W{in_shape[3]}_Cin{in_shape[1]}_Cout{out_shape[1]}"


class NB201Network(nn.Module):
    def __init__(self, channels: int, cells_per_stage: int, num_classes: int) -> None:
        super().__init__()
        self.stem = Stem(channels)
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResBlock(c, 2 * c))
                c *= 2
            layers.extend(Cell(c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.head = Head(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.cells(self.stem(x)))


@dataclass(frozen=True)
class NB201Space(SearchSpace):
    channels: int = 16
    cells_per_stage: int = 5
    num_classes: int = 10
    input_size: int = 32
    size: str = "real"
    name: str = "nb201"

    @property
    def slots(self) -> tuple[Slot, ...]:  # type: ignore[override]
        return tuple(Slot(f"edge{to}<-{frm}", OPS) for to, frm in EDGES)

    @property
    def input_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (3, self.input_size, self.input_size)

    def build(self) -> nn.Module:
        return NB201Network(self.channels, self.cells_per_stage, self.num_classes)

    def encode(self, path: Sequence[int]) -> str:
        """NB201's arch_str, e.g. `|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~2|`."""
        names = self.op_names(path)
        groups = []
        k = 0
        for to_node in range(1, 4):
            groups.append("|" + "|".join(f"{names[k + j]}~{j}" for j in range(to_node)) + "|")
            k += to_node
        return "+".join(groups)

    def decode(self, text: str) -> Path:
        groups = text.strip().split("+")
        if len(groups) != 3:
            raise PathError(
                f"NB201 arch_str {text!r} must have 3 '+'-separated node groups, got {len(groups)}"
            )
        names: list[str] = []
        for to_node, group in enumerate(groups, start=1):
            edges = [e for e in group.strip("|").split("|") if e]
            if len(edges) != to_node:
                raise PathError(
                    f"NB201 arch_str {text!r}: node {to_node} must list {to_node} edges, "
                    f"got {group!r}"
                )
            for from_node, edge in enumerate(edges):
                op, _, src = edge.partition("~")
                if src != str(from_node):
                    raise PathError(
                        f"NB201 arch_str {text!r}: edge {edge!r} should come from node {from_node}"
                    )
                names.append(op)
        return self.from_op_names(names)

    def benchmark_key(self, path: Sequence[int]) -> str | None:
        return self.encode(path)

    def live_slots(self, paths: np.ndarray) -> np.ndarray:
        """An edge is computed by the exported program unless its op is `none` or its target
        node never reaches the cell's output: prp-export drops each `none` term of a node's
        sum, and then every op that fed only dropped terms (node 3 is the output; node j < 3
        is used where one of its outgoing edges is not `none` and ends at a used node)."""
        p = np.asarray(paths, dtype=np.int64).reshape(-1, len(EDGES))
        on = p != OPS.index("none")
        used = {3: np.ones(len(p), dtype=bool)}
        for node in (2, 1):  # the nodes an edge from `node` can reach are decided first
            used[node] = np.zeros(len(p), dtype=bool)
            for s, (to, frm) in enumerate(EDGES):
                if frm == node:
                    used[node] |= on[:, s] & used[to]
        return np.stack([on[:, s] & used[to] for s, (to, _) in enumerate(EDGES)], axis=1)


@SPACES.register("nb201", "NAS-Bench-201 cell space (6 edges x 5 ops), CIFAR skeleton")
def nb201(size: str = "real", **overrides: object) -> NB201Space:
    base: dict[str, object] = (
        {"channels": 16, "cells_per_stage": 5}
        if size == "real"
        else {"channels": 4, "cells_per_stage": 1}
    )
    base.update(overrides)
    return NB201Space(size=size, **base)  # type: ignore[arg-type]
