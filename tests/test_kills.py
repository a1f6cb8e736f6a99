"""`kill -9` at random moments of the long jobs (issue 33, point 4): a streamed-data training,
an int8 export and a `prp-profile` measurement are each killed while they run, then started
again; each goes on (or starts over) and ends with nothing corrupt. The moments come from a
seeded generator; what is asserted holds wherever a kill lands (`bench/kill_jobs.py` kills
each job many more times and records how many survived)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from prp.runtime import AdaptiveModel, PushedBattery
from prp.runtime.files import write_bytes_atomic
from prp.trainer.config import preset
from prp.trainer.device_profile.table import partial_path, read_profile
from prp.trainer.runs import RunLog
from prp.trainer.train import Trainer
from test_data_pipeline import write_photos

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def kill_after(command: list[str], delay_s: float, ready: Callable[[], bool] = lambda: True):
    """Runs `command`, and once `ready()` holds (polled) sends it SIGKILL `delay_s` seconds
    later. Returns its exit status: -9 when the kill landed, else how it ended by itself."""
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    while job.poll() is None and not ready():
        time.sleep(0.05)
    deadline = time.monotonic() + delay_s
    while job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if job.poll() is None:
        job.send_signal(signal.SIGKILL)
    job.wait()
    return job.returncode


def temporary_files(folder: Path) -> list[str]:
    """Temporary files of atomic writes (a kill inside one leaves its file until the next
    write of the same file removes it)."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def test_a_write_killed_inside_leaves_a_temporary_file_the_next_write_removes(
    tmp_path: Path,
) -> None:
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"the previous checkpoint")
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from prp.runtime.files import atomic_path\n"
        "with atomic_path(Path(sys.argv[1])) as tmp:\n"
        "    tmp.write_bytes(b'half of a new one')\n"
        "    print(tmp.name, flush=True)\n"
        "    time.sleep(600)\n"
    )
    job = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE)
    assert job.stdout is not None
    left = job.stdout.readline().decode().strip()
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert left == f".checkpoint.pt.p{job.pid}_{left.split('_', 1)[1]}"
    assert (tmp_path / left).is_file() and target.read_bytes() == b"the previous checkpoint"
    live = tmp_path / f".checkpoint.pt.p{os.getpid()}_abcd1234.tmp"  # a write still going on
    other = tmp_path / ".checkpoint.pt.notes.tmp"  # not named as a write names its file
    for f in (live, other):
        f.write_bytes(b"kept")
    write_bytes_atomic(target, b"a new checkpoint")
    assert target.read_bytes() == b"a new checkpoint"
    assert temporary_files(tmp_path) == sorted([live.name, other.name])


TRAIN = ["--preset", "tiny", "--epochs-fair", "2", "--epochs-pareto", "1", "--prune-after", "1"]
TRAIN += ["--samples", "4", "--top-n", "2"]


def test_a_streamed_training_killed_at_random_moments_resumes_to_the_same_run(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "photos"
    write_photos(tree, per_class=10)
    command = [str(BIN / "prp-train"), *TRAIN, "--data-dir", str(tree)]
    whole = subprocess.run(
        [*command, "--out", str(tmp_path / "whole")], capture_output=True, text=True, env=ENV
    )
    assert whole.returncode == 0, whole.stdout + whole.stderr

    out = tmp_path / "killed"
    rng = np.random.default_rng(33)
    # A random moment in the first second of the run's folder (setting up, or epoch 1), then
    # one in the second after its first checkpoint (training on, or the resumed start).
    moments = [
        (float(rng.uniform(0.0, 1.0)), lambda: out.exists()),
        (float(rng.uniform(0.0, 1.0)), lambda: (out / "checkpoint.pt").exists()),
    ]
    landed = 0
    for delay, ready in moments:
        resume = ["--resume"] if (out / "config.json").is_file() else []
        code = kill_after([*command, "--out", str(out), *resume], delay, ready)
        landed += code == -signal.SIGKILL
        if code != -signal.SIGKILL:
            assert code == 0
            break
        if (out / "config.json").is_file():  # whatever a kill left is whole
            json.loads((out / "config.json").read_text())
        if (out / "checkpoint.pt").is_file():
            _checkpoint(out / "checkpoint.pt")
    resume = ["--resume"] if (out / "config.json").is_file() else []
    done = subprocess.run(
        [*command, "--out", str(out), *resume], capture_output=True, text=True, env=ENV
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert landed >= 1  # at least one kill hit the running job

    a, b = (_checkpoint(d / "checkpoint.pt") for d in (tmp_path / "whole", out))
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(a["supernet"][k], b["supernet"][k]) for k in a["supernet"])
    assert (out / "front.json").read_text() == (tmp_path / "whole" / "front.json").read_text()
    epochs = [r["epoch"] for r in RunLog(out / "log.jsonl").records() if "stage" in r]
    assert epochs == [0, 1, 2]
    assert temporary_files(out) == []  # each file written again since: none left


def _checkpoint(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_an_int8_export_killed_at_random_moments_is_exported_whole_after(
    tmp_path: Path, data
) -> None:
    run = tmp_path / "run"
    cfg = preset("tiny", epochs_fair=1, epochs_pareto=1, prune_after=1)
    trainer = Trainer(cfg, run, data=data)
    trainer.write_front(trainer.run())
    bundle = tmp_path / "exported" / "b"
    command = [str(BIN / "prp-export"), str(run), "--top", "1", "--quantize", "int8"]
    command += ["--out", str(bundle)]
    rng = np.random.default_rng(4)
    parent = bundle.parent
    # A random moment of loading and quantizing, then one after the bundle's temporary folder
    # appears (lowering and writing the programs).
    moments = [
        (float(rng.uniform(2.0, 10.0)), lambda: True),
        (float(rng.uniform(0.0, 3.0)), lambda: any(parent.glob(".b.tmp-*"))),
    ]
    landed = 0
    for delay, ready in moments:
        code = kill_after(command, delay, ready)
        assert code in (0, -signal.SIGKILL), code
        landed += code == -signal.SIGKILL
        if bundle.exists():  # only ever a whole bundle under the name asked for
            AdaptiveModel(bundle, battery=PushedBattery(100), backend="onnxruntime")
    assert landed >= 1
    done = subprocess.run(command, capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    model = AdaptiveModel(bundle, battery=PushedBattery(100), backend="onnxruntime")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["quantization"]["precision"] == "int8" and manifest["quantization"]["paths"]
    photo = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    assert np.all(np.isfinite(model.predict(photo).logits))
    # The killed exports' temporary folders were cleared by the export that finished.
    assert sorted(p.name for p in parent.iterdir()) == ["b"]


def test_a_profile_killed_at_random_moments_keeps_what_it_measured(tmp_path: Path) -> None:
    """Each kill lands a random time after a measurement is saved; the partial table is whole
    and the next run keeps every measurement in it, measuring on from there."""
    table = tmp_path / "t.json"
    partial = partial_path(table)
    command = [str(BIN / "prp-profile"), "--space", "nb201", "--size", "tiny"]
    command += ["--backend", "onnxruntime", "--out", str(table), "--warmup", "0", "--repeats", "1"]
    rng = np.random.default_rng(7)
    kept: dict = {}

    def one_more_saved() -> bool:
        try:
            return len(read_profile(partial)["measurements"]) > len(kept)
        except Exception:  # noqa: BLE001 - not written yet
            return False

    for delay in rng.uniform(0.0, 3.0, 2):
        code = kill_after(command, float(delay), one_more_saved)
        assert code in (0, -signal.SIGKILL), code
        if code == 0:
            break
        now = read_profile(partial)["measurements"]  # whole, whenever the kill came
        assert len(now) > len(kept)
        assert all(now[sig] == m for sig, m in kept.items())  # earlier ones kept as they were
        kept = now
    assert kept, "no kill landed while measuring"
