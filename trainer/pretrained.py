"""Supernets trained once at a larger scale and shipped in the package (`prp-train --init NAME`).

Stage 1 of the paper (strict fairness) does not depend on the cost objective, so, the way
Once-for-All ships trained supernets, it is trained once on more data than a default run can
afford (`prp-pretrain`, `pretraining.py`: about 2 hours on one core) and every default run
starts its Pareto-rank stage from it (`pretraining.SHIP_EPOCH` says which epoch is shipped and
why). A shipped file is a prp-train checkpoint without optimizer state,
read like any other with torch's weights-only unpickler.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checkpoint import CHECKPOINT
from .errors import PRPError

if TYPE_CHECKING:
    import torch

    from .supernet import Supernet


@dataclass(frozen=True)
class Pretrained:
    """One shipped supernet: its file under `prp/trainer/data/supernets/` and the space it fits."""

    file: str
    space: str
    space_size: str
    space_overrides: dict[str, Any] = field(default_factory=dict)
    doc: str = ""

    def fits(self, space: str, space_size: str, space_overrides: dict[str, Any]) -> bool:
        return (space, space_size, dict(space_overrides)) == (
            self.space,
            self.space_size,
            self.space_overrides,
        )


PRETRAINED: dict[str, Pretrained] = {
    "nb201-c8n2-fair": Pretrained(
        file="nb201-c8n2-fair.pt",
        space="nb201",
        space_size="real",
        space_overrides={"channels": 8, "cells_per_stage": 2},
        doc="NB201 at 8 channels, 2 cells per stage (the default preset's space), after 16 "
        "of 30 epochs of strict fairness on the 45,000 CIFAR-10 train images the embedded "
        "default subset does not hold",
    ),
    "nb201-c8-fair": Pretrained(
        file="nb201-c8-fair.pt",
        space="nb201",
        space_size="real",
        space_overrides={"channels": 8, "cells_per_stage": 1},
        doc="NB201 at 8 channels, 1 cell per stage (the default space until 2026-12-03), after "
        "8 of 30 epochs of strict fairness on the same 45,000 images (it ranks architectures "
        "better than after all 30)",
    ),
}
# The default preset's starting point.
DEFAULT_INIT = "nb201-c8n2-fair"


def fitting(space: str, space_size: str, space_overrides: dict[str, Any]) -> str | None:
    """The name of the shipped supernet that fits this space, if one does."""
    for name, entry in PRETRAINED.items():
        if entry.fits(space, space_size, space_overrides):
            return name
    return None


def pretrained_path(name: str) -> Path:
    """The installed file of the shipped supernet `name`."""
    entry = PRETRAINED[name]
    path = Path(str(resources.files("prp.trainer") / "data" / "supernets" / entry.file))
    if not path.is_file():
        raise PRPError(
            f"--init {name}: the shipped supernet {path} is missing from this installation; "
            f"reinstall prp-nas, or use --init scratch"
        )
    return path


def resolve_init(spec: str) -> Path:
    """The checkpoint that `--init spec` names: a shipped supernet's name, a run folder (its
    checkpoint.pt) or a checkpoint file."""
    if spec in PRETRAINED:
        return pretrained_path(spec)
    path = Path(spec)
    if path.is_dir():
        return path / CHECKPOINT
    if not path.exists():
        raise PRPError(
            f"--init {spec}: that run folder or checkpoint does not exist; use scratch, a run "
            f"folder, a checkpoint.pt or a shipped supernet ({', '.join(PRETRAINED)})"
        )
    return path


def ship(checkpoint: Path, dest: Path) -> None:
    """Write `checkpoint` (an unpruned prp-train checkpoint) as a shipped supernet at `dest`:
    the same format with the optimizer state left out (it halves the file and no run resumes
    from it), written atomically."""
    import torch
    from prp.runtime.files import atomic_path

    from .checkpoint import read_checkpoint

    state = read_checkpoint(checkpoint)
    for key in ("opt_w", "opt_a"):
        state[key] = {"state": {}, "param_groups": state[key]["param_groups"]}
    state["evaluated"], state["targets"] = [], []
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        torch.save(state, tmp)


def load_init(supernet: Supernet, spec: str, device: torch.device) -> str:
    """Start W of `supernet` (weights and BatchNorm buffers, not alpha) from a trained supernet
    (`spec`: a shipped one's name, a run folder or its checkpoint file); returns the file's
    sha256 for the log. A classifier of another class count is left at its initialisation (the
    cells transfer to another data set; the classifier is learnt by this run)."""
    from .checkpoint import read_checkpoint

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
