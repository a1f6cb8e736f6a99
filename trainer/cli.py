"""Command-line entry points of the trainer."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import typer
from prp.runtime.cli_errors import one_line_errors
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .costs import COST_MODEL_DEVICES, COST_MODELS
from .errors import PRPError
from .spaces import SPACES, get_space


def _console() -> Console:
    """A console wide enough for the tables when output goes to a file or pipe."""
    return Console(width=None if sys.stdout.isatty() else 160)


info_app = typer.Typer(
    add_completion=False, help="List the registered search spaces and cost models."
)


@info_app.command()
def info(
    space: str = typer.Option(None, "--space", help="Show one space's slots and ops."),
    size: str = typer.Option("real", "--size", help="Size of the space: real or tiny."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """List the registered search spaces and cost models (or one space's slots with --space)."""
    console = _console()
    with one_line_errors(console, PRPError):
        if space is not None:
            sp = get_space(space, size=size)
            if as_json:
                print(json.dumps({**sp.describe(), "slot_ops": {s.name: s.ops for s in sp.slots}}))
                return
            table = Table(
                title=f"{sp.name} ({size}): {sp.num_slots} slots, {sp.num_paths:.3g} paths"
            )
            table.add_column("slot")
            table.add_column("name")
            table.add_column("ops")
            for i, s in enumerate(sp.slots):
                table.add_row(str(i), s.name, ", ".join(f"{j}={o}" for j, o in enumerate(s.ops)))
            console.print(table)
            return
        spaces = [get_space(n).describe() | {"doc": SPACES.doc(n)} for n in SPACES.names()]
        models = [
            {"name": n, "doc": COST_MODELS.doc(n), "devices": COST_MODEL_DEVICES.get(n, {})}
            for n in COST_MODELS.names()
        ]
        if as_json:
            print(json.dumps({"spaces": spaces, "cost_models": models}))
            return
        t1 = Table(title="Search spaces")
        for col in ("name", "slots", "ops/slot", "paths", "input", "description"):
            t1.add_column(col)
        for s in spaces:
            t1.add_row(
                str(s["name"]),
                str(s["slots"]),
                "/".join(map(str, s["ops_per_slot"])),  # type: ignore[call-overload]
                f"{s['paths']:.3g}",
                "x".join(map(str, s["input_shape"])),  # type: ignore[call-overload]
                str(s["doc"]),
            )
        t2 = Table(title="Cost models")
        for col in ("name", "objective: devices", "description"):
            t2.add_column(col)
        for m in models:
            devs = "; ".join(f"{o}: {', '.join(d)}" for o, d in m["devices"].items())  # type: ignore[attr-defined]
            t2.add_row(str(m["name"]), devs, str(m["doc"]))
        console.print(t1)
        console.print(t2)


def _new_run_dir(root: Path, name: str) -> Path:
    """runs/<name>, or runs/<name>-2, -3, ... if taken, so running twice never collides."""
    candidate, k = root / name, 1
    while candidate.exists():
        k += 1
        candidate = root / f"{name}-{k}"
    return candidate


def _latest_run_dir(root: Path, name: str) -> Path:
    """The newest of runs/<name>, runs/<name>-2, ... (for --resume without --out)."""
    latest, k = root / name, 2
    while (root / f"{name}-{k}").exists():
        latest, k = root / f"{name}-{k}", k + 1
    return latest


train_app = typer.Typer(
    add_completion=False, help="Pareto rank-preserving supernet training and search."
)


@train_app.command()
def train(
    objective: str = typer.Option(
        None, help="Cost objective: energy (mJ, the default) or latency (ms)."
    ),
    space: str = typer.Option(None, help="Search space: nb201, fbnet, proxyless."),
    size: str = typer.Option(None, "--size", help="Space size: real or tiny."),
    cost_model: str = typer.Option(None, help="Cost model (see prp-info); default per space."),
    device: str = typer.Option(None, "--device", help="Device the cost refers to, e.g. edgegpu."),
    cost_lut: str = typer.Option(None, help="JSON/CSV table for --cost-model lut."),
    dataset: str = typer.Option(
        None,
        "--dataset",
        "--data-dir",
        help="default (embedded CIFAR-10 subset), a cifar-10-batches-py folder, a folder of "
        "class sub-folders, or a .tar.gz of one.",
    ),
    limit_per_class: int = typer.Option(None, help="Use at most this many images per class."),
    image_size: int = typer.Option(
        None,
        help="Image side in pixels (default: the space's, 32 for nb201/fbnet and tiny sizes, "
        "224 for real proxyless); images of another size are resized and center-cropped.",
    ),
    preset_name: str = typer.Option(None, "--preset", help="default (the default), tiny or paper."),
    method: str = typer.Option(
        None, help="prp (default); baselines: fair (stage 1 only) or uniform (single path)."
    ),
    epochs_fair: int = typer.Option(None, help="N_f: strict-fairness epochs."),
    epochs_pareto: int = typer.Option(None, help="N_p: Pareto-rank epochs."),
    samples: int = typer.Option(
        None, help="n: paths sampled per Pareto epoch and kept at pruning."
    ),
    top_n: int = typer.Option(None, help="N of eq. 2: top paths whose op counts are compared."),
    prune_after: int = typer.Option(None, help="Prune after this many Pareto epochs (0: never)."),
    w_paths: str = typer.Option(
        None,
        "--w-paths",
        help="Paths that train W in stage 2: argmax (the paper's per-slot argmax of alpha), "
        "front (alpha's predicted top-N) or fair (strict-fair groups).",
    ),
    batch_size: int = typer.Option(None, help="Training batch size."),
    lr: float = typer.Option(None, help="Learning rate of W (SGD)."),
    truth: str = typer.Option(None, help="NB201 CSV: target ranks from its accuracies."),
    estimator: str = typer.Option(
        None,
        "--estimator",
        help="What paths are ranked by: weights (shared-weight accuracy estimates) or "
        "weights+free (their log-rank aggregate with params, synflow and NASWOT, mapped onto "
        "the same accuracy values; the default preset's when it starts from the shipped "
        "supernet).",
    ),
    out: Path = typer.Option(
        None, help="Run directory (default: a new runs/<space>-<objective>[-k])."
    ),
    resume: bool = typer.Option(
        False,
        help="Continue the run in --out from its last checkpoint, with the run's config.json. "
        "Other options (and --preset) must be left out or match it, except --compute-device, "
        "which may change on resume.",
    ),
    seed: int = typer.Option(None, help="Random seed."),
    compute_device: str = typer.Option(None, help="cpu or cuda."),
    init: str = typer.Option(
        None,
        help="Where W starts: nb201-c8-fair (the shipped strict-fair supernet; the default "
        "preset's start where its space fits), scratch (random weights, then 8 strict-fair "
        "epochs), or a run folder (or its checkpoint.pt) of an unpruned supernet of the same "
        "space, e.g. a --method fair run.",
    ),
    top: int = typer.Option(5, help="How many paths to label along the front."),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="Show third-party warnings and logs here (by default they go to RUN/train.log).",
    ),
) -> None:
    """Train a supernet with Pareto rank preservation and write its front to the run directory."""
    from dataclasses import replace

    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from . import distributed
    from .config import preset
    from .quiet import third_party_log
    from .runs import read_config
    from .train import RESUME_MAY_CHANGE, Trainer, resume_differences

    console = _console()
    # Under torchrun every rank runs this command; rank 0 prints and writes, the others only
    # report their own errors, naming their rank.
    world = distributed.env_world_size()
    main = os.environ.get("RANK", "0") == "0"
    if world > 1:
        # torchrun stops the other ranks with SIGTERM when one fails: end through Python, so a
        # file being written is removed rather than left half-written beside the run.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    prefix = f"rank {os.environ.get('RANK')} of {world}: " if world > 1 else ""
    with one_line_errors(console, PRPError, prefix=prefix):
        overrides: dict[str, Any] = {
            "method": method,
            "objective": objective,
            "space": space,
            "space_size": size,
            "cost_model": cost_model,
            "cost_device": device,
            "cost_lut": cost_lut,
            "dataset": dataset,
            "limit_per_class": limit_per_class,
            "epochs_fair": epochs_fair,
            "epochs_pareto": epochs_pareto,
            "samples": samples,
            "top_n": top_n,
            "prune_after": prune_after,
            "pareto_w_paths": w_paths,
            "batch_size": batch_size,
            "lr": lr,
            "truth_table": truth,
            "estimator": estimator,
            "seed": seed,
            "compute_device": compute_device,
            "init": init,
        }
        cfg = preset(preset_name or "default", **overrides).with_image_size(image_size)
        name = f"{cfg.space}-{cfg.objective}"
        run_dir = out or (_latest_run_dir if resume else _new_run_dir)(Path("runs"), name)
        if resume:
            # The run goes on with its saved config: an option that would change it is refused
            # rather than silently dropped (with --preset, every key of the preset counts).
            saved = read_config(run_dir)
            given = (
                cfg.to_json()
                if preset_name
                else {k: v for k, v in overrides.items() if v is not None}
            )
            if image_size is not None and not preset_name:
                given["space_overrides"] = saved.with_image_size(image_size).space_overrides
            differ = resume_differences(saved.to_json(), given)
            if differ:
                raise PRPError(
                    f"--resume: options differ from the run's config.json: {', '.join(differ)}; "
                    f"drop them or start a new run"
                )
            cfg = replace(
                saved,
                **{k: v for k, v in overrides.items() if k in RESUME_MAY_CHANGE and v is not None},
            )
        train_log = None if verbose or not main else run_dir / "train.log"
        with (
            third_party_log(train_log, "prp-train"),
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            ) as bar,
        ):
            tasks: dict[str, Any] = {}

            def progress(task: str, done: int, total: int) -> None:
                if task not in tasks:
                    for t in tasks.values():
                        bar.remove_task(t)
                    tasks.clear()
                    tasks[task] = bar.add_task(task, total=total)
                bar.update(tasks[task], completed=done)

            trainer = Trainer(cfg, run_dir, progress=progress if main else None)
            if main:
                console.print(
                    f"run {run_dir}: {trainer.space.name} ({cfg.space_size}), {cfg.objective} "
                    f"by {trainer.cost_model.source} on {trainer.cost.device}; "
                    f"{len(trainer.data.train)} train / {len(trainer.data.val)} val images"
                    + (f"; {world} processes" if world > 1 else "")
                )
            front = trainer.run(resume=resume)
        distributed.cleanup()
        if not main:
            return
        data = trainer.write_front(front, top=top)
        table = Table(
            title=f"Selected paths ({len(front)} evaluated, "
            f"{sum(m.pareto_rank == 1 for m in front)} on the front)"
        )
        for col in ("pick", "accuracy %", f"{cfg.objective} ({trainer.cost.unit})", "path"):
            table.add_column(col)
        for s in data["selected"]:
            table.add_row(s["label"], f"{s['accuracy']:.2f}", f"{s['cost']:.4g}", s["key"])
        console.print(table)
        console.print(f"wrote {run_dir}/front.json, front.png, alpha.png")


export_app = typer.Typer(
    add_completion=False,
    help="Export a trained run as a bundle: one ExecuTorch program and ONNX graphs, one path each.",
)


def _latest_finished_run(root: Path) -> Path:
    runs = sorted(root.glob("*/front.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise PRPError(f"no finished run under {root}/; train one with prp-train or name RUN")
    return runs[-1].parent


@export_app.command()
def export(
    run: Path = typer.Argument(None, help="Run directory (default: the latest under runs/)."),
    top: int = typer.Option(5, help="How many paths along the front to export."),
    out: Path = typer.Option(None, help="Bundle folder (default: exported/<run name>)."),
    paths: list[str] = typer.Option(
        None, "--paths", help="Export these paths (encoded as in front.json 'key') instead."
    ),
    quantize: str = typer.Option(
        None, help="int8: quantize the paths (PT2E for XNNPACK, calibrated on held-out images)."
    ),
    keep_fp32: list[str] = typer.Option(
        None, "--keep-fp32", help="With --quantize: keep this path (its key) in float32."
    ),
    short_keys: bool = typer.Option(
        True,
        "--short-keys/--no-short-keys",
        help="Rename XNNPACK's 64-character constant keys in the .pte (a smaller file; uses "
        "ExecuTorch's private serialization, and falls back to the long keys where that fails).",
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="Show third-party warnings and logs here (by default they go to BUNDLE/export.log).",
    ),
) -> None:
    """Export RUN's pruned supernet with its top paths to a bundle, checked against PyTorch."""
    from .export import EXPORT_LOG, export_bundle
    from .quiet import third_party_log

    console = _console()
    with one_line_errors(console, PRPError):
        run_dir = run or _latest_finished_run(Path("runs"))
        target = out or Path("exported") / run_dir.name
        log = None if verbose else target / EXPORT_LOG
        with third_party_log(log, "prp-export"), console.status("exporting") as status:
            bundle = export_bundle(
                run_dir,
                target,
                top=top,
                paths=paths or None,
                progress=lambda msg: status.update(msg),
                quantize=quantize,
                keep_fp32=keep_fp32 or (),
                shorten_keys=short_keys,
            )
        manifest = json.loads((bundle / "manifest.json").read_text())
        fallback = manifest["export"].get("short_keys_fallback")
        if fallback:
            console.print(f"[yellow]warning:[/yellow] {escape(fallback)}")
        table = Table(title=f"{bundle}: {len(manifest['paths'])} paths")
        for col in (
            "method",
            "est. acc %",
            "test acc %",
            "energy mJ",
            "latency ms",
            "MACs",
            "max |diff|",
            "path",
        ):
            table.add_column(col)
        for p in manifest["paths"]:
            table.add_row(
                p["method"] + (" (int8)" if p.get("precision") == "int8" else ""),
                f"{p['accuracy']:.2f}",
                f"{p['test_accuracy']:.2f}",
                "-" if p["energy_mj"] is None else f"{p['energy_mj']:.4g}",
                "-" if p["latency_ms"] is None else f"{p['latency_ms']:.4g}",
                f"{p['macs']:,}",
                f"{max(p['max_abs_diff'].values()):.1e}",
                p["key"],
            )
        console.print(table)
        sizes = {f: (bundle / f).stat().st_size for f in manifest["files"]}
        console.print("files: " + ", ".join(f"{k} {v / 1024:.0f} KB" for k, v in sizes.items()))
        if log is not None and log.exists():
            console.print(f"third-party warnings and logs: {log} (--verbose shows them)")


eval_app = typer.Typer(
    add_completion=False,
    help="Ranking quality of an nb201 run against NAS-Bench-201 with HW-NAS-Bench costs.",
)


def _estimator_table(result: dict[str, Any]) -> Table:
    """prp-eval's estimators side by side: the run's, then the free baselines and combinations,
    each with the paired 95 % interval of its difference."""
    b = result["baselines"]
    table = Table(
        title=f"Estimators on the same {result['k']} architectures (paired bootstrap x"
        f"{result['baseline_settings']['bootstrap']})"
    )
    for col in (
        "estimator",
        "acc tau-b",
        "Pareto tau-b",
        "difference",
        "acc diff [95 % CI]",
        "Pareto diff [95 % CI]",
    ):
        table.add_column(col)

    def diff(d: dict[str, Any]) -> str:
        low, high = d["ci95"]
        return f"{d['diff']:+.3f} [{low:+.3f}, {high:+.3f}]"

    table.add_row(
        "supernet weights",
        f"{result['kendall_tau_b_accuracy']:.3f}",
        f"{result['kendall_tau_b_pareto']:.3f}",
        "",
        "",
        "",
    )
    for name, tau in result["kendall_tau_b_pareto_by_estimator"].items():
        if name != "weights":
            table.add_row(f"{name} (PRP)", "-", f"{tau:.3f}", "", "", "")
    labels = {"params": "params", "macs": "MACs", "synflow": "synflow", "naswot": "NASWOT"}
    for name, e in b.items():
        if name == "supernet+free":
            vs, label = e["paired_minus_free"], "supernet+free - free"
        else:
            vs, label = e["paired_run_minus_baseline"], f"weights - {labels.get(name, name)}"
        table.add_row(
            labels.get(name, name),
            f"{e['kendall_tau_b_accuracy']:.3f}",
            f"{e['kendall_tau_b_pareto']:.3f}",
            label,
            diff(vs["accuracy"]),
            diff(vs["pareto"]),
        )
    return table


@eval_app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run directory of an nb201 run."),
    truth: Path = typer.Option(..., help="nb201_cifar10_hw.csv (NAS-Bench-201 + HW-NAS-Bench)."),
    k: int = typer.Option(1000, help="Architectures to evaluate (never fed training)."),
    cost_column: str = typer.Option("edgegpu_energy", help="Cost column of the table."),
    seed: int = typer.Option(0, help="Seed of the sample of architectures."),
    eval_images: int = typer.Option(
        None, help="Held-out images per accuracy estimate (default: the run's)."
    ),
    bn_batches: int = typer.Option(
        None, help="Training batches that recalibrate BatchNorm per path (default: the run's)."
    ),
    compute_device: str = typer.Option(
        None, help="cpu or cuda (default: the run's device where available, else cpu)."
    ),
    no_baselines: bool = typer.Option(
        False,
        "--no-baselines",
        help="Skip the free baselines (params, MACs, synflow, NASWOT and their combinations).",
    ),
    bootstrap: int = typer.Option(
        1000, help="Paired bootstrap resamples of the K architectures (baseline intervals)."
    ),
) -> None:
    """Kendall's tau-b between estimated and true Pareto ranks, and hypervolume of the front,
    beside free baselines ranking the same architectures."""
    from rich.progress import Progress, TaskID

    from .evaluate import evaluate_run

    console = _console()
    with one_line_errors(console, PRPError):
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("estimating architectures", total=k)
            proxy_tasks: dict[str, TaskID] = {}

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            def baseline_progress(name: str, done: int, total: int) -> None:
                if name not in proxy_tasks:
                    proxy_tasks[name] = bar.add_task(f"free baseline {name}", total=total)
                bar.update(proxy_tasks[name], completed=done, total=total)

            result = evaluate_run(
                run,
                truth,
                k=k,
                cost_column=cost_column,
                seed=seed,
                progress=progress,
                eval_images=eval_images,
                bn_batches=bn_batches,
                compute_device=compute_device,
                baselines=not no_baselines,
                bootstrap=bootstrap,
                baseline_progress=baseline_progress,
            )
        table = Table(
            title=f"{run} ({result['method']}) against {result['cost_column']}, K={result['k']}"
        )
        table.add_column("measure")
        table.add_column("value")
        own = result.get("run_estimator_verdict")
        if own is not None and own["row"] != "weights":
            # The run ranked paths by this estimator: its figures lead, the raw shared-weight
            # ones follow.
            table.add_row(
                f"Kendall tau-b, Pareto ranks, the run's estimator ({own['estimator']})",
                f"{own['kendall_tau_b_pareto']:.3f}",
            )
            table.add_row(
                f"Kendall tau-b, accuracy, the run's estimator ({own['estimator']})",
                f"{own['kendall_tau_b_accuracy']:.3f}",
            )
        table.add_row(
            "Kendall tau-b, Pareto ranks"
            + (", shared weights alone" if own is not None and own["row"] != "weights" else ""),
            f"{result['kendall_tau_b_pareto']:.3f}",
        )
        for name, tau in result["kendall_tau_b_pareto_by_estimator"].items():
            if name != "weights":
                table.add_row(f"Kendall tau-b, Pareto ranks by {name}", f"{tau:.3f}")
        table.add_row(
            "Kendall tau-b, accuracy"
            + (", shared weights alone" if own is not None and own["row"] != "weights" else ""),
            f"{result['kendall_tau_b_accuracy']:.3f}",
        )
        table.add_row(
            "hypervolume ratio (run front / true front)", f"{result['hypervolume_ratio']:.3f}"
        )
        for s in result["selected"]:
            table.add_row(
                f"pick {s['label']}",
                f"true acc {s['true_accuracy']:.2f} %, true Pareto rank {s['true_pareto_rank']}",
            )
        console.print(table)
        if "baselines" in result:
            console.print(_estimator_table(result))
            console.print(result["supernet_adds_information"]["sentence"])
            if result.get("run_estimator", "weights") != "weights":
                console.print(result["run_estimator_verdict"]["sentence"])
        console.print(f"wrote {run}/eval_nb201.json and eval_nb201.png")
