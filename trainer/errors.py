"""Errors a user can act on: each says what was wrong, with the value, and what to do."""

from __future__ import annotations


class PRPError(Exception):
    """Base class of every error the trainer raises for bad input."""


class UnknownNameError(PRPError, KeyError):
    """A name (search space, op, cost model, device) that is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0]) if self.args else ""


class PathError(PRPError, ValueError):
    """A path that does not fit its search space or supernet."""


class LUTKeyError(PRPError, KeyError):
    """A lookup table that lacks the signature of an op it was asked to price."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RunError(PRPError):
    """A run folder, or one of its files, that is missing, damaged or not to be trusted."""


def one_line(e: BaseException, limit: int = 240) -> str:
    """`e`'s message on one line, cut to `limit` characters (torch's can span a screen)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ExportError(PRPError):
    """A run cannot be exported (or a path lowered) as asked; nothing was written."""
