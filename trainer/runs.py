"""A training run's directory: config, JSONL log, checkpoints, all written atomically.

`runs/<name>/`: `config.json`, `log.jsonl` (one record per step/epoch), `checkpoint.pt` (the last
completed epoch), `front.json`, `front.png`, `alpha.png`. A file is written to a temporary name in
the same folder and renamed into place, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

# The one atomic-write helper (in the runtime, which may not import the trainer); the trainer
# imports it from here.
from prp.runtime.files import atomic_path as atomic_path
from prp.runtime.files import write_atomic as write_atomic

from .config import TrainConfig
from .errors import PRPError

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
LOG = "log.jsonl"
FRONT = "front.json"

CHECKPOINT_VERSION = 1
# Everything `Trainer.save_checkpoint` writes, all of it tensors and plain data (dicts, lists,
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


class RunError(PRPError):
    """A run folder, or one of its files, that is missing, damaged or not to be trusted."""


def one_line(e: BaseException, limit: int = 240) -> str:
    """`e`'s message on one line, cut to `limit` characters (torch's can span a screen)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def write_json(path: Path, data: object) -> None:
    write_atomic(path, lambda f: json.dump(data, f, indent=2, default=_jsonable))


def _jsonable(x: object) -> object:
    if hasattr(x, "tolist"):
        return x.tolist()  # numpy arrays and scalars
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PRPError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise PRPError(f"{path} is not valid JSON ({e}); the file is damaged") from None


def read_config(run_dir: Path) -> TrainConfig:
    """The `config.json` of run `run_dir`, with a one-line error when there is none or it is
    damaged (a run folder is whatever holds one)."""
    path = Path(run_dir) / CONFIG
    if not Path(run_dir).is_dir():
        raise RunError(
            f"{run_dir} is not a training run (the folder does not exist); check the path, or "
            f"train one with prp-train"
        )
    if not path.is_file():
        raise RunError(f"{run_dir} is not a training run (no {CONFIG}); train one with prp-train")
    data = read_json(path)
    if not isinstance(data, dict):
        raise RunError(f"{path} holds a {type(data).__name__}, not a run configuration")
    try:
        return TrainConfig.from_json(data)
    except TypeError as e:
        raise RunError(f"{path} is not a valid run configuration ({one_line(e)})") from None


class RunLog:
    """Append-only JSONL log. On resume, records past the last checkpointed epoch are dropped,
    so the log of a resumed run reads as if it had never stopped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=_jsonable) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a crash ends the log
        return out

    def truncate_after(self, epoch: int) -> None:
        """Keep only records of epochs <= `epoch` (records without an epoch are kept)."""
        kept = [r for r in self.records() if r.get("epoch", -1) <= epoch]
        write_atomic(self.path, lambda f: f.writelines(json.dumps(r) + "\n" for r in kept))
