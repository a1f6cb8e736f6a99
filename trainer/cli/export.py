"""`prp-export`: a trained run as a bundle."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from prp.runtime.cli_errors import one_line_errors
from rich.markup import escape
from rich.table import Table

from ..errors import PRPError
from .console import make_console

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
    low_memory: bool = typer.Option(
        False,
        "--low-memory",
        help="Convolutions build their XNNPACK indirection buffers at each call, in memory the "
        "methods share: a loaded bundle holds less memory (6.4 of 15.3 MiB less for five "
        "real-size NB201 paths), each call takes 11-19 % longer (docs/runtime.md).",
    ),
    price_with: list[Path] = typer.Option(
        None,
        "--price-with",
        help="Also price every path with this prp-profile table (repeatable); the manifest's "
        "cost_sources names each source and its device.",
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="Show third-party warnings and logs here (by default they go to BUNDLE/export.log).",
    ),
) -> None:
    """Export RUN's pruned supernet with its top paths to a bundle, checked against PyTorch.

    \f
    Over 80 lines only for its typer options and the result table; the work is
    `export_bundle`."""
    from prp.runtime.quiet import third_party_log

    from ..export import EXPORT_LOG, export_bundle

    console = make_console()
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
                price_with=price_with or (),
                low_memory=low_memory,
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
        for objective, priced in manifest["costs"].items():
            if priced and priced.get("note"):
                console.print(
                    f"[yellow]note:[/yellow] the {objective} figures price "
                    f"{escape(priced['network'])}; {escape(priced['note'])}"
                )
        extra = [c for c in manifest.get("cost_sources", []) if c["policy_field"] is None]
        for c in extra:
            figures = ", ".join(f"{p['costs'][c['id']]:.4g}" for p in manifest["paths"])
            console.print(
                f"also priced by {escape(c['source'])} ({c['objective']} on "
                f"{escape(c['device'])}): {figures} {c['unit']}"
            )
        sizes = {f: (bundle / f).stat().st_size for f in manifest["files"]}
        console.print("files: " + ", ".join(f"{k} {v / 1024:.0f} KB" for k, v in sizes.items()))
        if log is not None and log.exists():
            console.print(f"third-party warnings and logs: {log} (--verbose shows them)")
