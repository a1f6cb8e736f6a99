"""Third-party output (Python warnings, `logging`, what native code writes to fd 2) goes to the
command's log file, not to the terminal; `--verbose` (no log) leaves it on the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from bundle_variants import battery_pick, read_manifest

NOISY = textwrap.dedent(
    """
    import logging, os, sys, warnings
    from pathlib import Path
    from prp.runtime.quiet import third_party_log

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


ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "exported" / "smoke"
# What ExecuTorch's Python runtime makes torch and torchao print while it loads.
THIRD_PARTY = ("Failed to load", "cpuinfo", "Warning", "W1")


def command(name: str, *args: str, log_dir: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name(name)
    env = {**os.environ, "PRP_LOG_DIR": str(log_dir), "COLUMNS": "160"}
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
    )


def third_party_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(t in line for t in THIRD_PARTY)]


def test_runtime_commands_keep_executorch_noise_in_a_log(tmp_path: Path) -> None:
    image = tmp_path / "x.npy"
    np.save(image, np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    args = (str(BUNDLE), str(image), "--battery", "35", "--backend", "executorch")
    quiet = command("prp-run", *args, log_dir=tmp_path / "logs")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert quiet.stderr == "" and not third_party_lines(quiet.stdout), quiet.stdout
    log = tmp_path / "logs" / "prp-run.log"
    assert third_party_lines(log.read_text()) and str(log) in " ".join(quiet.stdout.split())
    logged = log.read_text()
    verbose = command("prp-run", *args, "--verbose", log_dir=tmp_path / "logs")
    assert verbose.returncode == 0 and third_party_lines(verbose.stderr)
    assert log.read_text() == logged  # --verbose writes no log
    # The onnxruntime backend prints nothing of the kind: the log holds the last call's output
    # only, so the earlier one is gone.
    clean = command("prp-run", *args[:-1], "onnxruntime", log_dir=tmp_path / "logs")
    assert clean.returncode == 0 and clean.stderr == "" and not log.exists()

    out = tmp_path / "sim"
    sim = ("--hours", "1", "--real", "--backend", "executorch", "--out", str(out))
    simulated = command("prp-simulate", str(BUNDLE), *sim, log_dir=tmp_path / "logs")
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    assert simulated.stderr == "" and not third_party_lines(simulated.stdout)
    assert third_party_lines((out / "simulate.log").read_text())
    assert json.loads((out / "summary.json").read_text())["real"]


def test_the_runtime_as_a_library_prints_nothing_of_third_parties(tmp_path) -> None:
    """An app that imports prp.runtime and predicts with ExecuTorch (torch installed beside it)
    sees nothing from torch, torchao or XNNPACK on its console: it is in the runtime's log."""
    script = (
        "import numpy as np\n"
        "from prp.runtime import AdaptiveModel, PushedBattery\n"
        f"m = AdaptiveModel({str(ROOT / 'exported' / 'smoke')!r}, policy='battery',\n"
        "                  battery=PushedBattery(80), backend='executorch')\n"
        "print(m.predict(np.zeros((2, 32, 32, 3), np.uint8)).path)\n"
    )
    env = {**os.environ, "PRP_LOG_DIR": str(tmp_path / "logs")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == battery_pick(read_manifest(), 80)
    assert result.stderr == ""
    assert (tmp_path / "logs" / "runtime.log").is_file()
