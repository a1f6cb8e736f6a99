"""A training run's directory: config, JSONL log, checkpoints, all written atomically.

`runs/<name>/`: `config.json`, `log.jsonl` (one record per step/epoch), `checkpoint.pt` (the last
completed epoch), `front.json`, `front.png`, `alpha.png`. A file is written to a temporary name in
the same folder and renamed into place, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import PRPError

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
LOG = "log.jsonl"
FRONT = "front.json"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the file should read like any other
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, writer: Callable[[IO[Any]], None], binary: bool = False) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w") as f:
        writer(f)
        f.flush()
        os.fsync(f.fileno())


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
