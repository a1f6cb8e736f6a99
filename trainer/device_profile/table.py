"""The table's file: reading and checking one, its provenance fields, and assembling its
`ops` from raw measurements (call overhead and layout conversions paid once per path)."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..runs import read_json
from ..spaces import SearchSpace, Shape
from .base import PROFILE_FORMAT, PROFILE_VERSION, ProfileError
from .programs import OpProgram, shape_key


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def backend_versions(backend: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    out = {"python": platform.python_version(), "prp-nas": __version__}
    for pkg in ("torch", backend):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def space_json(space: SearchSpace) -> dict[str, Any]:
    return {k: v for k, v in space.describe().items() if k != "paths"}


def space_label(data: dict[str, Any]) -> str:
    return f"{data.get('name', '?')} ({data.get('size', '?')})"


def read_profile(path: Path) -> dict[str, Any]:
    """A table (or partial table) written by prp-profile; a one-line error for anything else."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("format") != PROFILE_FORMAT:
        raise ProfileError(
            f'{path} is not a prp-profile table (no "format": "{PROFILE_FORMAT}"); prp-profile '
            f"never overwrites other files: choose another --out"
        )
    if data.get("version") != PROFILE_VERSION:
        raise ProfileError(
            f"{path} is a prp-profile table of version {data.get('version')!r}; this version "
            f"reads {PROFILE_VERSION}: profile again into another --out"
        )
    if not isinstance(data.get("space"), dict) or not isinstance(data.get("measurements"), dict):
        raise ProfileError(f"{path} lacks 'space' or 'measurements'; the file is damaged")
    return data


def check_same_settings(path: Path, data: dict[str, Any], want: dict[str, Any]) -> None:
    """Refuse to resume from, or add to, a table measured for another space or setting."""
    if data["space"] != want["space"]:
        raise ProfileError(
            f"{path} holds a table for space {space_label(data['space'])}, not "
            f"{space_label(want['space'])}; its signatures would not price this space: choose "
            f"another --out, or profile --space {data['space'].get('name')} "
            f"--size {data['space'].get('size')}"
        )
    for key in ("backend", "threads"):
        if data.get(key) != want[key]:
            raise ProfileError(
                f"{path} was measured with {key} {data.get(key)!r}, not {want[key]!r}; resume "
                f"with --{key} {data.get(key)}, or choose another --out"
            )


def partial_path(out: Path) -> Path:
    """Where an unfinished profile keeps what it has measured so far."""
    return out.with_name(out.name + ".partial")


def log_path(table: Path) -> Path:
    """Where prp-profile keeps the third-party warnings and logs of measuring or validating
    `table` (`--verbose` shows them instead). The whole name plus `.log`, as `partial_path`
    does: a table named `x.log` must not be its own log."""
    return table.with_name(table.name + ".log")


def fold_target(programs: dict[str, OpProgram]) -> str | None:
    """A fixed op every path runs exactly once, to carry the once-per-path call overhead."""
    once = [p.signature for p in programs.values() if p.fixed and p.uses == 1 and not p.free]
    return once[0] if once else None


def conversion_costs(
    baselines: dict[str, dict[str, Any]], overhead: dict[str, Any], field: str = "median_ms"
) -> dict[str, float]:
    """Per 4-D shape, the cost of the NCHW <-> NHWC conversions at both ends of a program:
    (one identity conv) - (two minus one: the conv itself) - the call overhead."""
    base = float(overhead[field])
    out = {}
    for key, b in baselines.items():
        one, two = float(b["one"][field]), float(b["two"][field])
        out[key] = max(one - (two - one) - base, 0.0)
    return out


def assemble_table(
    programs: dict[str, OpProgram],
    measurements: dict[str, dict[str, Any]],
    overhead: dict[str, Any],
    baselines: dict[str, dict[str, Any]] | None = None,
    network_input: Shape | None = None,
    field: str = "median_ms",
) -> tuple[dict[str, float], str | None]:
    """`ops` of the table: each op's `field` less what a whole path pays once, not per op: one
    call's overhead and half the layout conversions of its input and output shapes (one end
    each). Those are added once to a fixed op every path has (the network's input conversion;
    its 2-D output needs none). Free ops cost 0. Returns (ops, the op carrying the overhead)."""
    base = float(overhead[field])
    convert = conversion_costs(baselines or {}, overhead, field)

    def half(shape: Sequence[int]) -> float:
        return convert.get(shape_key(tuple(shape)), 0.0) / 2

    target = fold_target(programs)
    ops: dict[str, float] = {}
    for sig, p in programs.items():
        if p.free:
            ops[sig] = 0.0
            continue
        raw = float(measurements[sig][field])
        ops[sig] = max(raw - base - half(p.in_shape) - half(p.out_shape), 0.0)
    if target is not None:
        ops[target] += base + (half(network_input) if network_input else 0.0)
    return {k: round(v, 9) for k, v in ops.items()}, target


def energy_path(out: Path) -> Path:
    return out.with_name(f"{out.stem}.energy{out.suffix or '.json'}")
