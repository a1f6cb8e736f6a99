"""The console every trainer command prints to."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console


def make_console() -> Console:
    """A console wide enough for the tables when output goes to a file or pipe."""
    return Console(width=None if sys.stdout.isatty() else 160)


@contextmanager
def progress_bar(console: Console) -> Iterator[Callable[[str, int, int], None]]:
    """A transient bar with elapsed time and an estimate of the rest; yields the training
    progress callback `(task, done, total)`, which starts a fresh bar for each new task."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(task: str, done: int, total: int) -> None:
            if task not in tasks:
                for t in tasks.values():
                    bar.remove_task(t)
                tasks.clear()
                tasks[task] = bar.add_task(task, total=total)
            bar.update(tasks[task], completed=done)

        yield progress
