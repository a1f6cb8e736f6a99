"""A run's checkpoint file: the last completed epoch, written by rank 0 and read back (with
torch's weights-only unpickler) on resume, and the check that a resumed run is given the options
it was started with. Torch is imported where a checkpoint is read or written, so that the run
folder's other files can be read without it."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prp.runtime.files import atomic_path

from .errors import RunError, one_line

if TYPE_CHECKING:
    import torch

    from .spaces import Path as ArchPath
    from .supernet import Supernet

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_VERSION = 1
# Everything `save_checkpoint` writes, all of it tensors and plain data (dicts, lists,
# tuples, numbers, strings, None), so that it loads with torch's weights-only unpickler.
CHECKPOINT_KEYS = (
    "version",
    "epoch",
    "op_mask",
    "supernet",
    "opt_w",
    "opt_a",
    "evaluated",
    "targets",
)

_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def read_checkpoint(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The checkpoint at `path`, read with torch's weights-only unpickler (a crafted pickle
    cannot run code while loading): refused with a one-line `RunError` when it holds anything
    but tensors and plain data, cannot be read, lacks a key or has another version."""
    import pickle

    import torch

    try:
        with warnings.catch_warnings():  # the unpickler warns about old pickle protocols
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise RunError(f"checkpoint {path} does not exist") from None
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise RunError(
                f"checkpoint {path} cannot be read ({one_line(e)}); it is damaged: restore it "
                f"from a backup or train again"
            ) from None
        found = _UNSAFE_GLOBAL.search(str(e))
        what = f"a Python object ({found.group(1)})" if found else "pickle instructions"
        raise RunError(
            f"checkpoint {path} refused: it holds {what} beyond tensors and plain data, and "
            f"loading it could run code; prp-train never writes such a file: use a checkpoint "
            f"from a run you trust, or train again"
        ) from None
    except Exception as e:  # noqa: BLE001 - zip, I/O and format errors all mean "damaged"
        raise RunError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {one_line(e)}); it is "
            f"damaged: restore it from a backup or train again"
        ) from None
    if not isinstance(state, dict):
        raise RunError(
            f"checkpoint {path} holds a {type(state).__name__}, not a prp-train checkpoint"
        )
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise RunError(
            f"checkpoint {path} lacks {', '.join(map(repr, missing))}; it is damaged or not "
            f"written by prp-train: restore it from a backup or train again"
        )
    if state["version"] != CHECKPOINT_VERSION:
        raise RunError(
            f"checkpoint {path} has version {state['version']!r}, this trainer reads version "
            f"{CHECKPOINT_VERSION}"
        )
    if not isinstance(state["op_mask"], torch.Tensor) or not isinstance(state["supernet"], dict):
        raise RunError(
            f"checkpoint {path}: 'op_mask' must be a tensor and 'supernet' a state dict; it is "
            f"damaged: restore it from a backup or train again"
        )
    return state


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


def save_checkpoint(
    path: Path,
    epoch: int,
    supernet: Supernet,
    opt_w: torch.optim.Optimizer,
    opt_a: torch.optim.Optimizer,
    evaluated: dict[ArchPath, float],
    targets: dict[ArchPath, float],
) -> None:
    """The last completed `epoch`, as tensors and plain Python data only: the checkpoint is read
    back with torch's weights-only unpickler (`read_checkpoint`), which refuses anything else
    (numpy values, RNG states, objects) so that loading cannot run code. Rank 0 alone writes
    it: every rank holds the same state (`weight_step.sync_state`), so only rank 0 calls
    this."""
    import torch

    state = {
        "version": CHECKPOINT_VERSION,
        "epoch": int(epoch),
        "op_mask": supernet.op_mask.cpu(),
        "supernet": supernet.state_dict(),
        "opt_w": opt_w.state_dict(),
        "opt_a": opt_a.state_dict(),
        "evaluated": [[[int(i) for i in p], float(a)] for p, a in evaluated.items()],
        "targets": [[[int(i) for i in p], float(a)] for p, a in targets.items()],
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


@dataclass
class Restored:
    """What a checkpoint gives back besides the supernet it loads into."""

    epoch: int
    opt_w: torch.optim.SGD
    evaluated: dict[ArchPath, float]
    targets: dict[ArchPath, float]


def load_checkpoint(
    path: Path,
    device: torch.device,
    supernet: Supernet,
    opt_a: torch.optim.Optimizer,
    new_opt_w: Callable[[], torch.optim.SGD],
    total_epochs: int,
) -> Restored | None:
    """Load the checkpoint at `path` into `supernet` (pruning it as it was) and `opt_a`; the
    weight optimizer is made anew by `new_opt_w` once the supernet is pruned. None if there is
    no checkpoint."""
    if not path.exists():
        return None
    state = read_checkpoint(path, device)
    try:
        mask = state["op_mask"]
        if tuple(mask.shape) != tuple(supernet.op_mask.shape):
            raise ValueError(
                f"op_mask is {tuple(mask.shape)}, the supernet's {tuple(supernet.op_mask.shape)}"
            )
        epoch = int(state["epoch"])
        if not 0 <= epoch <= total_epochs:
            raise ValueError(f"epoch {epoch} is outside 0..{total_epochs}")
        for s in range(supernet.space.num_slots):
            for op in supernet.live_ops(s):
                if not bool(mask[s, op]):
                    supernet.prune(s, op)
        supernet.load_state_dict(state["supernet"])
        opt_w = new_opt_w()
        opt_w.load_state_dict(state["opt_w"])
        opt_a.load_state_dict(state["opt_a"])
        evaluated = {tuple(int(i) for i in p): float(a) for p, a in state["evaluated"]}
        targets = {tuple(int(i) for i in p): float(a) for p, a in state["targets"]}
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as e:
        raise RunError(
            f"checkpoint {path} does not fit run {path.parent} ({one_line(e)}); it is "
            f"damaged or from another run: restore it from a backup or train again"
        ) from None
    return Restored(epoch, opt_w, evaluated, targets)
