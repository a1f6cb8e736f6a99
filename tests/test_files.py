"""The one atomic-write helper (prp.runtime.files) that the runtime, the trainer and the
benchmarks write with: a failed write keeps the old file and leaves nothing beside it."""

from __future__ import annotations

import os
import stat

import pytest
from prp.runtime.files import atomic_path, write_atomic, write_bytes_atomic
from prp.trainer import runs


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path) -> None:
    target = tmp_path / "summary.json"
    write_bytes_atomic(target, b"old")

    def half_then_crash(f) -> None:
        f.write("new, but only half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, half_then_crash)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_a_written_file_reads_like_any_other_and_folders_are_made(tmp_path) -> None:
    umask = os.umask(0o022)
    try:
        target = tmp_path / "a" / "b" / "timeline.csv"
        write_bytes_atomic(target, b"time_h\n")
    finally:
        os.umask(umask)
    assert target.read_bytes() == b"time_h\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's owner-only 0600


def test_the_trainer_writes_with_the_same_helper(tmp_path) -> None:
    assert runs.atomic_path is atomic_path
    runs.write_json(tmp_path / "x.json", {"a": 1})
    assert (tmp_path / "x.json").read_text().replace(" ", "").replace("\n", "") == '{"a":1}'


def test_every_command_ends_bad_input_with_one_escaped_line_and_status_2() -> None:
    """The one CLI error wrapper: the message is printed as text (brackets in a user's value are
    not rich markup), on one line, and the exit status is 2; other errors propagate."""
    import io

    import typer
    from prp.runtime.cli_errors import one_line_errors
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, width=200)
    with pytest.raises(typer.Exit) as stop, one_line_errors(console, ValueError, prefix="x: "):
        raise ValueError("bad value '[red]b[/red]'\non two lines")
    assert stop.value.exit_code == 2
    assert out.getvalue() == "error: x: bad value '[red]b[/red]' on two lines\n"
    with pytest.raises(KeyError), one_line_errors(console, ValueError):
        raise KeyError("not ours")
