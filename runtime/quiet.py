"""Third-party output out of the user's view: what torch, ExecuTorch, torchao, ONNX and their C++
libraries print (Python warnings, their `logging`, C-level stderr) goes to a log file beside the
command's result, and the terminal keeps the project's own progress and summary.

The redirection is at file descriptor 2, so it also catches what native code writes (the cpuinfo
probes during lowering, glog lines), not only Python's `sys.stderr`. The project's messages go to
stdout (rich consoles), and an error message is printed after the block has ended, on the
terminal's stderr again."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .files import write_bytes_atomic


def _on_fd2(stream: object) -> bool:
    try:
        return stream is not None and stream.fileno() == 2  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def stderr_to(log: Path) -> Iterator[None]:
    """Inside the block, everything written to stderr (fd 2 and `sys.stderr`) is appended to
    `log`; the terminal's stderr is back when the block ends, however it ends."""
    for stream in (sys.stdout, sys.stderr, sys.__stderr__):
        if stream is not None:
            stream.flush()
    with open(log, "a", buffering=1, encoding="utf-8", errors="replace") as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        # `sys.stderr` is fd 2 in a command, and stays the same object (logging handlers made
        # inside the block keep writing to a valid stream after it); only a replaced one (an
        # in-process caller's capture) is swapped for the log.
        swap = contextlib.nullcontext() if _on_fd2(sys.stderr) else contextlib.redirect_stderr(f)
        try:
            with swap:
                yield
        finally:
            for stream in (sys.stderr, sys.__stderr__):  # lines still buffered belong to the log
                if stream is not None:
                    stream.flush()
            f.flush()
            os.dup2(saved, 2)
            os.close(saved)


# How many `third_party_log` blocks are open: inside one, a command already decides where
# third-party output goes (its log, or the terminal with --verbose), and `library_output`
# stands aside.
_open_blocks = 0


@contextlib.contextmanager
def third_party_log(final: Path | None, command: str, append: bool = True) -> Iterator[None]:
    """Third-party output of the block into a log appended to `final` once the block has
    succeeded (`_third_party_log` says how); `final` None (`--verbose`): not redirected."""
    global _open_blocks
    _open_blocks += 1
    try:
        with _third_party_log(final, command, append):
            yield
    finally:
        _open_blocks -= 1


@contextlib.contextmanager
def _third_party_log(final: Path | None, command: str, append: bool) -> Iterator[None]:
    """Third-party output of the block into a log that is appended to `final` once the block
    has succeeded (so `final` may be in a folder the block creates); nothing is written where
    there was no such output (`append=False`: `final` then holds this block's output only).
    `final` None (`--verbose`): nothing is redirected. Where the block fails, the log is kept in
    the temporary folder and its path printed on stderr."""
    if final is None:
        yield
        return
    fd, name = tempfile.mkstemp(prefix=f"{command}-", suffix=".log")
    os.close(fd)
    tmp = Path(name)
    try:
        with stderr_to(tmp):
            yield
    except BaseException:
        if tmp.stat().st_size:
            print(f"{command}: third-party output of this run is in {tmp}", file=sys.stderr)
        else:
            tmp.unlink()
        raise
    logged = tmp.read_bytes()
    tmp.unlink()
    if not logged and not append and final.is_file():
        final.unlink()  # an earlier call's log, which this call's output would have replaced
    if logged:  # a resumed run appends to the log of the runs before
        before = final.read_bytes() if append and final.is_file() else b""
        write_bytes_atomic(final, before + logged)


def user_log(command: str) -> Path:
    """Where a command without an output folder of its own (`prp-run`) keeps the third-party
    output of its last call: `$PRP_LOG_DIR`, else `~/.cache/prp-nas/logs`."""
    folder = os.environ.get("PRP_LOG_DIR") or Path.home() / ".cache" / "prp-nas" / "logs"
    return Path(folder) / f"{command}.log"


def runtime_log() -> Path:
    """Where the runtime used as a library (`AdaptiveModel`) keeps third-party output: the
    `runtime` log of `user_log`, its folder made; the null device where that cannot be written
    (a read-only home, say), since an app must never fail for want of a log."""
    log = user_log("runtime")
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a"):
            pass
    except OSError:
        return Path(os.devnull)
    return log


@contextlib.contextmanager
def library_output() -> Iterator[None]:
    """Around the runtime's own calls into noisy libraries: their stderr goes to `runtime_log()`,
    unless a command's `third_party_log` block already decides where it goes."""
    if _open_blocks:
        yield
        return
    with stderr_to(runtime_log()):
        yield
