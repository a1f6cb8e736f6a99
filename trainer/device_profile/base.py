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
# --validate times every path in this many rounds and compares the table with their mean. Where
# paths differ little one round is too noisy to judge a table by: FBNet's 50 paths here
# (1.3-2.7 ms, 50 calls each) are ordered differently by two single rounds (Kendall tau-b 0.85),
# and the means of two halves of 4 rounds agree at 0.905 (docs/research-log.md, 2026-12-03). A
# round of 50 such paths takes seconds, lowering them minutes, so rounds are cheap.
VALIDATION_ROUNDS = 8
RAPL_ROOT = Path("/sys/class/powercap")
RAPL_MIN_S = 0.25  # RAPL counters update about every millisecond: integrate over longer


class ProfileError(PRPError):
    """A profile that cannot be made or checked as asked; nothing was overwritten."""


ProgressFn = Callable[[str, int, int], None]
