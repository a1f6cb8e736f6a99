"""Writing a file so that a reader never sees half of it: the one helper the runtime, the
trainer and the benchmarks all write with (the runtime may not import the trainer, so it lives
here)."""

from __future__ import annotations

import errno
import glob
import os
import re
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, and belongs to someone else
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """The temporary files of writes to `path` that a killed process left (`kill -9` inside
    `atomic_path`), removed: only regular files named as `atomic_path` names them,
    `.NAME.pPID_XXXXXXXX.tmp`, whose PID is no live process. Returns what was removed."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.p(?P<pid>[1-9][0-9]{{0,9}})_\w{{8}}\.tmp")
    removed = []
    for name in glob.glob(f".{glob.escape(path.name)}.p*_*.tmp", root_dir=path.parent):
        found = pattern.fullmatch(name)
        stale = path.parent / name
        if found and not _alive(int(found["pid"])) and stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on any
    error it is removed and `path` keeps what it held. A full file system becomes a
    `DiskFullError` naming `path` and the space left. The temporary file's name holds this
    process's id, so a later write of `path` removes one a killed process left."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        prefix = f".{path.name}.p{os.getpid()}_"
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
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
