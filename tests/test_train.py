"""Real training of a tiny supernet on real CIFAR-10 images: every stage, resume, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from prp.trainer.config import preset
from prp.trainer.costs import get_cost_model, price_supernet
from prp.trainer.errors import PRPError
from prp.trainer.pareto import is_nondominated, pareto_ranks
from prp.trainer.runs import RunLog
from prp.trainer.search import chance_accuracy
from prp.trainer.spaces import PrunedOp, get_space
from prp.trainer.supernet import Supernet
from prp.trainer.train import Trainer, TrainingError
from prp.trainer.weight_step import ComplexityLR, weight_step

CFG = preset("tiny")  # nb201 at 4 channels, 30 images per class, 2 + 2 epochs


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data):
    run_dir = tmp_path_factory.mktemp("run")
    trainer = Trainer(CFG, run_dir, data=data)
    front = trainer.run()
    trainer.write_front(front)
    return trainer, front, run_dir


def test_every_stage_runs_and_logs(finished) -> None:
    trainer, _, run_dir = finished
    records = RunLog(run_dir / "log.jsonl").records()
    epochs = [r for r in records if r.get("event") == "epoch"]
    assert [r["stage"] for r in epochs] == ["fair", "fair", "pareto", "pareto"]
    for r in epochs:
        assert np.isfinite(r["task_loss"]) and r["images_per_s"] > 0 and r["ops_left"] > 0
    # Stage 1 trains m = 5 paths per step (every op of every slot once), stage 2 one path.
    fair, pareto = epochs[0], epochs[2]
    assert fair["path_steps"] == 5 * pareto["path_steps"]
    assert pareto["sampled"] == CFG.samples and "rank_loss" in pareto and "hinge_loss" in pareto
    # alpha ranks the whole live target pool each epoch (alpha_history), not only the n sampled.
    pool = next(r for r in records if r.get("event") == "target_pool")["paths"]
    assert pareto["ranked"] == pool > CFG.samples
    assert (run_dir / "checkpoint.pt").exists() and (run_dir / "config.json").exists()


def test_alpha_moves_only_in_the_pareto_stage(finished) -> None:
    trainer, _, run_dir = finished
    epochs = [r for r in RunLog(run_dir / "log.jsonl").records() if r.get("event") == "epoch"]
    assert np.all(np.array(epochs[1]["alpha"]) == 0)  # strict fairness leaves alpha alone
    assert np.abs(np.array(epochs[-1]["alpha"])).max() > 0.01
    assert epochs[-1]["alpha_entropy"] < epochs[1]["alpha_entropy"]
    assert epochs[2]["rank_loss"] < epochs[2]["rank_loss_first"]  # the alpha steps lower it


def test_pruning_removes_ops_and_their_weights(finished) -> None:
    trainer, _, run_dir = finished
    records = RunLog(run_dir / "log.jsonl").records()
    pruned = [r for r in records if r.get("event") == "pruned"]
    assert pruned and all(r["reason"] for r in pruned)
    prune_epoch = next(r for r in records if r.get("pruned_ops"))
    assert prune_epoch["pruned_ops"] == len(pruned)
    assert prune_epoch["params_after"] <= prune_epoch["params_before"]
    assert prune_epoch["ops_left"] == 30 - len(pruned)
    for r in pruned:
        assert not trainer.supernet.op_mask[r["slot"], r["op"]]
        assert all(
            isinstance(b.candidates[r["op"]], PrunedOp)
            for b in trainer.supernet.blocks_of(r["slot"])
        )
    for r in pruned:
        for b in trainer.supernet.blocks_of(r["slot"]):
            assert not list(b.candidates[r["op"]].parameters())
    # The weights left are the ones the log counts, and exactly the ones the optimizer updates:
    # pruned weights are neither kept nor stepped.
    live = {id(p) for p in trainer.supernet.weight_parameters()}
    stepped = {id(p) for g in trainer.opt_w.param_groups for p in g["params"]}
    assert live and stepped == live
    assert (
        sum(p.numel() for p in trainer.supernet.weight_parameters())
        == (prune_epoch["params_after"])
    )


def test_front_is_nondominated_and_priced_by_the_cost_model(finished) -> None:
    trainer, front, run_dir = finished
    data = json.loads((run_dir / "front.json").read_text())
    rank1 = [p for p in data["paths"] if p["pareto_rank"] == 1]
    pts = np.array([[p["accuracy"], p["cost"]] for p in rank1])
    assert is_nondominated(pts, [True, False]).all()
    # Costs are the cost model's, recomputed from scratch on a fresh supernet of the space.
    fresh = Supernet(get_space(CFG.space, size=CFG.space_size))
    table = price_supernet(fresh, get_cost_model("analytic", "energy"))
    for p in data["paths"]:
        assert p["cost"] == pytest.approx(table(p["path"]), rel=1e-9)
        assert trainer.space.encode(p["path"]) == p["key"]
    assert data["cost_unit"] == "mJ" and data["cost_device"] == "horowitz45-fp32"
    labels = [s["label"] for s in data["selected"]]
    assert labels[0] == "best-accuracy" and len(labels) == 5
    # The cheapest front path above chance level is always picked (chance-level paths never).
    chance = chance_accuracy(trainer.space.num_classes)
    above = [p for p in data["paths"] if p["accuracy"] > chance]
    front_above = [
        p
        for p, r in zip(
            above,
            pareto_ranks(np.array([[p["accuracy"], p["cost"]] for p in above]), [True, False]),
            strict=True,
        )
        if r == 1
    ]
    cheapest = min(front_above, key=lambda p: p["cost"])["path"]
    assert cheapest in [s["path"] for s in data["selected"]]
    assert all(s["accuracy"] > chance for s in data["selected"])
    if len(front_above) > 1:
        assert "best-cost" in labels
    assert (run_dir / "front.png").stat().st_size > 10_000
    assert (run_dir / "alpha.png").stat().st_size > 10_000
    # Only live ops in the final front: it is the pruned supernet's.
    assert all(trainer.supernet.is_live(tuple(p["path"])) for p in data["paths"])


class Crash(Exception):
    pass


def test_killed_run_resumes_to_the_same_front(finished, tmp_path, data) -> None:
    _, front, _ = finished

    class Crashing(Trainer):
        def train_epoch(self, epoch):  # crash in the middle of the 3rd epoch
            if epoch == 2:
                self.supernet.alpha.data.fill_(123.0)  # damage that must not be saved
                raise Crash
            return super().train_epoch(epoch)

    with pytest.raises(Crash):
        Crashing(CFG, tmp_path, data=data).run()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2
    with pytest.raises(PRPError, match="--resume"):
        Trainer(CFG, tmp_path, data=data).run()  # no silent overwrite
    resumed = Trainer(CFG, tmp_path, data=data).run(resume=True)
    assert [(m.path, m.accuracy, m.cost) for m in resumed] == [
        (m.path, m.accuracy, m.cost) for m in front
    ]
    epochs = [
        r["epoch"] for r in RunLog(tmp_path / "log.jsonl").records() if r.get("event") == "epoch"
    ]
    assert epochs == [0, 1, 2, 3]
    with pytest.raises(PRPError, match="options differ from the run's config.json: lr 0.5 != "):
        Trainer(replace(CFG, lr=0.5), tmp_path, data=data).run(resume=True)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_epoch(tmp_path, data) -> None:
    class Poisoned(Trainer):
        def train_epoch(self, epoch):
            if epoch == 1:
                self.tensors.train_x[:] = float("nan")
            return super().train_epoch(epoch)

    with pytest.raises(TrainingError, match="the task loss became nan at epoch 2.*Lower --lr"):
        Poisoned(CFG, tmp_path, data=data).run()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["supernet"].values() if v.is_floating_point())
    epochs = [r for r in RunLog(tmp_path / "log.jsonl").records() if r.get("event") == "epoch"]
    assert [r["epoch"] for r in epochs] == [0]
    # The run goes on from its last good epoch once the cause is gone.
    assert Trainer(CFG, tmp_path, data=data).run(resume=True)


def prp_train() -> str:
    exe = shutil.which("prp-train") or str(Path(sys.executable).parent / "prp-train")
    if not Path(exe).exists():
        pytest.fail("prp-train is not installed; run `pip install -e .[train,dev]`")
    return exe


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prp_train(), "--preset", "tiny", *args], capture_output=True, text=True, timeout=600
    )


def test_cli_bad_input_gives_clear_errors_and_writes_nothing(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    for cls in ("cat", "dog"):
        (corrupt / cls).mkdir(parents=True)
        (corrupt / cls / "0.jpg").write_bytes(b"not a jpeg")
    cases = [
        (["--data-dir", str(empty)], "no"),
        (["--data-dir", str(corrupt)], "0.jpg"),
        (["--data-dir", str(tmp_path / "missing")], "does not exist"),
        (["--top-n", "50", "--samples", "8"], "--top-n (50) must be between 1 and --samples (8)"),
        (["--w-paths", "best"], "unknown pareto_w_paths 'best'"),
        (["--complexity-lr", "1.5"], "--complexity-lr must be between 0 (off) and 1"),
    ]
    for k, (args, message) in enumerate(cases):
        out_dir = tmp_path / f"run{k}"
        result = run_cli(*args, "--out", str(out_dir))
        text = " ".join((result.stdout + result.stderr).split())
        assert result.returncode == 2, text
        assert message in text and "Traceback" not in text
        assert not out_dir.exists()


def test_cli_trains_and_writes_the_front(tmp_path) -> None:
    result = run_cli(
        "--out",
        str(tmp_path / "r"),
        "--epochs-fair",
        "1",
        "--epochs-pareto",
        "1",
        "--prune-after",
        "1",
        "--w-paths",
        "front",
        "--complexity-lr",
        "0.5",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["pareto_w_paths"] == "front" and config["complexity_lr"] == 0.5
    assert "best-accuracy" in result.stdout
    data = json.loads((tmp_path / "r" / "front.json").read_text())
    assert data["objective"] == "energy" and data["paths"]


def test_default_run_directories_never_collide(tmp_path) -> None:
    from prp.trainer.cli import latest_run_dir, new_run_dir

    assert new_run_dir(tmp_path, "nb201-energy") == tmp_path / "nb201-energy"
    (tmp_path / "nb201-energy").mkdir()
    assert new_run_dir(tmp_path, "nb201-energy") == tmp_path / "nb201-energy-2"
    assert latest_run_dir(tmp_path, "nb201-energy") == tmp_path / "nb201-energy"
    (tmp_path / "nb201-energy-2").mkdir()
    assert new_run_dir(tmp_path, "nb201-energy") == tmp_path / "nb201-energy-3"
    assert latest_run_dir(tmp_path, "nb201-energy") == tmp_path / "nb201-energy-2"


@pytest.mark.parametrize("method,m", [("fair", 5), ("uniform", 1)])
def test_baseline_methods_train_without_alpha_or_pruning(tmp_path, data, method, m) -> None:
    cfg = replace(CFG, method=method)
    trainer = Trainer(cfg, tmp_path, data=data)
    front = trainer.run()
    epochs = [r for r in RunLog(tmp_path / "log.jsonl").records() if r.get("event") == "epoch"]
    assert [r["stage"] for r in epochs] == [method] * 4
    batches_per_epoch = -(-len(data.train) // cfg.batch_size)
    assert all(r["path_steps"] == m * batches_per_epoch for r in epochs)
    assert not trainer.supernet.alpha.detach().abs().sum()
    assert trainer.supernet.ops_left() == 30 and front
    with pytest.raises(PRPError, match="unknown --method 'darts'"):
        replace(CFG, method="darts").validate()


def test_pareto_stage_can_keep_strict_fairness_for_the_weights(finished, data, tmp_path) -> None:
    cfg = replace(CFG, pareto_w_paths="fair")
    Trainer(cfg, tmp_path, data=data).run()
    batches = -(-len(data.train) // cfg.batch_size)

    def steps(run_dir):
        records = RunLog(run_dir / "log.jsonl").records()
        return [
            (r["stage"], r["path_steps"], r["ops_left"])
            for r in records
            if r.get("event") == "epoch"
        ]

    fair_w, argmax_w = steps(tmp_path), steps(finished[2])
    # Stage 2 trains one group per batch covering every live op (m = the most ops any slot has
    # left) instead of one argmax path per batch; stage 1 is the same in both.
    assert fair_w[: cfg.epochs_fair] == argmax_w[: cfg.epochs_fair]
    for stage, path_steps, _ in argmax_w[cfg.epochs_fair :]:
        assert stage == "pareto" and path_steps == batches
    assert all(ps >= 2 * batches for st, ps, _ in fair_w[cfg.epochs_fair :])
    with pytest.raises(PRPError, match="unknown pareto_w_paths 'best'"):
        replace(CFG, pareto_w_paths="best").validate()


def test_complexity_lr_gives_complex_paths_the_larger_step() -> None:
    """DYNAS's complexity-aware lr as `ComplexityLR` gives it: with plain SGD, the weights that
    only one path of a step reads move that path's weight times as far as without it; the most
    complex paths' weight is 1 / decay, the least complex paths' 1."""
    torch.manual_seed(0)
    supernet = Supernet(get_space("nb201", size="tiny"))
    calr = ComplexityLR.of(supernet, 1.0)
    rng = np.random.default_rng(1)
    drawn = [supernet.sample_uniform(rng) for _ in range(200)]
    sizes = calr.sizes.many(drawn)
    assert sizes.max() >= calr.high > calr.low >= sizes.min()  # the space's 5-95 % span
    assert calr.weights([drawn[int(np.argmin(sizes))], drawn[int(np.argmax(sizes))]], 0.25) == (
        pytest.approx([1.0, 4.0])
    )
    assert calr.weights(drawn, 1.0) == [1.0] * 200
    between = np.array(calr.weights(drawn, 0.25))
    assert np.all(np.diff(between[np.argsort(sizes, kind="stable")]) >= 0)  # grows with size
    # A small path with weights of its own (one the smallest, all skip and pool, lacks) and the
    # biggest.
    small = next(drawn[i] for i in np.argsort(sizes) if sizes[i] > calr.sizes.fixed)
    big = drawn[int(np.argmax(sizes))]
    weights = dict(zip(("small", "big"), calr.weights([small, big], 0.25), strict=True))
    assert 1.0 < weights["small"] < 2.0 and weights["big"] == pytest.approx(4.0)
    only = {  # parameters that one of the two paths reads and the other does not
        name: {id(p) for p in supernet.path_parameters(path)}
        - {id(p) for p in supernet.path_parameters(other)}
        for name, path, other in (("small", small, big), ("big", big, small))
    }
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    start = {k: v.clone() for k, v in supernet.state_dict().items()}
    moved = []
    for path_weights in (None, list(weights.values())):
        supernet.load_state_dict(start)
        opt = torch.optim.SGD(supernet.weight_parameters(), lr=0.1)
        before = {id(p): p.detach().clone() for p in supernet.weight_parameters()}
        weight_step(supernet, opt, x, y, [small, big], 1.0, 1e9, lambda _: None, path_weights)
        moved.append(
            {
                name: sum(
                    float((p.detach() - before[id(p)]).norm() ** 2)
                    for p in supernet.weight_parameters()
                    if id(p) in ids
                )
                ** 0.5
                for name, ids in only.items()
            }
        )
    for name, w in weights.items():
        assert moved[0][name] > 0
        assert moved[1][name] == pytest.approx(w * moved[0][name], rel=1e-4)


def test_pareto_stage_can_train_the_weights_on_alphas_predicted_front(data, tmp_path) -> None:
    cfg = replace(CFG, pareto_w_paths="front")
    trainer = Trainer(cfg, tmp_path, data=data)
    trainer.run()
    batches = -(-len(data.train) // cfg.batch_size)
    epochs = [r for r in RunLog(tmp_path / "log.jsonl").records() if r.get("event") == "epoch"]
    assert all("w_paths" not in r for r in epochs[: cfg.epochs_fair])
    last = epochs[-1]  # after the pruning epoch: its alpha and mask are those of its W steps
    assert last["stage"] == "pareto" and last["path_steps"] == batches
    front = [tuple(p) for p in last["w_paths"]]
    assert len(set(front)) == len(front) == cfg.top_n
    alpha, mask = np.array(last["alpha"]), np.array(last["op_mask"]).astype(bool)
    live = [p for p in trainer.targets if all(mask[s, o] for s, o in enumerate(p))]
    assert set(front) <= set(live)
    score = {p: sum(alpha[s, o] for s, o in enumerate(p)) for p in live}
    # The top-N by P_s among the live target pool, not the per-slot argmax path.
    assert min(score[p] for p in front) >= max(score[p] for p in live if p not in front)
