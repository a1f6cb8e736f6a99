"""--init: a run that starts from another run's trained supernet (real tiny runs)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from prp.trainer.config import preset
from prp.trainer.errors import PRPError
from prp.trainer.runs import RunLog, read_checkpoint
from prp.trainer.train import Trainer

CFG = preset("tiny")


@pytest.fixture(scope="module")
def fair_run(tmp_path_factory, data):
    """A stage-1-only supernet (--method fair, 1 epoch), as one would ship."""
    run_dir = tmp_path_factory.mktemp("fair")
    cfg = replace(CFG, method="fair", epochs_fair=1, epochs_pareto=0, prune_after=0)
    Trainer(cfg, run_dir, data=data).run()
    return run_dir


def test_init_starts_from_the_other_runs_weights_not_its_alpha(fair_run, data, tmp_path) -> None:
    cfg = replace(CFG, epochs_fair=0, init=str(fair_run))
    trainer = Trainer(cfg, tmp_path / "run", data=data)
    saved = read_checkpoint(fair_run / "checkpoint.pt")["supernet"]
    own = trainer.supernet.state_dict()
    weights = [k for k in saved if k != "alpha"]
    assert weights and all(torch.equal(own[k], saved[k]) for k in weights)
    assert not own["alpha"].any()  # alpha starts at zero: it is trained for this objective
    # A scratch run of the same seed starts elsewhere: the init is what made them equal.
    scratch = Trainer(replace(cfg, init="scratch"), tmp_path / "scratch", data=data)
    assert not all(torch.equal(scratch.supernet.state_dict()[k], saved[k]) for k in weights)
    # The run trains on from there and records which file it started from.
    trainer.run()
    start = next(
        r for r in RunLog(trainer.run_dir / "log.jsonl").records() if r["event"] == "start"
    )
    assert start["config"]["init"] == str(fair_run) and len(start["init_sha256"]) == 64


def test_init_of_another_space_size_or_a_pruned_run_is_refused(fair_run, data, tmp_path) -> None:
    wider = replace(CFG, init=str(fair_run), space_overrides={"channels": 8})
    with pytest.raises(PRPError, match="does not fit this run's space"):
        Trainer(wider, tmp_path / "a", data=data)
    pruned = tmp_path / "pruned"
    Trainer(CFG, pruned, data=data).run()  # the tiny prp preset prunes after one Pareto epoch
    with pytest.raises(PRPError, match="was pruned"):
        Trainer(replace(CFG, init=str(pruned)), tmp_path / "b", data=data)
    with pytest.raises(PRPError, match="does not exist"):
        Trainer(replace(CFG, init=str(tmp_path / "nowhere")), tmp_path / "c", data=data)


def test_cli_init_error_is_one_line_exit_2(tmp_path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from prp.trainer.cli import train_app; train_app()",
            "--preset",
            "tiny",
            "--init",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2, out.stderr
    assert "does not exist" in out.stdout and "Traceback" not in out.stdout + out.stderr
