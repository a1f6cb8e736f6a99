"""A training run's directory: config, JSONL log, checkpoints, all written atomically.

`runs/<name>/`: `config.json`, `log.jsonl` (one record per step/epoch), `checkpoint.pt` (the last
completed epoch), `front.json`, `front.png`, `alpha.png`. A file is written to a temporary name in
the same folder and renamed into place, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

# The one atomic-write helper (in the runtime, which may not import the trainer); the trainer
# imports it from here.
from prp.runtime.files import atomic_path as atomic_path
from prp.runtime.files import write_atomic as write_atomic

from .checkpoint import CHECKPOINT as CHECKPOINT
from .checkpoint import CHECKPOINT_KEYS as CHECKPOINT_KEYS
from .checkpoint import CHECKPOINT_VERSION as CHECKPOINT_VERSION
from .checkpoint import RESUME_MAY_CHANGE, resume_differences
from .checkpoint import read_checkpoint as read_checkpoint
from .config import TrainConfig
from .errors import PRPError
from .errors import RunError as RunError
from .errors import one_line as one_line

CONFIG = "config.json"
LOG = "log.jsonl"
FRONT = "front.json"


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


def resumed_config(
    run_dir: Path, given: dict[str, Any], changes: dict[str, Any] | None = None
) -> TrainConfig:
    """The config run `run_dir` resumes with: its saved `config.json`, refused with a one-line
    error when an option of `given` (config keys) differs from it, except those `--resume` may
    change (`RESUME_MAY_CHANGE`), which `changes` sets where not None."""
    saved = read_config(run_dir)
    differ = resume_differences(saved.to_json(), given)
    if differ:
        raise PRPError(
            f"--resume: options differ from the run's config.json: {', '.join(differ)}; "
            f"drop them or start a new run"
        )
    changed = {k: v for k, v in (changes or {}).items() if k in RESUME_MAY_CHANGE and v is not None}
    return replace(saved, **changed)


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
