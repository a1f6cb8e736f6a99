"""`prp-pretrain`: the shipped supernets' recipe as a product command. Its config is the one the
shipped supernets were trained with; a tiny pretraining stopped after an epoch goes on to the
same result as one never stopped, ships the epoch asked for, and bad input ends in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from prp.trainer.cli import pretrain_app
from prp.trainer.errors import PRPError
from prp.trainer.pretraining import (
    Pretraining,
    default_ship_epoch,
    pretrain,
    pretrain_config,
    run_name,
)
from prp.trainer.runs import read_checkpoint
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--dataset", "default", "--limit-per-class", "12", "--epochs", "2"]


def invoke(*args: str):
    return CliRunner().invoke(pretrain_app, list(args))


@pytest.mark.parametrize("cells,folder,ship_epoch", [(2, "fair-c8-n2", 16), (1, "fair-c8", 8)])
def test_the_default_config_is_the_one_the_shipped_supernets_trained_with(
    cells, folder, ship_epoch
) -> None:
    # bench/pretrain/<folder>/config.json is the saved config of the run each shipped file
    # comes from (the 1-cell one predates the config keys `estimator` and `init`).
    shipped = json.loads((ROOT / "bench" / "pretrain" / folder / "config.json").read_text())
    given = None if cells == 2 else cells  # 2 is the default preset's own
    cfg = pretrain_config("runs/pretrain/cifar10_disjoint.npz", cells_per_stage=given)
    assert {k: v for k, v in cfg.to_json().items() if k in shipped} == shipped
    assert run_name(cfg) == folder
    assert default_ship_epoch(cfg) == ship_epoch


def test_other_spaces_get_their_own_shape_name_and_last_epoch() -> None:
    cfg = pretrain_config("data", "tiny", epochs=3)
    assert (cfg.space_size, cfg.method, cfg.epochs_fair, cfg.epochs_pareto) == (
        "tiny",
        "fair",
        3,
        0,
    )
    assert (run_name(cfg), default_ship_epoch(cfg)) == ("fair-nb201-tiny", 3)
    fbnet = pretrain_config("data", space="fbnet", epochs=4)
    assert fbnet.space_overrides == {} and run_name(fbnet) == "fair-fbnet-real"
    with pytest.raises(PRPError, match="--cells-per-stage applies to --space nb201 only"):
        pretrain_config("data", space="fbnet", cells_per_stage=2)
    with pytest.raises(PRPError, match="--ship-epoch 5: the schedule has epochs 1 to 3"):
        Pretraining(cfg, Path("x"), 5)


def test_a_stopped_pretraining_goes_on_to_the_same_supernet_and_ships_its_epoch(
    tmp_path,
) -> None:
    whole = invoke(
        *TINY,
        "--out",
        str(tmp_path / "whole"),
        "--ship",
        str(tmp_path / "a.pt"),
        "--ship-epoch",
        "1",
    )
    assert whole.exit_code == 0, whole.output
    assert "epoch 2/2 done" in whole.output and f"wrote {tmp_path / 'a.pt'}" in whole.output
    run = tmp_path / "whole" / "fair-nb201-tiny"
    assert (run / "front.json").is_file() and (run / "checkpoint-epoch1.pt").is_file()

    # The same pretraining stopped once epoch 1's checkpoint is written (as a kill would).
    cfg = pretrain_config("default", "tiny", epochs=2, limit_per_class=12)
    stopped = Pretraining(
        cfg, tmp_path / "stopped" / "fair-nb201-tiny", 1, ship_to=tmp_path / "b.pt"
    )

    def stop(epochs_done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(stopped, on_epoch=stop)
    assert read_checkpoint(stopped.run_dir / "checkpoint.pt")["epoch"] == 1
    (tmp_path / "b.pt").unlink()  # shipped before the stop: it is written again from epoch 1
    again = invoke(
        *TINY,
        "--out",
        str(tmp_path / "stopped"),
        "--ship",
        str(tmp_path / "b.pt"),
        "--ship-epoch",
        "1",
    )
    assert again.exit_code == 0, again.output
    assert "epoch 1/2 done" not in again.output and "epoch 2/2 done" in again.output
    events = [json.loads(line) for line in (stopped.run_dir / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e.get("event") == "epoch"] == [0, 1]

    assert (stopped.run_dir / "front.json").read_text() == (run / "front.json").read_text()
    last = [read_checkpoint(d / "checkpoint.pt")["supernet"] for d in (run, stopped.run_dir)]
    assert all(torch.equal(last[0][k], last[1][k]) for k in last[0])
    a, b = read_checkpoint(tmp_path / "a.pt"), read_checkpoint(tmp_path / "b.pt")
    epoch1 = read_checkpoint(run / "checkpoint-epoch1.pt")
    assert a["epoch"] == b["epoch"] == 1 and a["opt_w"]["state"] == {}
    assert all(torch.equal(a["supernet"][k], epoch1["supernet"][k]) for k in a["supernet"])
    assert all(torch.equal(a["supernet"][k], b["supernet"][k]) for k in a["supernet"])
    assert not all(torch.equal(a["supernet"][k], last[0][k]) for k in a["supernet"])

    # Going on with other settings is refused rather than mixed into the run.
    changed = invoke(*TINY, "--out", str(tmp_path / "stopped"), "--lr", "0.2")
    assert changed.exit_code == 2 and "lr" in changed.output


def test_bad_input_ends_in_one_line_and_writes_nothing(tmp_path) -> None:
    foreign = tmp_path / "mine.pt"
    foreign.write_text("not a supernet")
    stuff = tmp_path / "stuff" / "fair-nb201-tiny"
    stuff.mkdir(parents=True)
    (stuff / "notes.txt").write_text("mine")
    cases = {
        "give the data to pretrain on": TINY[:2] + TINY[4:],
        "--tar": [*TINY[:2], "--tar", str(tmp_path / "none.tar.gz")],
        "is not a supernet prp-pretrain wrote": [
            *TINY,
            "--out",
            str(tmp_path),
            "--ship",
            str(foreign),
        ],
        "holds no prp-pretrain run": [*TINY, "--out", str(tmp_path / "stuff")],
        "--ship-epoch 3: the schedule has epochs 1 to 2": [*TINY, "--ship-epoch", "3"],
        "--keep-epochs 'x'": [*TINY, "--keep-epochs", "x"],
        "unknown preset": ["--preset", "huge", "--dataset", "default"],
        "--size huge: unknown; sizes are": [*TINY, "--size", "huge"],
        "--space nope: unknown; spaces are": [*TINY, "--space", "nope"],
    }
    for message, args in cases.items():
        result = invoke(*args)
        assert result.exit_code == 2, (message, result.output)
        assert result.output.startswith("error:") and message in " ".join(result.output.split())
        assert "Traceback" not in result.output
    assert foreign.read_text() == "not a supernet"
    assert sorted(p.name for p in stuff.iterdir()) == ["notes.txt"]
