"""The one way every command ends on bad input: one line naming the problem and the fix, exit
status 2, no traceback (used by the runtime's and the trainer's commands alike)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape


@contextmanager
def one_line_errors(
    console: Console, *errors: type[BaseException], prefix: str = ""
) -> Iterator[None]:
    """Inside the block, any of `errors` becomes `error: <prefix><message>` on one line and
    exit status 2; anything else propagates. Messages are printed as text, not rich markup."""
    try:
        yield
    except errors as e:
        message = " ".join(str(e).split())
        console.print(f"[red]error:[/red] {escape(prefix + message)}")
        raise typer.Exit(2) from None
