"""`kill -9` at random moments of the long jobs, many times: a streamed-data training
(`prp-train` on a class-folder tree), an int8 export (`prp-export --quantize int8`) and a
`prp-profile` measurement. After each kill the job is started again (with `--resume` where the
run has its config); a kill is survived when everything the job left is whole (config, log,
checkpoint, partial table, bundle) and the next start goes on from it. Each job then runs to
its end and is compared with one never killed (training: the same weights and front) or
checked whole (export: a bundle that loads and predicts; profile: a complete table).

    OMP_NUM_THREADS=1 python bench/kill_jobs.py [--kills 10] [--only train,export,profile]

Writes bench/results/kill_jobs.json and prints a table (`tests/test_kills.py` does a few of
the same kills in CI).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import RESULTS, ROOT, print_table, update_record

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def kill_after(command: list[str], delay_s: float, ready: Callable[[], bool] = lambda: True) -> int:
    """Runs `command`; `delay_s` seconds after `ready()` first holds, SIGKILL. Its status."""
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    while job.poll() is None and not ready():
        time.sleep(0.05)
    deadline = time.monotonic() + delay_s
    while job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if job.poll() is None:
        job.send_signal(signal.SIGKILL)
    return job.wait()


def temp_files(folder: Path) -> list[str]:
    """Temporary files of atomic writes a kill interrupted (whole files are never touched)."""
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


def whole(check: Callable[[], None]) -> bool:
    try:
        check()
        return True
    except Exception as e:  # noqa: BLE001 - any failure to read back is a corrupt state
        print(f"  not whole: {type(e).__name__}: {e}")
        return False


def write_photos(root: Path, per_class: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            h, w = (int(v) for v in rng.integers(40, 100, 2))
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}/{j:03d}.jpg", quality=90)


TRAIN = ["--preset", "tiny", "--epochs-fair", "3", "--epochs-pareto", "2", "--prune-after", "1"]
TRAIN += ["--samples", "4", "--top-n", "2"]


def train_job(work: Path, kills: int, rng: np.random.Generator) -> dict[str, Any]:
    tree = work / "photos"
    write_photos(tree, per_class=12)
    command = [str(BIN / "prp-train"), *TRAIN, "--data-dir", str(tree)]
    t0 = time.monotonic()
    ref = subprocess.run([*command, "--out", str(work / "whole")], env=ENV, capture_output=True)
    seconds = time.monotonic() - t0
    assert ref.returncode == 0, ref.stdout.decode() + ref.stderr.decode()
    out, tried, survived, finished, leftovers = work / "killed", 0, 0, 0, 0

    def state() -> None:
        if (out / "config.json").is_file():
            json.loads((out / "config.json").read_text())
        if (out / "checkpoint.pt").is_file():
            torch.load(out / "checkpoint.pt", weights_only=True)

    while tried < kills:
        resume = ["--resume"] if (out / "config.json").is_file() else []
        if (out / "front.json").is_file():  # it finished: start the run over for more kills
            out = work / f"killed-{tried}"
            resume = []
        code = kill_after(
            [*command, "--out", str(out), *resume], float(rng.uniform(0, seconds)), out.exists
        )
        if code != -signal.SIGKILL:
            finished += code == 0
            continue
        tried += 1
        leftovers += len(temp_files(out))
        survived += whole(state)
    resume = ["--resume"] if (out / "config.json").is_file() else []
    done = subprocess.run([*command, "--out", str(out), *resume], env=ENV, capture_output=True)
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (work / "whole", out))
    same = done.returncode == 0 and all(
        torch.equal(a["supernet"][k], b["supernet"][k]) for k in a["supernet"]
    )
    same = same and (out / "front.json").read_text() == (work / "whole" / "front.json").read_text()
    return {
        "job": "prp-train on a streamed 24-image tree (tiny preset, 5 epochs)",
        "seconds_unkilled": round(seconds, 1),
        "kills_tried": tried,
        "kills_survived": survived,
        "runs_finished_between_kills": finished,
        "temporary_files_left": leftovers,
        "final_equal_to_unkilled": same,
    }


def export_job(work: Path, kills: int, rng: np.random.Generator) -> dict[str, Any]:
    from prp.runtime import AdaptiveModel, PushedBattery
    from prp.trainer.config import preset
    from prp.trainer.train import Trainer

    run = work / "run"
    trainer = Trainer(preset("tiny"), run)
    trainer.write_front(trainer.run())
    bundle = work / "exported" / "b"
    command = [str(BIN / "prp-export"), str(run), "--top", "3", "--quantize", "int8"]
    command += ["--out", str(bundle)]
    t0 = time.monotonic()
    first = subprocess.run(command, env=ENV, capture_output=True)
    seconds = time.monotonic() - t0
    assert first.returncode == 0, first.stdout.decode() + first.stderr.decode()

    def state() -> None:
        if bundle.exists():
            AdaptiveModel(bundle, battery=PushedBattery(100), backend="onnxruntime")

    tried = survived = finished = left = 0
    while tried < kills:
        code = kill_after(command, float(rng.uniform(0, seconds)))
        if code != -signal.SIGKILL:
            finished += code == 0
            continue
        tried += 1
        left = max(left, len([p for p in bundle.parent.iterdir() if p.name != "b"]))
        survived += whole(state)
    done = subprocess.run(command, env=ENV, capture_output=True)
    model = AdaptiveModel(bundle, battery=PushedBattery(100), backend="onnxruntime")
    photo = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    ok = done.returncode == 0 and bool(np.all(np.isfinite(model.predict(photo).logits)))
    return {
        "job": "prp-export --quantize int8 --top 3 of a tiny run",
        "seconds_unkilled": round(seconds, 1),
        "kills_tried": tried,
        "kills_survived": survived,
        "runs_finished_between_kills": finished,
        "most_leftover_folders_after_a_kill": left,
        "leftover_folders_after_the_last_export": sorted(
            p.name for p in bundle.parent.iterdir() if p.name != "b"
        ),
        "final_bundle_loads_and_predicts": ok,
    }


def profile_job(work: Path, kills: int, rng: np.random.Generator) -> dict[str, Any]:
    from prp.trainer.device_profile.table import partial_path, read_profile

    tried = survived = leftovers = finished = 0
    kept_most = 0
    tables: list[Path] = []
    while tried < kills:
        table = work / f"t{len(tables)}.json"  # a new profile once the last one finished
        tables.append(table)
        partial = partial_path(table)
        command = [str(BIN / "prp-profile"), "--space", "nb201", "--size", "tiny"]
        command += ["--backend", "onnxruntime", "--out", str(table)]
        command += ["--warmup", "0", "--repeats", "1"]
        kept: dict[str, Any] = {}

        def saved_more(
            partial: Path = partial, kept: dict[str, Any] = kept, table: Path = table
        ) -> bool:
            try:
                return len(read_profile(partial)["measurements"]) > len(kept)
            except Exception:  # noqa: BLE001 - not there yet
                return table.exists()

        while tried < kills:
            code = kill_after(command, float(rng.uniform(0, 3.0)), saved_more)
            if code != -signal.SIGKILL:
                finished += code == 0
                break
            tried += 1
            leftovers += len(temp_files(work))
            try:
                if table.exists():  # killed after the table was written: it is the result
                    assert read_profile(table)["complete"], "an incomplete table"
                    survived += 1
                    break
                now = read_profile(partial)["measurements"]
                assert all(now[s] == m for s, m in kept.items()), "a kept measurement changed"
            except Exception as e:  # noqa: BLE001 - any failure to read back is a corrupt state
                print(f"  not whole: {type(e).__name__}: {e}")
                continue
            survived += 1
            kept.clear()
            kept.update(now)
            kept_most = max(kept_most, len(kept))
    done = subprocess.run(command, env=ENV, capture_output=True)
    complete = all(read_profile(t).get("complete") for t in tables if t.exists())
    return {
        "job": "prp-profile --space nb201 --size tiny --backend onnxruntime (13 signatures)",
        "kills_tried": tried,
        "kills_survived": survived,
        "profiles_started": len(tables),
        "runs_finished_between_kills": finished,
        "temporary_files_left": leftovers,
        "final_tables_complete": done.returncode == 0 and complete,
        "most_measurements_kept_across_kills": kept_most,
    }


JOBS = {"train": train_job, "export": export_job, "profile": profile_job}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10, help="kills per job")
    parser.add_argument("--only", default=",".join(JOBS), help="jobs, comma-separated")
    parser.add_argument("--seed", type=int, default=33)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    results = {}
    with tempfile.TemporaryDirectory(prefix="kill-jobs-") as tmp:
        for name in args.only.split(","):
            work = Path(tmp) / name
            work.mkdir()
            t0 = time.monotonic()
            results[name] = {**JOBS[name](work, args.kills, rng)}
            results[name]["bench_seconds"] = round(time.monotonic() - t0, 1)
            print(name, json.dumps(results[name]))
    path = RESULTS / "kill_jobs.json"
    for name, result in results.items():  # one job at a time: --only keeps the others' figures
        update_record("kill_jobs", (name,), {"seed": args.seed, "kills": args.kills, **result})
    rows = [
        [n, r["kills_tried"], r["kills_survived"], r.get("temporary_files_left", "-")]
        for n, r in results.items()
    ]
    print_table("kill -9 at random moments", ["job", "kills", "survived", "temp files"], rows)
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
