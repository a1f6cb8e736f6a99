"""Writing a file so that a reader never sees half of it: the one helper the runtime, the
trainer and the benchmarks all write with (the runtime may not import the trainer, so it lives
here)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on any
    error it is removed and `path` keeps what it held."""
    path = Path(path)
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
    """Write `path` through `writer(file)`, flushed to disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w") as f:
        writer(f)
        f.flush()
        os.fsync(f.fileno())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    def write(f: IO[Any]) -> None:
        f.write(data)

    write_atomic(path, write, binary=True)
