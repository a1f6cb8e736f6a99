"""The weight-sharing supernet: every candidate op's weights W, op scores alpha, a pruning mask."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .errors import PathError
from .spaces import ChoiceBlock, Path, PrunedOp, SearchSpace


class Supernet(nn.Module):
    """A search space's network holding all candidate ops; `forward(x, path)` runs one path.

    `alpha[slot, op]` are the operation scores of the paper (section 3.2); `op_mask[slot, op]` is
    False for pruned ops and for padding where a slot has fewer ops than the widest one.
    """

    op_mask: Tensor

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        self.net = space.build()
        blocks = [m for m in self.net.modules() if isinstance(m, ChoiceBlock)]
        # A plain list so the blocks are not registered a second time as submodules.
        self._blocks: list[ChoiceBlock] = blocks
        slots_seen = {b.slot for b in blocks}
        if slots_seen != set(range(space.num_slots)):
            raise ValueError(
                f"space {space.name!r} built choice blocks for slots {sorted(slots_seen)}, "
                f"expected 0..{space.num_slots - 1}"
            )
        width = max(len(s.ops) for s in space.slots)
        self.alpha = nn.Parameter(torch.zeros(space.num_slots, width))
        mask = torch.zeros(space.num_slots, width, dtype=torch.bool)
        for s, slot in enumerate(space.slots):
            mask[s, : len(slot.ops)] = True
        self.register_buffer("op_mask", mask)
        # A host copy of op_mask, read on every forward (path validation) and by `live_ops`:
        # reading the buffer there would wait for the GPU once per slot per call. `prune` and
        # `load_state_dict` keep the two equal.
        self._mask_host: np.ndarray = mask.numpy().copy()
        self.register_load_state_dict_post_hook(_refresh_mask_host)

    # ----------------------------------------------------------------- paths
    @property
    def blocks(self) -> list[ChoiceBlock]:
        return self._blocks

    def blocks_of(self, slot: int) -> Iterator[ChoiceBlock]:
        return (b for b in self._blocks if b.slot == slot)

    def live_ops(self, slot: int) -> list[int]:
        return [int(i) for i in np.flatnonzero(self._mask_host[slot])]

    def is_live(self, path: Sequence[int]) -> bool:
        """True when every op of `path` is live (not pruned), read from the host copy."""
        return all(bool(self._mask_host[s, i]) for s, i in enumerate(path))

    def validate(self, path: Sequence[int]) -> Path:
        """The path as a tuple, or PathError if it does not fit the space or uses a pruned op."""
        p = self.space.validate(path)
        for s, i in enumerate(p):
            if not self._mask_host[s, i]:
                slot = self.space.slots[s]
                live = ", ".join(f"{j}={slot.ops[j]}" for j in self.live_ops(s))
                raise PathError(
                    f"path {p}: op {i} ({slot.ops[i]}) of slot {s} ({slot.name}) was pruned; "
                    f"ops left there: {live}"
                )
        return p

    def set_path(self, path: Sequence[int]) -> Path:
        p = self.validate(path)
        for b in self._blocks:
            b.active = p[b.slot]
        return p

    def forward(self, x: Tensor, path: Sequence[int]) -> Tensor:
        self.set_path(path)
        return self.net(x)

    def live(self) -> list[list[int]]:
        """Each slot's live op indices."""
        return [self.live_ops(s) for s in range(self.space.num_slots)]

    def sample_uniform(self, rng: np.random.Generator) -> Path:
        """One path drawn by the space among the live ops (`SearchSpace.sample`)."""
        return self.space.sample(rng, self.live())

    def sample_fair(self, rng: np.random.Generator) -> list[Path]:
        """A strict-fairness group of paths over the live ops (`SearchSpace.sample_fair`)."""
        return self.space.sample_fair(rng, self.live())

    def count_paths(self) -> int:
        """How many valid paths are left among the live ops."""
        return self.space.count_paths(self.live())

    def masked_alpha(self) -> Tensor:
        return self.alpha.masked_fill(~self.op_mask, float("-inf"))

    def alpha_entropy(self) -> float:
        """Mean over slots of the entropy of softmax(alpha) over live ops (nats)."""
        probs = torch.softmax(self.masked_alpha().detach(), dim=1)
        ent = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1)
        return float(ent.mean())

    def ops_left(self) -> int:
        """How many ops are live, over all slots."""
        return int(self.op_mask.sum())

    def argmax_path(self) -> Path:
        """The valid live path with the highest P_s (the paper's step-2 training path): each
        slot's live op with the highest alpha where slots are independent."""
        return self.space.best_path(self.masked_alpha().detach().cpu().numpy())

    def first_path(self) -> Path:
        """A valid live path that depends on the mask only (each slot's first live op where
        slots are independent): the path the cost tracer runs."""
        return self.space.best_path(np.where(self._mask_host, 0.0, -np.inf))

    def path_scores(self, paths: Sequence[Sequence[int]]) -> Tensor:
        """P_s = sum of the path's selected ops' alpha (paper section 3.2), differentiable."""
        idx = torch.as_tensor([list(p) for p in paths], dtype=torch.long, device=self.alpha.device)
        slots = torch.arange(self.space.num_slots, device=self.alpha.device)
        return self.alpha[slots.unsqueeze(0), idx].sum(dim=1)

    def path_score_array(self, paths: Sequence[Sequence[int]]) -> np.ndarray:
        """`path_scores` as they stand, outside autograd: one float64 per path, on the host."""
        with torch.no_grad():
            return self.path_scores(paths).cpu().numpy().astype(float)

    # ------------------------------------------------------------- parameters
    def weight_parameters(self) -> Iterator[nn.Parameter]:
        """W: every parameter but alpha."""
        return self.net.parameters()

    def path_parameters(self, path: Sequence[int]) -> list[nn.Parameter]:
        """The parameters a path uses: the fixed skeleton's and its chosen candidates'."""
        p = self.validate(path)
        unused: set[int] = set()
        for b in self._blocks:
            for j, cand in enumerate(b.candidates):
                if j != p[b.slot]:
                    unused.update(id(q) for q in cand.parameters())
        return [q for q in self.net.parameters() if id(q) not in unused]

    # ---------------------------------------------------------------- pruning
    def prune(self, slot: int, op: int) -> int:
        """Remove op `op` from slot `slot`: mask it and free its weights. Returns bytes freed."""
        if not 0 <= slot < self.space.num_slots:
            raise PathError(f"slot {slot} does not exist; slots are 0..{self.space.num_slots - 1}")
        slot_def = self.space.slots[slot]
        if not 0 <= op < len(slot_def.ops) or not self._mask_host[slot, op]:
            raise PathError(f"op {op} of slot {slot} ({slot_def.name}) is not a live op")
        if len(self.live_ops(slot)) == 1:
            raise PathError(
                f"cannot prune op {op} ({slot_def.ops[op]}): it is the last op of slot "
                f"{slot} ({slot_def.name}); every slot keeps at least one op"
            )
        live = self.live()
        live[slot] = [i for i in live[slot] if i != op]
        if self.space.count_paths(live) == 0:
            raise PathError(
                f"cannot prune op {op} ({slot_def.ops[op]}) of slot {slot} ({slot_def.name}): "
                f"no valid path of space {self.space.name!r} would be left"
            )
        self.op_mask[slot, op] = False
        self._mask_host[slot, op] = False
        first_live = self.live_ops(slot)[0]
        freed = 0
        for b in self.blocks_of(slot):
            freed += sum(q.numel() * q.element_size() for q in b.candidates[op].parameters())
            freed += sum(t.numel() * t.element_size() for t in b.candidates[op].buffers())
            b.candidates[op] = PrunedOp(slot_def.name, slot_def.ops[op])
            if b.active == op:
                b.active = first_live
        with torch.no_grad():
            self.alpha[slot, op] = 0.0
        return freed

    # -------------------------------------------------------------- BatchNorm
    @torch.no_grad()
    def recalibrate_bn(self, path: Sequence[int], batches: Iterable[Tensor]) -> int:
        """Re-estimate BatchNorm statistics for one path from `batches` of inputs.

        Shared BN statistics are a mix of every path trained; before a path's accuracy is
        measured they must be recomputed for that path alone (standard in one-shot NAS).
        Uses a cumulative average over all batches. Returns the number of images seen.
        """
        self.set_path(path)
        bns = [m for m in self.net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [(bn.momentum, bn.training) for bn in bns]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
            bn.train()
        seen = 0
        try:
            for x in batches:
                self.net(x)
                seen += int(x.shape[0])
        finally:
            for bn, (momentum, training) in zip(bns, saved, strict=True):
                bn.momentum = momentum
                bn.train(training)
        if seen == 0:
            raise ValueError("recalibrate_bn got no batches; pass at least one batch of inputs")
        return seen

    # ------------------------------------------------------------- standalone
    def standalone(self, path: Sequence[int]) -> nn.Module:
        """A copy of one path as a plain network: each choice block replaced by its chosen op."""
        p = self.validate(path)
        net = copy.deepcopy(self.net)
        _replace_choice_blocks(net, p)
        return net


def _refresh_mask_host(module: nn.Module, incompatible_keys: object) -> None:
    """After `load_state_dict`, the host copy of op_mask follows the loaded buffer."""
    assert isinstance(module, Supernet)
    module._mask_host = module.op_mask.detach().cpu().numpy().copy()


def _replace_choice_blocks(module: nn.Module, path: Path) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, ChoiceBlock):
            setattr(module, name, child.candidates[path[child.slot]])
        else:
            _replace_choice_blocks(child, path)
