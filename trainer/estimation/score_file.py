"""A file of proxy scores kept between runs: architecture key -> score name -> value, for one
set of proxy settings, so that no architecture is scored twice.

One gzip-compressed JSON object `{"settings": ..., "scores": {key: {name: value}}}`, rewritten
atomically (`runtime.files.write_atomic`): a job killed while saving leaves the previous file
whole, so a long scoring job that saves every few minutes loses at most those minutes. A file
is only read back for the settings it was written with; other settings are refused, never mixed.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from prp.runtime.files import write_atomic

from ..errors import PRPError


def _encode(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)  # JSON has no -inf; "-inf" reads back as float


class ScoreFile:
    """The scores of `path` for `settings` (a JSON-able dict): `scores` holds what the file
    held when opened plus what was added since; `save` writes them all."""

    def __init__(self, path: Path, settings: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings, sort_keys=True))
        self.scores: dict[str, dict[str, float]] = {}
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        try:
            with gzip.open(self.path, "rt", encoding="utf-8") as f:
                held = json.load(f)
            settings, scores = held["settings"], held["scores"]
        except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
            raise PRPError(
                f"{self.path} is not a readable score file ({type(e).__name__}: {e}); "
                "move it away to score again"
            ) from None
        if settings != self.settings:
            differ = sorted(
                k
                for k in set(settings) | set(self.settings)
                if settings.get(k) != self.settings.get(k)
            )
            raise PRPError(
                f"{self.path} holds scores computed with other settings (differing: "
                f"{', '.join(differ)}); name another file for these settings"
            )
        self.scores = {a: {n: float(v) for n, v in s.items()} for a, s in scores.items()}

    def add(self, key: str, scores: Mapping[str, float]) -> None:
        self.scores[key] = {n: float(v) for n, v in scores.items()}

    def save(self) -> None:
        """Write every score atomically (the previous file stays whole if this fails)."""
        held = {
            "settings": self.settings,
            "scores": {
                a: {n: _encode(v) for n, v in s.items()} for a, s in sorted(self.scores.items())
            },
        }
        data = gzip.compress(json.dumps(held, sort_keys=True).encode(), mtime=0)

        def write(f: IO[Any]) -> None:
            f.write(data)

        write_atomic(self.path, write, binary=True)
