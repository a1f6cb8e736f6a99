"""Search spaces, registered by name: `get_space("nb201", size="tiny")`."""

from __future__ import annotations

from .base import SIZES, SPACES, ChoiceBlock, Path, Priced, PrunedOp, SearchSpace, Shape, Slot


def get_space(name: str, size: str = "real", **overrides: object) -> SearchSpace:
    """Build a registered search space at `size` ("tiny" for tests, "real" for its paper size)."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; use one of: {', '.join(SIZES)}")
    return SPACES.create(name, size=size, **overrides)


def list_spaces() -> list[str]:
    return SPACES.names()


# Importing the modules registers their spaces.
from . import darts, fbnet, nb201, proxyless  # noqa: E402,F401

__all__ = [
    "SPACES",
    "SIZES",
    "ChoiceBlock",
    "Path",
    "Priced",
    "PrunedOp",
    "SearchSpace",
    "Shape",
    "Slot",
    "get_space",
    "list_spaces",
]
