"""`prp-eval`: ranking quality of an nb201 run against NAS-Bench-201."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from prp.runtime.cli_errors import one_line_errors
from rich.table import Table

from ..errors import PRPError
from .console import make_console

eval_app = typer.Typer(
    add_completion=False,
    help="Ranking quality of an nb201 run against NAS-Bench-201 with HW-NAS-Bench costs.",
)


def _estimator_table(result: dict[str, Any]) -> Table:
    """prp-eval's estimators side by side: the run's, then the free baselines and combinations,
    each with the paired 95 % interval of its difference."""
    from ..estimation.estimators import FREE_PART, WITHOUT_ALPHA_PART

    b = result["baselines"]
    table = Table(
        title=f"Estimators on the same {result['k']} architectures (paired bootstrap x"
        f"{result['baseline_settings']['bootstrap']})"
    )
    for col in (
        "estimator",
        "acc tau-b",
        "acc rho",
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
        f"{result['spearman_rho_accuracy']:.3f}",
        f"{result['kendall_tau_b_pareto']:.3f}",
        "",
        "",
        "",
    )
    for name, tau in result["kendall_tau_b_pareto_by_estimator"].items():
        if name != "weights":
            table.add_row(f"{name} (PRP)", "-", "-", f"{tau:.3f}", "", "", "")
    labels = {
        "params": "params",
        "macs": "MACs",
        "synflow": "synflow",
        "naswot": "NASWOT",
        "zico": "ZiCo",
        "az-nas": "AZ-NAS",
    }
    for name, e in b.items():
        if name in FREE_PART:
            vs, label = e["paired_minus_free"], f"{name} - {FREE_PART[name]}"
        else:
            vs, label = e["paired_run_minus_baseline"], f"weights - {labels.get(name, name)}"
        table.add_row(
            labels.get(name, name),
            f"{e['kendall_tau_b_accuracy']:.3f}",
            f"{e['spearman_rho_accuracy']:.3f}",
            f"{e['kendall_tau_b_pareto']:.3f}",
            label,
            diff(vs["accuracy"]),
            diff(vs["pareto"]),
        )
        if name in WITHOUT_ALPHA_PART:
            vs = e["paired_minus_without_alpha"]
            label = f"{name} - {WITHOUT_ALPHA_PART[name]}"
            table.add_row("", "", "", "", label, diff(vs["accuracy"]), diff(vs["pareto"]))
    return table


def _result_table(run: Path, result: dict[str, Any]) -> Table:
    """prp-eval's main table: the run's estimator (where it is not the shared weights alone),
    the shared weights' tau-b, alpha's, hypervolume ratio and the true figures of each pick."""
    table = Table(
        title=f"{run} ({result['method']}) against {result['cost_column']}, "
        f"K={result['k']} ({result.get('protocol', 'random')})"
    )
    table.add_column("measure")
    table.add_column("value")
    own = result.get("run_estimator_verdict")
    if own is not None and own["estimator"] != "weights":
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
        + (", shared weights alone" if own is not None and own["estimator"] != "weights" else ""),
        f"{result['kendall_tau_b_pareto']:.3f}",
    )
    for name, tau in result["kendall_tau_b_pareto_by_estimator"].items():
        if name != "weights":
            table.add_row(f"Kendall tau-b, Pareto ranks by {name}", f"{tau:.3f}")
    table.add_row(
        "Kendall tau-b, accuracy"
        + (", shared weights alone" if own is not None and own["estimator"] != "weights" else ""),
        f"{result['kendall_tau_b_accuracy']:.3f}",
    )
    table.add_row(
        "Spearman rho, accuracy"
        + (", shared weights alone" if own is not None and own["estimator"] != "weights" else ""),
        f"{result['spearman_rho_accuracy']:.3f}",
    )
    table.add_row(
        "hypervolume ratio (run front / true front)", f"{result['hypervolume_ratio']:.3f}"
    )
    for s in result["selected"]:
        table.add_row(
            f"pick {s['label']}",
            f"true acc {s['true_accuracy']:.2f} %, true Pareto rank {s['true_pareto_rank']}",
        )
    return table


@eval_app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run directory of an nb201 run."),
    truth: Path = typer.Option(..., help="nb201_cifar10_hw.csv (NAS-Bench-201 + HW-NAS-Bench)."),
    k: int = typer.Option(1000, help="Architectures to evaluate (never fed training)."),
    cost_column: str = typer.Option("edgegpu_energy", help="Cost column of the table."),
    seed: int = typer.Option(0, help="Seed of the sample of architectures."),
    protocol: str = typer.Option(
        "random",
        help="Which K architectures: random (a uniform sample) or banded (the most accurate of "
        "each of K equal-count bands of true accuracy, as DYNAS and SUMNAS report; e.g. --k 320).",
    ),
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
        help="Skip the free baselines (params, MACs, synflow, NASWOT, AZ-NAS, ZiCo, jacov and "
        "their combinations).",
    ),
    bootstrap: int = typer.Option(
        1000, help="Paired bootstrap resamples of the K architectures (baseline intervals)."
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="Show third-party warnings and logs here (by default they go to RUN/eval.log).",
    ),
) -> None:
    """Kendall's tau-b between estimated and true Pareto ranks, and hypervolume of the front,
    beside free baselines ranking the same architectures.

    \f
    Over 80 lines only for its typer options and progress bars; the work is `evaluate_run`."""
    from prp.runtime.quiet import third_party_log
    from rich.progress import Progress, TaskID

    from ..evaluate import EVAL_LOG, evaluate_run

    console = make_console()
    log = None if verbose else run / EVAL_LOG
    with one_line_errors(console, PRPError):
        with third_party_log(log, "prp-eval"), Progress(console=console, transient=True) as bar:
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
                protocol=protocol,
            )
        table = _result_table(run, result)
        console.print(table)
        if "baselines" in result:
            console.print(_estimator_table(result))
            console.print(result["supernet_adds_information"]["sentence"])
            if result.get("run_estimator", "weights") != "weights":
                console.print(result["run_estimator_verdict"]["sentence"])
        console.print(f"wrote {run}/eval_nb201.json, eval_nb201.png and eval_front.png")
        if log is not None and log.exists():
            console.print(f"third-party warnings and logs: {log} (--verbose shows them)")
