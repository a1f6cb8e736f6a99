"""The one way every command ends on bad input: one line naming the problem and the fix, exit
status 2, no traceback (used by the runtime's and the trainer's commands alike)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from .files import DiskFullError, disk_full, is_disk_full


@contextmanager
def one_line_errors(
    console: Console, *errors: type[BaseException], prefix: str = ""
) -> Iterator[None]:
    """Inside the block, any of `errors`, and a full file system wherever it is met, becomes
    `error: <prefix><message>` on one line and exit status 2; anything else propagates.
    Messages are printed as text, not rich markup."""
    try:
        yield
    except errors as e:
        _fail(console, prefix + " ".join(str(e).split()))
    except (OSError, RuntimeError) as e:
        if not is_disk_full(e):
            raise
        if not isinstance(e, DiskFullError):  # met outside atomic_path: name what it names
            e = disk_full(Path(getattr(e, "filename", None) or os.getcwd()))
        _fail(console, " ".join(str(e.strerror).split()))


def _fail(console: Console, message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(2) from None
