"""Names the profile modules share: the table's format, the backends, RAPL's place, and
the error a profile that cannot be made or checked raises."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import PRPError

PROFILE_FORMAT = "prp-profile"
PROFILE_VERSION = 1
BACKENDS = ("executorch", "onnxruntime")
MIN_VALIDATION_PATHS = 50  # the floor for figures worth quoting
RAPL_ROOT = Path("/sys/class/powercap")
RAPL_MIN_S = 0.25  # RAPL counters update about every millisecond: integrate over longer


class ProfileError(PRPError):
    """A profile that cannot be made or checked as asked; nothing was overwritten."""


ProgressFn = Callable[[str, int, int], None]
