"""Fitting a per-(edge, op) cost table to per-architecture measurements (`prp-fit-costs`).

HW-NAS-Bench measured whole NB201 architectures, not ops; the `hwnasbench-nb201` cost model
prices paths it has never seen with a table fitted to those measurements by non-negative least
squares (`costs.nb201_fit_table`). The table shipped in the package is this fit of the shared
`nb201_cifar10_hw.csv`; the same command fits a table to anyone's measurements in that CSV
layout (`arch_str` plus the `NB201_COST_COLUMNS` columns), which `prp-train --cost-model
hwnasbench-nb201 --cost-lut FILE` then prices with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .costs import nb201_fit_table
from .errors import PRPError
from .nb201_table import NB201_COST_COLUMNS, NB201Table
from .runs import write_json

# The keys every fitted table has: a file with other keys was not written by prp-fit-costs.
FIT_KEYS = frozenset({"what", "source", "edges", "ops", "columns"})
# A fit has a figure per (edge, op) and a base: 6 x 5 + 1 unknowns, so at least as many
# measured architectures.
MIN_ARCHITECTURES = 31


def check_fit_target(out: Path) -> None:
    """`out` may be replaced only by a new fit: never a file prp-fit-costs did not write."""
    if not out.exists():
        return
    if out.is_dir():
        raise PRPError(f"--out {out} is a folder; give the JSON file to write")
    try:
        data = json.loads(out.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict) or set(data) != FIT_KEYS:
        raise PRPError(
            f"--out {out} exists and is not a cost table prp-fit-costs wrote; it never "
            f"overwrites other files: choose another --out"
        )


def write_nb201_fit(truth: Path, out: Path) -> dict[str, Any]:
    """Fit the NB201 per-(edge, op) table to the measurements in `truth` and write it to `out`
    atomically (the same bytes for the same measurements); returns the table."""
    check_fit_target(out)
    table = NB201Table.load(truth)
    for column in NB201_COST_COLUMNS:
        table.column(column)  # a one-line error naming a missing column
    if len(table.arch_strs) < MIN_ARCHITECTURES:
        raise PRPError(
            f"--truth {truth} has {len(table.arch_strs)} architectures; a fit of the "
            f"{MIN_ARCHITECTURES - 1} per-(edge, op) costs and a base needs at least "
            f"{MIN_ARCHITECTURES}"
        )
    data = nb201_fit_table(table)
    write_json(out, data)
    return data
