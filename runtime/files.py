"""Writing a file so that a reader never sees half of it: the one helper the runtime, the
trainer and the benchmarks all write with (the runtime may not import the trainer, so it lives
here)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

# errno values that mean the file system (or the user's quota on it) is full.
FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """No space left where a file was being written. The message names the path and the space
    left there, and says that what was there before is unchanged (every write is atomic)."""


def free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding `path` (or its nearest existing folder)."""
    folder = Path(os.path.abspath(path))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def disk_full(path: Path, needed: int | None = None) -> DiskFullError:
    """The error for a write to `path` that found its file system full."""
    free = free_bytes(path)
    left = "unknown space" if free is None else _size(free)
    need = "" if needed is None else f", {_size(needed)} needed"
    return DiskFullError(
        errno.ENOSPC,
        f"no space left on the device writing {path} ({left} free there{need}); nothing was "
        "changed: files written before are as they were and no partial file is left. Free some "
        "space or write elsewhere, then run the command again (long jobs resume)",
    )


# torch.save's zip writer reports a failed write as a RuntimeError naming its own source file,
# with several messages ("file write failed", "unexpected pos 128 vs 0", ...).
_TORCH_WRITER = ("PytorchStreamWriter", "inline_container.cc")
# Below this many free bytes, a failed write of torch's is taken for a full file system.
NEARLY_FULL = 1 << 20


def is_disk_full(e: BaseException, path: Path | None = None) -> bool:
    """An OSError of a full file system; or torch's writer failing (a RuntimeError) where the
    file system of `path` has (nearly) no space left."""
    if isinstance(e, OSError):
        return e.errno in FULL
    if not isinstance(e, RuntimeError):
        return False
    text = str(e)
    if "No space left on device" in text:
        return True
    if path is None or not any(t in text for t in _TORCH_WRITER):
        return False
    free = free_bytes(path)
    return free is not None and free < NEARLY_FULL


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on any
    error it is removed and `path` keeps what it held. A full file system becomes a
    `DiskFullError` naming `path` and the space left."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the file should read like any other
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if is_disk_full(e, path) and not isinstance(e, DiskFullError):
            raise disk_full(path) from None
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
