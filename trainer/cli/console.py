"""The console every trainer command prints to."""

from __future__ import annotations

import sys

from rich.console import Console


def make_console() -> Console:
    """A console wide enough for the tables when output goes to a file or pipe."""
    return Console(width=None if sys.stdout.isatty() else 160)


# prp-train-paths (in progress beside this change) still imports the old private name.
_console = make_console
