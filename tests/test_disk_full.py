"""A full disk ends a command with one line naming the path and the space left, exit status 2,
the previous file intact and no temporary file left: on a real tmpfs where mounting is allowed
(root on Linux), and by injecting ENOSPC into the writes otherwise."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
import typer
from prp.runtime.cli_errors import one_line_errors
from prp.runtime.files import DiskFullError, atomic_path, write_bytes_atomic
from prp.trainer.config import preset
from prp.trainer.train import Trainer
from rich.console import Console

BIN = Path(sys.executable).parent


def test_a_full_disk_while_writing_keeps_the_old_file(tmp_path) -> None:
    target = tmp_path / "checkpoint.pt"
    write_bytes_atomic(target, b"the previous checkpoint")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError) as caught, atomic_path(target) as tmp:
        tmp.write_bytes(b"half of a new one")
        full()
    assert str(target) in str(caught.value) and "free there" in str(caught.value)
    assert target.read_bytes() == b"the previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_torch_save_on_a_full_disk_is_a_disk_full_error(tmp_path, monkeypatch) -> None:
    """torch.save reports a failed write as a RuntimeError of its zip writer: a full disk where
    no space is left (injected here; the tmpfs tests meet the real one), else a real error."""
    import prp.runtime.files as files

    target = tmp_path / "checkpoint.pt"

    def save(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 128 vs 0")

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(RuntimeError, match="unexpected pos") as plenty, atomic_path(target) as tmp:
        torch.save({}, tmp)
    assert not isinstance(plenty.value, DiskFullError)  # space left: not a full disk
    monkeypatch.setattr(files, "free_bytes", lambda path: 0)
    with pytest.raises(DiskFullError), atomic_path(target) as tmp:
        torch.save({}, tmp)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_a_checkpoint_write_failing_mid_training_ends_in_one_line(tmp_path, monkeypatch) -> None:
    """The tiny preset trained for real; its second checkpoint meets a full disk (injected): the
    command's error handler prints one line and exits 2, the first checkpoint is intact."""
    cfg = preset("tiny")
    trainer = Trainer(cfg, tmp_path / "run")
    real_save, calls = torch.save, []

    def save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        calls.append(f)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    console = Console(record=True, width=400)
    with pytest.raises(typer.Exit) as ended, one_line_errors(console):
        trainer.run()
    assert ended.value.exit_code == 2
    text = console.export_text().strip()
    assert len(text.splitlines()) == 1 and "no space left on the device writing" in text
    assert "checkpoint.pt" in text
    leftovers = [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert (tmp_path / "run" / "checkpoint.pt").is_file()  # the first one, whole
    torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)


@pytest.fixture()
def tmpfs(tmp_path):
    """A factory of real tmpfs mounts of a given size, unmounted afterwards; skips where this
    process may not mount (not root, or no tmpfs)."""
    mounts: list[Path] = []

    def mount(size_bytes: int) -> Path:
        where = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        where.mkdir()
        size = max(4096, size_bytes // 4096 * 4096)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip("this process may not mount a tmpfs: the injected-ENOSPC tests cover it")
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fails_in_one_line(command: list[str]) -> None:
    """`command` ends with exit status 2 and one error message about the full disk."""
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2, result.stdout + result.stderr
    text = " ".join(result.stdout.split())  # the message, wrapped at the console's width
    assert text.count("error:") == 1 and "no space left on the device writing" in text
    assert "Traceback" not in result.stdout + result.stderr


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_prp_train_on_a_full_tmpfs(tmpfs) -> None:
    fs = tmpfs(48 * 1024)  # config and log fit, a checkpoint does not
    out = fs / "run"
    fails_in_one_line([str(BIN / "prp-train"), "--preset", "tiny", "--out", str(out)])
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_prp_export_on_a_full_tmpfs_keeps_the_previous_bundle(tmp_path, tmpfs) -> None:
    run = tmp_path / "run"
    trainer = Trainer(preset("tiny"), run)
    trainer.write_front(trainer.run())
    first = tmp_path / "bundle"
    export = [str(BIN / "prp-export"), str(run), "--top", "2"]
    assert subprocess.run([*export, "--out", str(first)], capture_output=True).returncode == 0
    size = sum(p.stat().st_size for p in first.iterdir())
    fs = tmpfs(size + size // 2)  # room for one bundle, not for a second beside it
    previous = fs / "bundle"
    shutil.copytree(first, previous)
    before = _digest(previous)
    fails_in_one_line([*export, "--out", str(previous)])
    assert _digest(previous) == before
    assert sorted(p.name for p in fs.iterdir()) == ["bundle"]  # no temporary folder left


# --- every other command that writes: prp-simulate, prp-profile, prp-eval (ENOSPC injected) ---


@pytest.fixture()
def disk_fills(monkeypatch):
    """`disk_fills(n)`: from the (n + 1)-th file flushed on, the file system is full. Every
    atomic write flushes its temporary file to disk (fsync) before renaming it into place, where
    a full disk reports ENOSPC at the latest; a plot written through `atomic_path` without a
    flush is unaffected."""

    def fill(after: int) -> None:
        real, calls = os.fsync, []

        def fsync(fd: int) -> None:
            calls.append(fd)
            if len(calls) > after:
                raise OSError(errno.ENOSPC, "No space left on device")
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    return fill


def ended_in_one_line(result, path: Path) -> None:
    """A CliRunner result: exit status 2 and one error line naming `path` and the space."""
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert text.count("error:") == 1 and "Traceback" not in text, text
    assert f"no space left on the device writing {path} (" in text and "free there" in text


def no_temporary_files(folder: Path) -> None:
    assert [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")] == []


def test_prp_simulate_on_a_full_disk_keeps_the_previous_outputs(tmp_path, disk_fills) -> None:
    from prp.runtime.simulate import simulate_app
    from typer.testing import CliRunner

    out = tmp_path / "sim"
    first = CliRunner().invoke(simulate_app, ["exported/smoke", "--out", str(out)])
    assert first.exit_code == 0, first.output
    outputs = {"timeline.csv", "summary.json"} | ({"battery.png"} & {p.name for p in out.iterdir()})
    before = {k: v for k, v in _digest(out).items() if k in outputs}
    disk_fills(0)
    again = CliRunner().invoke(simulate_app, ["exported/smoke", "--out", str(out), "--hours", "9"])
    ended_in_one_line(again, out / "timeline.csv")
    assert {k: v for k, v in _digest(out).items() if k in outputs} == before
    no_temporary_files(out)


def test_prp_profile_on_a_full_disk_keeps_its_measurements(tmp_path, disk_fills) -> None:
    """The disk fills after the first measurement is saved: the partial table holding it is
    intact, and a later run goes on from it."""
    from prp.trainer.device_profile import profile_app
    from prp.trainer.device_profile.table import partial_path, read_profile
    from typer.testing import CliRunner

    table = tmp_path / "t.json"
    args = ["--space", "nb201", "--size", "tiny", "--backend", "onnxruntime"]
    args += ["--out", str(table), "--warmup", "0", "--repeats", "1"]
    disk_fills(1)
    result = CliRunner().invoke(profile_app, args)
    partial = partial_path(table)
    ended_in_one_line(result, partial)
    kept = read_profile(partial)
    assert not kept["complete"] and len(kept["measurements"]) == 1
    assert not table.exists()
    no_temporary_files(tmp_path)


def test_prp_eval_on_a_full_disk_keeps_the_previous_record(
    tmp_path, disk_fills, data, nb201_csv
) -> None:
    from prp.trainer.cli import eval_app
    from typer.testing import CliRunner

    run = tmp_path / "run"
    trainer = Trainer(preset("tiny"), run, data=data)
    trainer.write_front(trainer.run())
    args = [str(run), "--truth", str(nb201_csv), "--no-baselines", "--bootstrap", "50"]
    first = CliRunner().invoke(eval_app, [*args, "--k", "8"])
    assert first.exit_code == 0, first.output
    before = (run / "eval_nb201.json").read_bytes()
    disk_fills(0)
    again = CliRunner().invoke(eval_app, [*args, "--k", "10"])
    ended_in_one_line(again, run / "eval_nb201.json")
    assert (run / "eval_nb201.json").read_bytes() == before
    no_temporary_files(run)
