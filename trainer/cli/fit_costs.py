"""`prp-fit-costs`: fit the NB201 per-(edge, op) cost table to per-architecture measurements."""

from __future__ import annotations

from pathlib import Path

import typer
from prp.runtime.cli_errors import one_line_errors
from rich.table import Table

from ..errors import PRPError
from .console import make_console as _console

fit_costs_app = typer.Typer(
    add_completion=False,
    help="Fit a per-(edge, op) NB201 cost table to measurements of whole architectures.",
)


@fit_costs_app.command()
def fit_costs(
    truth: Path = typer.Option(
        ...,
        help="CSV of measured NB201 architectures: arch_str and the columns edgegpu_energy, "
        "edgegpu_latency, raspi4_latency, pixel3_latency (the layout of HW-NAS-Bench's "
        "nb201_cifar10_hw.csv).",
    ),
    out: Path = typer.Option(
        Path("nb201_cost_fit.json"),
        help="Table to write (replaces only a table prp-fit-costs wrote); use it with "
        "prp-train --cost-model hwnasbench-nb201 --cost-lut OUT.",
    ),
) -> None:
    """Fit cost = base + sum of c[edge, op] by non-negative least squares to every architecture
    in TRUTH, one fit per cost column, and write the table with each fit's R^2 and tau-b."""
    from ..cost_fit import write_nb201_fit

    console = _console()
    with one_line_errors(console, PRPError):
        with console.status(f"fitting {truth}"):
            data = write_nb201_fit(truth, out)
    table = Table(title="NB201 per-(edge, op) fit")
    for col in ("column", "unit", "R^2", "tau-b", "base", "architectures"):
        table.add_column(col)
    for name, fit in data["columns"].items():
        table.add_row(
            name,
            fit["unit"],
            f"{fit['r2']:.4f}",
            f"{fit['kendall_tau_b']:.4f}",
            f"{fit['base']:.4g}",
            f"{fit['architectures']:,}",
        )
    console.print(table)
    console.print(f"wrote {out}")
