"""The exporter's one error type."""

from __future__ import annotations

from ..errors import PRPError


class ExportError(PRPError):
    """The run cannot be exported as asked; nothing was written."""
