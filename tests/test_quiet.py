"""Third-party output (Python warnings, `logging`, what native code writes to fd 2) goes to the
command's log file, not to the terminal; `--verbose` (no log) leaves it on the terminal."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

NOISY = textwrap.dedent(
    """
    import logging, os, sys, warnings
    from pathlib import Path
    from prp.trainer.quiet import third_party_log

    final = None if sys.argv[1] == "-" else Path(sys.argv[1])
    with third_party_log(final, "prp-test"):
        warnings.warn("a python warning", FutureWarning)
        logging.getLogger("thirdparty").warning("a logged warning")
        os.write(2, b"a native line\\n")
        print("own progress")
        if len(sys.argv) > 2:
            raise SystemExit(3)
    print("own summary")
    """
)
NOISE = ("a python warning", "a logged warning", "a native line")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NOISY, *args], capture_output=True, text=True, timeout=60
    )


def test_third_party_output_goes_to_the_log_and_verbose_shows_it(tmp_path: Path) -> None:
    log = tmp_path / "folder made later" / "x.log"
    log.parent.mkdir()
    quiet = run(str(log))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "" and quiet.stdout == "own progress\nown summary\n"
    text = log.read_text()
    assert all(n in text for n in NOISE), text
    again = run(str(log))  # a resumed run appends
    assert again.returncode == 0 and log.read_text() == text + text
    verbose = run("-")
    assert all(n in verbose.stderr for n in NOISE) and "own summary" in verbose.stdout


def test_a_failed_block_keeps_its_log_and_says_where(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    failed = run(str(log), "fail")
    assert failed.returncode == 3 and not log.exists()
    kept = Path(failed.stderr.strip().rsplit(" ", 1)[-1])
    assert failed.stderr.startswith("prp-test: third-party output of this run is in ")
    assert all(n in kept.read_text() for n in NOISE)
    kept.unlink()
