"""A run's checkpoint: the last completed epoch, written by rank 0 and read back on resume; the
check that a resumed run is given the options it was started with; and `--init`, a run's
weights started from another run's checkpoint."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import torch

from . import distributed
from .costs import price_supernet
from .errors import PRPError
from .pretrained import resolve_init
from .runs import (
    CHECKPOINT,
    CHECKPOINT_VERSION,
    RunError,
    atomic_path,
    one_line,
    read_checkpoint,
)
from .supernet import Supernet

if TYPE_CHECKING:
    from .train import Trainer

# Config keys `--resume` may change: they decide where the run computes, not what it computes.
RESUME_MAY_CHANGE = frozenset({"compute_device"})


def resume_differences(saved: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """`key given != saved` for each key of `given` whose value differs from the run's saved
    config, leaving out `RESUME_MAY_CHANGE`."""

    def show(v: Any) -> str:
        return repr(v) if isinstance(v, str) else str(v)

    return [
        f"{k} {show(v)} != {show(saved.get(k))}"
        for k, v in given.items()
        if k not in RESUME_MAY_CHANGE and v != saved.get(k)
    ]


def save_checkpoint(t: Trainer) -> None:
    """The last completed epoch of `t`, as tensors and plain Python data only: the checkpoint
    is read back with torch's weights-only unpickler (`read_checkpoint`), which refuses anything
    else (numpy values, RNG states, objects) so that loading cannot run code. Rank 0 alone
    writes it: every rank holds the same state (`weight_step.sync_state`)."""
    if not distributed.is_main():
        return
    state = {
        "version": CHECKPOINT_VERSION,
        "epoch": int(t.epoch),
        "op_mask": t.supernet.op_mask.cpu(),
        "supernet": t.supernet.state_dict(),
        "opt_w": t.opt_w.state_dict(),
        "opt_a": t.opt_a.state_dict(),
        "evaluated": [[[int(i) for i in p], float(a)] for p, a in t.evaluated.items()],
        "targets": [[[int(i) for i in p], float(a)] for p, a in t.targets.items()],
    }
    with atomic_path(t.run_dir / CHECKPOINT) as tmp:
        torch.save(state, tmp)


def load_checkpoint(t: Trainer) -> bool:
    """Resume `t` from its run directory's checkpoint; False if there is none."""
    path = t.run_dir / CHECKPOINT
    if not path.exists():
        return False
    state = read_checkpoint(path, t.device)
    try:
        mask = state["op_mask"]
        if tuple(mask.shape) != tuple(t.supernet.op_mask.shape):
            raise ValueError(
                f"op_mask is {tuple(mask.shape)}, the supernet's {tuple(t.supernet.op_mask.shape)}"
            )
        epoch = int(state["epoch"])
        if not 0 <= epoch <= t.total_epochs:
            raise ValueError(f"epoch {epoch} is outside 0..{t.total_epochs}")
        for s in range(t.space.num_slots):
            for op in t.supernet.live_ops(s):
                if not bool(mask[s, op]):
                    t.supernet.prune(s, op)
        t.supernet.load_state_dict(state["supernet"])
        t.opt_w = t._weight_optimizer()
        t.opt_w.load_state_dict(state["opt_w"])
        t.opt_a.load_state_dict(state["opt_a"])
        evaluated = {tuple(int(i) for i in p): float(a) for p, a in state["evaluated"]}
        targets = {tuple(int(i) for i in p): float(a) for p, a in state["targets"]}
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as e:
        raise RunError(
            f"checkpoint {path} does not fit run {t.run_dir} ({one_line(e)}); it is "
            f"damaged or from another run: restore it from a backup or train again"
        ) from None
    t.epoch, t.evaluated, t.targets = epoch, evaluated, targets
    t.cost = price_supernet(t.supernet, t.cost_model)
    t.log.truncate_after(t.epoch - 1)
    return True


def load_init(supernet: Supernet, spec: str, device: torch.device) -> str:
    """Start W of `supernet` (weights and BatchNorm buffers, not alpha) from a trained supernet
    (`spec`: a shipped one's name, a run folder or its checkpoint file); returns the file's
    sha256 for the log. A classifier of another class count is left at its initialisation (the
    cells transfer to another data set; the classifier is learnt by this run)."""
    path = resolve_init(spec)
    state = read_checkpoint(path, device)  # weights-only: cannot run code
    if not bool(state["op_mask"].all()):
        raise PRPError(
            f"--init {spec}: that supernet was pruned ({int((~state['op_mask']).sum())} ops "
            f"removed); start from an unpruned one, such as a --method fair run"
        )
    own = supernet.state_dict()
    weights = {k: v for k, v in state["supernet"].items() if k != "alpha"}
    missing = sorted(set(own) - set(weights) - {"alpha"})
    unknown = sorted(set(weights) - set(own))
    wrong = [k for k in weights if k in own and weights[k].shape != own[k].shape]
    head = [k for k in wrong if k.split(".")[-2:-1] == ["classifier"]]
    wrong = [k for k in wrong if k not in head]
    if missing or unknown or wrong:
        what = (
            f"{own[wrong[0]].shape} wanted for {wrong[0]}, got {weights[wrong[0]].shape}"
            if wrong
            else f"keys missing {missing[:3]}, unknown {unknown[:3]}"
        )
        raise PRPError(
            f"--init {spec}: its supernet does not fit this run's space ({what}); train it "
            f"with the same --space, --size and channels, or use --init scratch"
        )
    for k in head:
        del weights[k]
    supernet.load_state_dict(weights, strict=False)
    return hashlib.sha256(path.read_bytes()).hexdigest()
