"""`prp-profile`: profile a space here, validate a table, or write a kit for a phone."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import typer
from prp.runtime.cli_errors import one_line_errors

from ..errors import PRPError
from ..spaces import SIZES, SPACES, SearchSpace, get_space
from .base import MIN_VALIDATION_PATHS, VALIDATION_ROUNDS, ProfileError
from .measuring import profile_space
from .table import log_path, partial_path
from .validation import validate_table

# In a --kit folder: the third-party warnings and logs of building the kit (not a kit file).
KIT_LOG = "profile.log"


def check_space_option(space: str | None, size: str | None, what: str) -> SearchSpace:
    if space is None:
        raise ProfileError(f"give --space to {what} (e.g. --space nb201)")
    if space not in SPACES.names():
        raise ProfileError(
            f"unknown search space {space!r}; spaces are: {', '.join(SPACES.names())}"
        )
    if (size or "real") not in SIZES:
        raise ProfileError(f"unknown --size {size!r}; use one of: {', '.join(SIZES)}")
    return get_space(space, size=size or "real")


profile_app = typer.Typer(
    add_completion=False,
    help="Measure a search space's per-op cost table on this device, for --cost-model lut.",
)


@profile_app.command()
def profile(
    space: str = typer.Option(None, "--space", help="Search space to profile: nb201, fbnet, ..."),
    size: str = typer.Option(None, "--size", help="Space size: real (default) or tiny."),
    backend: str = typer.Option("executorch", help="executorch (XNNPACK) or onnxruntime."),
    out: Path = typer.Option(None, "--out", help="Table to write (JSON); resumed if present."),
    threads: int = typer.Option(1, help="Threads the backend may use (recorded in the table)."),
    warmup: int = typer.Option(None, help="Untimed calls before timing (default 10)."),
    repeats: int = typer.Option(None, help="Timed calls per op or path (default 50)."),
    device_name: str = typer.Option(None, "--device-name", help="Device name (default: CPU)."),
    validate: Path = typer.Option(
        None, "--validate", help="Check this table against whole paths run end to end."
    ),
    paths: int = typer.Option(MIN_VALIDATION_PATHS, help="--validate: random paths to run."),
    rounds: int = typer.Option(
        VALIDATION_ROUNDS, help="--validate: times each path is timed; the table meets the mean."
    ),
    seed: int = typer.Option(0, help="Seed of the weights, inputs and validation paths."),
    kit: Path = typer.Option(
        None,
        "--kit",
        help="Write a profile kit (ops.pte + kit.json) into this folder, for the Android "
        "bridge's OpProfiler to measure on a phone, instead of measuring here.",
    ),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="Show third-party warnings and logs here (by default they go to TABLE.log beside "
        "the table, or DIR/profile.log for --kit).",
    ),
) -> None:
    """Profile SPACE's ops into --out, check a table with --validate TABLE, or write a kit for
    a phone with --kit DIR.

    \f
    Over 80 lines for its typer signature, which declares each option."""
    from prp.runtime.quiet import third_party_log
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..cli.console import make_console

    console = make_console()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("starting", total=None)

    def step(name: str, done: int, total: int) -> None:
        bar.update(task, description=name[:60], completed=done, total=total)

    def quiet(log: Path) -> AbstractContextManager[None]:
        """Third-party output of the block into `log` (none with --verbose)."""
        return third_party_log(None if verbose else log, "prp-profile")

    def say_where(log: Path) -> None:
        if not verbose and log.exists():
            console.print(f"third-party warnings and logs: {log} (--verbose shows them)")

    with one_line_errors(console, PRPError):
        try:
            if sum(x is not None for x in (out, validate, kit)) > 1:
                raise ProfileError(
                    "give one of --out (profile here), --validate TABLE (check one) or --kit DIR "
                    "(a kit for a phone)"
                )
            if kit is not None:
                with quiet(kit / KIT_LOG):
                    kit_command(console, kit, space, size, warmup, repeats, seed)
                say_where(kit / KIT_LOG)
                return
            if validate is not None:
                if paths < MIN_VALIDATION_PATHS:
                    console.print(
                        f"[yellow]note:[/yellow] {paths} paths; quote figures from "
                        f">= {MIN_VALIDATION_PATHS}"
                    )
                with quiet(log_path(validate)), bar:
                    v = validate_table(
                        validate, paths, warmup, repeats, seed, space, size, step, rounds
                    )
                print_validation(console, validate, v)
                say_where(log_path(validate))
                return
            if space is None or out is None:
                raise ProfileError(
                    "give --space and --out to profile (e.g. --space nb201 --out my_device.json), "
                    "--validate TABLE, or --space and --kit DIR for a phone"
                )
            sp = check_space_option(space, size, "profile")
            with quiet(log_path(out)), bar:
                table = profile_space(
                    sp,
                    out,
                    backend,
                    threads,
                    10 if warmup is None else warmup,
                    50 if repeats is None else repeats,
                    device_name,
                    seed,
                    step,
                )
            print_profile(console, out, sp, table)
            say_where(log_path(out))
        except KeyboardInterrupt:
            part = partial_path(out) if out is not None and validate is None else None
            kept = (
                f"; measured ops are kept in {part}, rerun the same command to resume"
                if part
                else ""
            )
            console.print(f"[red]interrupted[/red]{kept}")
            raise typer.Exit(130) from None


def print_validation(console: Any, table: Path, v: dict[str, Any]) -> None:
    """The summary of a `--validate` run: agreement, the table's miss, the correction."""
    fix = v["correction"]
    fixed = (
        "prp-train --cost-model lut applies it"
        if fix["applied"]
        else "not applied: it does not lower the error"
    )
    console.print(
        f"{table}: {v['paths']} paths, Kendall tau-b {v['kendall_tau_b']:.3f}, "
        f"MAPE {v['mape_pct']:.1f} %, table misses {v['mean_missing_ms']:.4f} ms per "
        f"path on average (MAPE {v['mape_pct_with_offset_2fold']:.1f} % with that "
        f"offset, 2-fold), against the mean of {v['rounds']} rounds; half of the "
        f"rounds agree with the other half at Kendall tau-b "
        f"{v['repeat']['kendall_tau_b']:.3f}; {v['validation_s']:.0f} s"
    )
    console.print(
        f"correction x {fix['scale']:.3f} {'-' if fix['offset_ms'] < 0 else '+'} "
        f"{abs(fix['offset_ms']):.4f} ms per path: MAPE "
        f"{v['mape_pct_affine_2fold']:.1f} % (2-fold); {fixed}"
    )


def print_profile(console: Any, out: Path, sp: SearchSpace, table: dict[str, Any]) -> None:
    """The summary of a profile written to `out`."""
    overhead = table["method"]["call_overhead"]["median_ms"]
    console.print(
        f"wrote {out}: {len(table['ops'])} signatures of {sp.name} ({sp.size}) on "
        f"{table['device']!r}, {table['backend']} with {table['threads']} thread(s); call "
        f"overhead {overhead:.4f} ms; profiling took {table['profiling_s']:.0f} s. "
        f"{table['energy']}. Check it with: prp-profile --validate {out}"
    )


def kit_command(
    console: Any,
    kit: Path,
    space: str | None,
    size: str | None,
    warmup: int | None,
    repeats: int | None,
    seed: int,
) -> None:
    """`prp-profile --kit DIR`: write the kit and say where it goes next."""
    from .kit import KIT_MANIFEST, KIT_PROGRAM, write_kit

    sp = check_space_option(space, size, "write a kit")
    started = time.perf_counter()
    with console.status(f"lowering the op programs of {sp.name} ({sp.size})"):
        data = write_kit(
            sp, kit, 10 if warmup is None else warmup, 50 if repeats is None else repeats, seed
        )
    mb = (kit / KIT_PROGRAM).stat().st_size / 2**20
    console.print(
        f"wrote {kit / KIT_PROGRAM} ({len(data['ops'])} op signatures, {mb:.1f} MB) and "
        f"{kit / KIT_MANIFEST} in {time.perf_counter() - started:.0f} s; copy the folder to the "
        f"phone and run org.prpnas.bridge.OpProfiler on it (docs/profile.md, 'On a phone')"
    )
