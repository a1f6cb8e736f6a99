"""Images a source holds that cannot be used: the one-line refusal that names every one of them
(beside a file of the list when there are many), and a run's record of the images it trained
without (`bad_images.json` in the run folder, kept by `TrainingRecord` as training goes)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prp.runtime.files import write_bytes_atomic

from .base import BadImage, DatasetError, cache_dir

# Up to this many bad images are all named in the error line; more are listed in a file.
IN_LINE = 10
RECORD = "bad_images.json"
SKIP_OPTION = "--skip-bad-images"


class BadImagesError(DatasetError):
    """Images of a source that cannot be decoded, all of them in `bad`."""

    def __init__(self, message: str, bad: Sequence[BadImage] = ()) -> None:
        super().__init__(message)
        self.bad = tuple(bad)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def list_file(where: str, bad: Sequence[BadImage]) -> Path:
    """The list of `bad` images of source `where`, one `name<TAB>reason` a line, written
    atomically to the data cache folder (`base.cache_dir`), never beside the user's data."""
    key = hashlib.sha256(where.encode()).hexdigest()[:12]
    path = cache_dir() / f"bad-images-{Path(where).name or 'data'}-{key}.txt"
    text = "".join(f"{b.name}\t{_one_line(b.reason)}\n" for b in bad)
    write_bytes_atomic(path, text.encode())
    return path


def refusal(where: str, bad: Sequence[BadImage]) -> BadImagesError:
    """The one-line error for a source with `bad` images: every one named (with why) when
    there are at most `IN_LINE`, else the first ones and the file that lists them all."""
    named = "; ".join(f"{b.name} ({_one_line(b.reason)})" for b in bad[:IN_LINE])
    # prp-export and prp-eval read a run's data as the run's config says, so the option that
    # leaves the images out belongs to the training command.
    fix = (
        f"replace or remove them, or add {SKIP_OPTION} to the training command (prp-train, "
        "prp-pretrain, prp-train-paths) to train without them"
    )
    if len(bad) <= IN_LINE:
        noun = "image" if len(bad) == 1 else "images"
        return BadImagesError(
            f"{len(bad)} {noun} of {where} cannot be decoded: {named}; {fix}", bad
        )
    try:
        listed = f"all listed in {list_file(where, bad)}"
    except OSError as e:  # the list is a convenience: the refusal stands without it
        listed = f"their list could not be written ({_one_line(str(e))})"
    return BadImagesError(
        f"{len(bad)} images of {where} cannot be decoded, {listed}; the first {IN_LINE}: "
        f"{named}; {fix}",
        bad,
    )


def _entries(bad: Sequence[BadImage]) -> list[dict[str, Any]]:
    return [{"name": b.name, "reason": _one_line(b.reason)} for b in bad]


def read_record(run_dir: Path) -> list[dict[str, Any]]:
    """The images a run skipped while training, as recorded (empty for none or no record)."""
    try:
        data = json.loads((run_dir / RECORD).read_text())
        return [dict(e) for e in data.get("skipped_in_training", [])]
    except (OSError, ValueError, AttributeError, TypeError):
        return []


def write_record(
    run_dir: Path, left_out: Sequence[BadImage], in_training: Sequence[dict[str, Any]]
) -> None:
    """`run_dir/bad_images.json`: the images left out before training (`--skip-bad-images`,
    and fixed image pools that would not decode) and those skipped while training, each with
    the epoch it was met in (`{"epoch", "name", "reason"}`)."""
    data = {
        "left_out": _entries(left_out),
        "skipped_in_training": list(in_training),
        "count": len({b.name for b in left_out} | {e["name"] for e in in_training}),
    }
    write_bytes_atomic(run_dir / RECORD, (json.dumps(data, indent=1) + "\n").encode())


@dataclass
class TrainingRecord:
    """A training run's `bad_images.json` as it trains: the images `left_out` before training
    and those skipped in the epochs done so far (`{"epoch", "name", "reason"}` each). The file
    is written when `writes` (rank 0 alone under torchrun: every rank meets the same images)
    and holds something."""

    run_dir: Path
    left_out: Sequence[BadImage]
    writes: bool = True
    skipped_in_training: list[dict[str, Any]] = field(default_factory=list)

    def resume(self, epochs_done: int) -> None:
        """Start from the run's record of its first `epochs_done` epochs (a resumed run forgets
        the images met in the epoch it did not finish, as its log does)."""
        self.skipped_in_training = [
            e for e in read_record(self.run_dir) if int(e.get("epoch", -1)) < epochs_done
        ]
        if self.writes and (self.left_out or self.skipped_in_training):
            write_record(self.run_dir, self.left_out, self.skipped_in_training)

    def add(self, epoch: int, skipped: Sequence[BadImage]) -> int:
        """Adds the images of `epoch` that did not decode while training; returns how many."""
        if not skipped:
            return 0
        self.skipped_in_training += [
            {"epoch": epoch, "name": b.name, "reason": _one_line(b.reason)} for b in skipped
        ]
        if self.writes:
            write_record(self.run_dir, self.left_out, self.skipped_in_training)
        return len(skipped)
