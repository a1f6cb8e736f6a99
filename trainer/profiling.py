"""Record every op of a supernet with forward hooks: its signature, shapes, MACs and parameters.

This is how the paper prices paths (appendix E): a hook during the forward pass names each op
by its signature, which a per-op lookup table turns into energy or latency. A path's figure is the
fixed skeleton's figure plus, for each choice block, that of the op the path selects there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from .spaces import ChoiceBlock, Priced, PrunedOp, Shape
from .supernet import Supernet


@dataclass(frozen=True)
class OpRecord:
    """One op as the hooks saw it at batch size 1."""

    module: str  # qualified name in the network
    slot: int | None  # None for the fixed skeleton
    op: int | None
    op_name: str
    signature: str | None  # the lookup-table key; None for a free op (identity, zero)
    in_shape: Shape
    out_shape: Shape
    macs: int  # multiply-accumulates (BatchNorm and pooling count one per element)
    params: int
    activation_elems: int  # elements read and written by the op's layers


@dataclass(frozen=True)
class PathTable:
    """A per-path figure that adds up over ops: fixed part plus one entry per (slot, op).

    `per_op[slot, op]` is NaN where the op is pruned or does not exist. With `live` (a space's
    `live_slots`), a path is priced only over the slots whose op its exported program still
    runs: an NB201 edge whose result never reaches the cell's output costs nothing there.
    """

    name: str  # "energy", "latency", "macs", "params"
    unit: str
    device: str
    fixed: float
    per_op: np.ndarray
    live: Callable[[np.ndarray], np.ndarray | None] | None = None

    def __call__(self, path: Sequence[int]) -> float:
        return float(self.many([path])[0])

    def many(self, paths: Sequence[Sequence[int]]) -> np.ndarray:
        """Figures of many paths at once (vectorised)."""
        idx = np.asarray(paths, dtype=np.int64).reshape(len(paths), -1)
        each = self.per_op[np.arange(idx.shape[1])[None, :], idx]
        mask = self.live(idx) if self.live is not None else None
        if mask is not None:
            each = np.where(mask, each, 0.0)
        return self.fixed + each.sum(axis=1)


@dataclass(frozen=True)
class OpTrace:
    records: tuple[OpRecord, ...]
    num_slots: int
    width: int
    # The space's `live_slots`: which ops a path's exported programs still run (`live_sizes`).
    live: Callable[[np.ndarray], np.ndarray | None] | None = None

    @property
    def fixed(self) -> list[OpRecord]:
        return [r for r in self.records if r.slot is None]

    @property
    def choices(self) -> list[OpRecord]:
        return [r for r in self.records if r.slot is not None]

    def table(
        self, value: Callable[[OpRecord], float], name: str, unit: str, device: str = ""
    ) -> PathTable:
        """Sum `value` over the fixed ops and, per (slot, op), over that op's choice blocks."""
        fixed = float(sum(value(r) for r in self.fixed))
        per_op = np.full((self.num_slots, self.width), np.nan)
        for r in self.choices:
            assert r.slot is not None and r.op is not None
            v = value(r)
            per_op[r.slot, r.op] = v if np.isnan(per_op[r.slot, r.op]) else per_op[r.slot, r.op] + v
        return PathTable(name, unit, device, fixed, per_op)

    def macs(self) -> PathTable:
        return self.table(lambda r: r.macs, "macs", "MAC")

    def params(self) -> PathTable:
        return self.table(lambda r: r.params, "params", "")

    def live_sizes(self) -> tuple[PathTable, PathTable]:
        """Params and MACs of the ops a path's exported programs run (`live`): not those of an
        NB201 edge whose result never reaches the output, which `params` and `macs` count as
        NAS-Bench-201 does."""
        return replace(self.params(), live=self.live), replace(self.macs(), live=self.live)


_ELEMENTWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.SiLU,
    nn.ChannelShuffle,
)


def _leaf_cost(module: nn.Module, inp: Tensor, out: Tensor) -> tuple[int, int]:
    """(MACs, activation elements) of one leaf layer at the recorded shapes."""
    batch = max(int(inp.shape[0]), 1)
    n_in, n_out = inp.numel() // batch, out.numel() // batch
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        macs = n_out * (module.in_channels // module.groups) * kh * kw
    elif isinstance(module, nn.Linear):
        macs = n_out * module.in_features
    elif isinstance(
        module,
        (nn.modules.batchnorm._BatchNorm, nn.modules.pooling._AvgPoolNd, nn.MaxPool2d),
    ):  # one operation per input element (a max pool compares where an average pool adds)
        macs = n_in
    elif isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd):
        macs = n_in
    elif isinstance(module, _ELEMENTWISE):
        macs = 0
    else:  # identity, zero and anything that computes nothing moves nothing
        return 0, 0
    return macs, n_in + n_out


def _measure(module: nn.Module, x: Tensor) -> tuple[Tensor, int, int]:
    """Run `module` on `x` with hooks on its leaf layers; return output, MACs, activations."""
    totals = [0, 0]

    def hook(m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        macs, elems = _leaf_cost(m, args[0], out)
        totals[0] += macs
        totals[1] += elems

    leaves = [m for m in module.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        out = module(x)
    finally:
        for h in handles:
            h.remove()
    return out, totals[0], totals[1]


def _priced_fixed(module: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Top-most Priced modules outside every choice block."""
    for name, child in module.named_children():
        qual = f"{prefix}.{name}" if prefix else name
        if isinstance(child, ChoiceBlock):
            continue
        if isinstance(child, Priced):
            yield qual, child
        else:
            yield from _priced_fixed(child, qual)


@torch.no_grad()
def trace_ops(supernet: Supernet) -> OpTrace:
    """Record every live op of the supernet (fixed skeleton and all candidates) at batch 1."""
    was_training = supernet.net.training
    supernet.net.eval()  # batch 1 and BatchNorm statistics left untouched
    try:
        return _trace(supernet)
    finally:
        supernet.net.train(was_training)


def _trace(supernet: Supernet) -> OpTrace:
    space = supernet.space
    net = supernet.net
    shapes: dict[int, tuple[Shape, Shape]] = {}

    def shape_hook(m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        shapes[id(m)] = (tuple(args[0].shape), tuple(out.shape))

    fixed = list(_priced_fixed(net))
    names = {id(m): n for n, m in net.named_modules()}
    watched = [m for _, m in fixed] + list(supernet.blocks)
    handles = [m.register_forward_hook(shape_hook) for m in watched]
    device = next(iter(net.parameters())).device
    try:
        x = torch.zeros((1, *space.input_shape), device=device)
        supernet(x, supernet.first_path())
    finally:
        for h in handles:
            h.remove()

    records: list[OpRecord] = []
    for qual, m in fixed:
        in_shape, out_shape = shapes[id(m)]
        _, macs, elems = _measure(m, torch.zeros(in_shape, device=device))
        records.append(
            OpRecord(
                module=qual,
                slot=None,
                op=None,
                op_name=type(m).__name__,
                signature=cast(Priced, m).signature(in_shape, out_shape),
                in_shape=in_shape,
                out_shape=out_shape,
                macs=macs,
                params=sum(p.numel() for p in m.parameters()),
                activation_elems=elems,
            )
        )
    for block in supernet.blocks:
        in_shape, _ = shapes[id(block)]
        slot = space.slots[block.slot]
        for j, cand in enumerate(block.candidates):
            if isinstance(cand, PrunedOp):
                continue
            out, macs, elems = _measure(cand, torch.zeros(in_shape, device=device))
            out_shape = tuple(out.shape)
            signature = (
                cand.signature(in_shape, out_shape)
                if isinstance(cand, Priced)
                else f"{type(cand).__name__}_in{'x'.join(map(str, in_shape[1:]))}"
            )
            records.append(
                OpRecord(
                    module=f"{names[id(block)]}.candidates.{j}",
                    slot=block.slot,
                    op=j,
                    op_name=slot.ops[j],
                    signature=signature,
                    in_shape=in_shape,
                    out_shape=out_shape,
                    macs=macs,
                    params=sum(p.numel() for p in cand.parameters()),
                    activation_elems=elems,
                )
            )
    return OpTrace(
        tuple(records), space.num_slots, int(supernet.op_mask.shape[1]), space.live_slots
    )
