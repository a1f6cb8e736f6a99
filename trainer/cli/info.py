"""`prp-info`: the registered search spaces and cost models."""

from __future__ import annotations

import json

import typer
from prp.runtime.cli_errors import one_line_errors
from rich.table import Table

from ..costs import COST_MODEL_DEVICES, COST_MODELS
from ..errors import PRPError
from ..spaces import SPACES, get_space
from .console import make_console

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
    console = make_console()
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
