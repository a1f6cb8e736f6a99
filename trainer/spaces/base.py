"""What every search space is made of: slots, choice blocks, priced modules, the space interface."""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from ..errors import PathError, UnknownNameError
from ..registry import Registry

Path = tuple[int, ...]
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Slot:
    """One searchable choice point: a layer of a chain or an edge of a cell."""

    name: str
    ops: tuple[str, ...]

    def op_index(self, op_name: str) -> int:
        try:
            return self.ops.index(op_name)
        except ValueError:
            raise UnknownNameError(
                f"unknown op {op_name!r} in slot {self.name!r}; its ops are: {', '.join(self.ops)}"
            ) from None


class Priced:
    """Mixin for modules a cost lookup table can price.

    `signature` names the op as a lookup table keys it, from the shapes recorded by forward
    hooks (batch dimension included). None means the op is free (an identity) and costs nothing.
    """

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        raise NotImplementedError


class ChoiceBlock(nn.Module):
    """One place in the network where a slot's op is chosen; holds every candidate's weights.

    Several blocks may share one slot (an NB201 cell edge appears once per cell).
    """

    def __init__(self, slot: int, candidates: Sequence[nn.Module]) -> None:
        super().__init__()
        self.slot = slot
        self.candidates = nn.ModuleList(candidates)
        self.active = 0

    def forward(self, x: Tensor) -> Tensor:
        return self.candidates[self.active](x)


class PrunedOp(nn.Module):
    """Stands where a pruned op's module was: it holds no weights and refuses to run."""

    def __init__(self, slot_name: str, op_name: str) -> None:
        super().__init__()
        self.slot_name = slot_name
        self.op_name = op_name

    def forward(self, x: Tensor) -> Tensor:
        raise PathError(
            f"op {self.op_name!r} of slot {self.slot_name!r} was pruned; pick another op"
        )


class SearchSpace(ABC):
    """A search space: the slots, their ops and the fixed skeleton around them.

    Subclasses set `name`, `slots`, `input_shape` (C, H, W) and `num_classes`, and build the
    network with `build()`; the network contains one `ChoiceBlock` per choice point.
    """

    name: str
    slots: tuple[Slot, ...]
    input_shape: tuple[int, int, int]
    num_classes: int
    size: str

    @abstractmethod
    def build(self) -> nn.Module:
        """A fresh network holding every candidate op; `forward(x)` runs the active ops."""

    @property
    def num_slots(self) -> int:
        return len(self.slots)

    @property
    def num_paths(self) -> int:
        return math.prod(len(s.ops) for s in self.slots)

    def validate(self, path: Sequence[int]) -> Path:
        """Return `path` as a tuple of ints, or raise PathError saying what is wrong with it."""
        try:
            p = tuple(int(i) for i in path)
        except (TypeError, ValueError):
            raise PathError(f"a path is a sequence of op indices, got {path!r}") from None
        if len(p) != self.num_slots:
            raise PathError(
                f"path {p} has {len(p)} entries but search space {self.name!r} has "
                f"{self.num_slots} slots; give one op index per slot"
            )
        for s, (i, slot) in enumerate(zip(p, self.slots, strict=True)):
            if not 0 <= i < len(slot.ops):
                raise PathError(
                    f"path {p}: op index {i} in slot {s} ({slot.name}) is out of range; "
                    f"that slot has {len(slot.ops)} ops (0..{len(slot.ops) - 1}: "
                    f"{', '.join(slot.ops)})"
                )
        return p

    def op_names(self, path: Sequence[int]) -> tuple[str, ...]:
        p = self.validate(path)
        return tuple(slot.ops[i] for slot, i in zip(self.slots, p, strict=True))

    def from_op_names(self, names: Sequence[str]) -> Path:
        if len(names) != self.num_slots:
            raise PathError(
                f"{len(names)} op names given but search space {self.name!r} has "
                f"{self.num_slots} slots"
            )
        return tuple(slot.op_index(n) for slot, n in zip(self.slots, names, strict=True))

    def encode(self, path: Sequence[int]) -> str:
        """A printable, parseable form of a path: op names joined by '-'."""
        return "-".join(self.op_names(path))

    def decode(self, text: str) -> Path:
        return self.from_op_names(text.split("-"))

    def benchmark_key(self, path: Sequence[int]) -> str | None:
        """The key of this path in a public per-architecture benchmark, if one exists."""
        return None

    def live_slots(self, paths: np.ndarray) -> np.ndarray | None:
        """For paths [n, slots] of op indices, whether each slot's op is still computed by the
        path's exported program ([n, slots] bool), or None where every op always is."""
        return None

    # Path hooks the supernet samples, ranks and prunes through. The defaults treat slots as
    # independent (any op of each slot makes a path); a space whose slots constrain each other
    # (DARTS: exactly two non-`none` inputs per node) overrides all five together. `live` is
    # each slot's live (unpruned) op indices; `scores[slot, op]` is -inf where an op is not live.
    def sample(self, rng: np.random.Generator, live: Sequence[Sequence[int]]) -> Path:
        """One path, each slot's op drawn uniformly among its live ops (single-path one-shot)."""
        return tuple(int(rng.choice(ops)) for ops in live)

    def sample_fair(self, rng: np.random.Generator, live: Sequence[Sequence[int]]) -> list[Path]:
        """m paths that together use every live op of every slot exactly once (FairNAS).

        m is the largest number of live ops in any slot. Where a slot has fewer live ops than m
        (ProxylessNAS' first block of a stage has no skip, say), its ops are repeated as evenly
        as possible, so no op of that slot is used more than once more than another.
        """
        m = max(len(ops) for ops in live)
        columns = []
        for ops in live:
            full, extra = divmod(m, len(ops))
            column = np.concatenate([np.tile(ops, full), rng.choice(ops, extra, replace=False)])
            columns.append(rng.permutation(column))
        return [tuple(int(c[k]) for c in columns) for k in range(m)]

    def best_path(self, scores: np.ndarray) -> Path:
        """The valid path with the highest sum of scores: here each slot's best live op."""
        return tuple(int(i) for i in np.asarray(scores).argmax(axis=1))

    def count_paths(self, live: Sequence[Sequence[int]]) -> int:
        """How many valid paths the live ops make (0: none is left)."""
        return math.prod(len(ops) for ops in live)

    def all_paths(self, live: Sequence[Sequence[int]]) -> list[Path]:
        """Every valid path of the live ops; call it only where `count_paths` is small."""
        return [tuple(int(i) for i in p) for p in itertools.product(*live)]

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "size": self.size,
            "slots": self.num_slots,
            "ops_per_slot": sorted({len(s.ops) for s in self.slots}),
            "paths": self.num_paths,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }


# Each space module registers its own spaces here; `spaces/__init__.py` imports them all.
SPACES: Registry[SearchSpace] = Registry("search space")
SIZES = ("tiny", "real")
