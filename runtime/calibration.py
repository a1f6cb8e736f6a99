"""A calibration: what each path of one bundle costs on one device, measured there.

The record is a JSON file per device, backend and bundle, keyed by the sha256 of the bundle's
`manifest.json` (which lists every other file's sha256, so it names the bundle exactly). It lives
outside the bundle, in the user's data folder (`calibration_dir`), or wherever the caller says,
and is written atomically. Loading checks it against the bundle it is meant for: a file of
another bundle, or one whose figures are missing, NaN or negative, is refused with one line
(`CalibrationError`), and the caller goes on with the manifest's costs.

Energy per image is either attributed from an energy meter's readings (`measuring.py`), with a
95 % interval, or, with no usable reading, the measured latency times a stated power; the record
says which (`energy_source`, `energy_note`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .bundle import MANIFEST, Manifest, resolve_in_bundle, sha256_file
from .files import write_bytes_atomic
from .measuring import Attribution, Recorder

FORMAT = "prp-nas calibration"
VERSION = 1
LATENCY_X_POWER = "latency x power"
MAX_CALIBRATION_BYTES = 4 << 20  # a real one is a few KB


class CalibrationError(ValueError):
    """A calibration file that does not fit the bundle or holds no usable figures."""


@dataclass(frozen=True)
class PathCost:
    """One path's measured cost per image."""

    latency_ms: float  # median, warm-up excluded
    p25_ms: float
    p75_ms: float
    samples: int
    energy_mj: float
    energy_ci95_mj: float | None  # None where energy is latency x power


@dataclass(frozen=True)
class Calibration:
    manifest_sha256: str
    bundle: str  # the bundle folder's name when measured (for people; the key is the hash)
    backend: str
    device: dict[str, str]
    created: str
    energy_source: str  # a meter's source ("rapl", "power_supply:BAT0") or LATENCY_X_POWER
    energy_note: str  # what the energy figures are, in a sentence
    power_w: float | None  # the stated power where energy is latency x power
    paths: dict[str, PathCost]
    fit: dict[str, float] | None = None  # baseline_w, r2, windows of the meter's regression
    seconds: float | None = None  # how long the measuring took

    def latency_ms(self) -> dict[str, float]:
        return {pid: c.latency_ms for pid, c in self.paths.items()}

    def energy_mj(self) -> dict[str, float]:
        return {pid: c.energy_mj for pid, c in self.paths.items()}

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        return {"format": FORMAT, "version": VERSION, **out}


def device_info() -> dict[str, str]:
    """This machine, as a calibration names it."""
    return {
        "host": socket.gethostname(),
        "system": platform.system(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


def manifest_sha256(bundle: Manifest) -> str:
    """The key of `bundle`'s calibrations: the sha256 of its manifest file."""
    return sha256_file(resolve_in_bundle(bundle.directory, MANIFEST))


def calibration_dir() -> Path:
    """`$PRP_DATA_DIR/calibrations`, else `$XDG_DATA_HOME/prp-nas/calibrations`, else
    `~/.local/share/prp-nas/calibrations`."""
    base = os.environ.get("PRP_DATA_DIR")
    if base:
        return Path(base) / "calibrations"
    xdg = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(xdg) / "prp-nas" / "calibrations"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "device"


def default_calibration_file(bundle: Manifest, backend: str, sha: str | None = None) -> Path:
    """Where this device's calibration of `bundle` on `backend` is kept by default."""
    sha = sha or manifest_sha256(bundle)
    return calibration_dir() / f"{sha[:16]}-{_slug(backend)}-{_slug(socket.gethostname())}.json"


MANIFEST_LATENCY = "manifest latency x power"


def manifest_latency_calibration(bundle: Manifest, power_w: float) -> Calibration:
    """Costs on the device the manifest's `latency_ms` describes (for an NB201 bundle priced by
    HW-NAS-Bench: latency measured on a Pixel 3), energy per image that latency times the stated
    `power_w`: what `prp-simulate --energy latency` drains by, with the ladders derived again on
    it as on any calibration. Nothing is measured here, and the record says so."""
    if not (math.isfinite(power_w) and power_w > 0):
        raise CalibrationError(f"the stated power must be a finite number > 0 W, got {power_w}")
    costs = bundle.data.get("costs", {}).get("latency") or {}
    paths = {}
    for p in bundle.data["paths"]:
        lat = p.get("latency_ms")
        if not (isinstance(lat, (int, float)) and math.isfinite(lat) and lat > 0):
            raise CalibrationError(
                f"{p['id']} of {bundle.directory} has no latency_ms; --energy latency needs a "
                "bundle whose manifest prices latency (or use --energy measured)"
            )
        paths[p["id"]] = PathCost(lat, lat, lat, 0, lat * power_w, None)
    device = str(costs.get("device", "the manifest's latency device"))
    return Calibration(
        manifest_sha256=manifest_sha256(bundle),
        bundle=bundle.directory.resolve().name,
        backend="none (the manifest's latency)",
        device={"name": device},
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        energy_source=MANIFEST_LATENCY,
        energy_note=f"the manifest's latency on {device} ({costs.get('source', 'its source')}) "
        f"x a stated {power_w:g} W while inferring; not measured here",
        power_w=power_w,
        paths=paths,
    )


def calibration_from(
    recorder: Recorder,
    bundle: Manifest,
    backend: str,
    power_w: float,
    seconds: float | None = None,
    sha: str | None = None,
) -> Calibration:
    """The calibration `recorder` has measured so far. Energy comes from the meter's windows
    where their regression is confident (`Attribution.confident`), else it is latency x
    `power_w`, and the record says why."""
    if not (math.isfinite(power_w) and power_w > 0):
        raise CalibrationError(f"the stated power must be a finite number > 0 W, got {power_w}")
    ids = [p["id"] for p in bundle.data["paths"]]
    missing = [pid for pid in ids if recorder.latency(pid) is None]
    if missing:
        raise CalibrationError(
            f"no measured call of {', '.join(missing)} after warm-up yet; run every path more "
            f"than {recorder.warmup_calls} times before calibrating"
        )
    attributed: Attribution | None = recorder.attribution() if recorder.meter else None
    source, note, fit, stated = _energy_source(recorder, attributed, power_w)
    paths = {}
    for pid in ids:
        lat = recorder.latency(pid)
        assert lat is not None
        if fit is not None and attributed is not None:
            energy, ci = attributed.energy_mj[pid], attributed.ci95_mj[pid]
        else:
            energy, ci = lat.median_ms * power_w, None
        paths[pid] = PathCost(lat.median_ms, lat.p25_ms, lat.p75_ms, lat.samples, energy, ci)
    return Calibration(
        manifest_sha256=sha or manifest_sha256(bundle),
        bundle=bundle.directory.resolve().name,
        backend=backend,
        device=device_info(),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        energy_source=source,
        energy_note=note,
        power_w=stated,
        paths=paths,
        fit=fit,
        seconds=seconds,
    )


def _energy_source(
    recorder: Recorder, attributed: Attribution | None, power_w: float
) -> tuple[str, str, dict[str, float] | None, float | None]:
    """(energy_source, energy_note, fit, stated power) for `calibration_from`."""
    fallback = f"energy per image = median latency x {power_w:g} W (a stated power, not measured)"
    if recorder.meter is None:
        return LATENCY_X_POWER, f"no energy reading on this device: {fallback}", None, power_w
    source = recorder.meter.source
    if attributed is None:
        why = (
            f"{source} gave {len(recorder.windows)} windows, too few or too alike to separate "
            f"the paths"
        )
        return LATENCY_X_POWER, f"{why}: {fallback}", None, power_w
    fit = {
        "baseline_w": attributed.baseline_w,
        "r2": attributed.r2,
        "windows": float(attributed.windows),
    }
    if not attributed.confident():
        worst = max(attributed.energy_mj, key=lambda p: attributed.ci95_mj[p])
        why = (
            f"{source}: the regression over {attributed.windows} windows is not confident "
            f"({worst}: {attributed.energy_mj[worst]:.4g} +- {attributed.ci95_mj[worst]:.2g} mJ)"
        )
        return LATENCY_X_POWER, f"{why}: {fallback}", fit, power_w
    note = (
        f"{source}: energy per image above the baseline ({attributed.baseline_w:.3g} W), by "
        f"least squares over {attributed.windows} windows (R^2 {attributed.r2:.3f}), with 95 % "
        "intervals"
    )
    return source, note, fit, None


# ---------------------------------------------------------------------------- the file
def save_calibration(calibration: Calibration, path: Path) -> Path:
    """Write `calibration` to `path` atomically (its folder made); returns `path`."""
    text = json.dumps(calibration.to_json(), indent=2, allow_nan=False) + "\n"
    write_bytes_atomic(Path(path), text.encode())
    return Path(path)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a calibration may hold")


def _number(value: Any, where: str, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and math.isfinite(value) and (value > 0 if positive else value >= 0):
        return float(value)
    want = "> 0" if positive else ">= 0"
    raise CalibrationError(f"{where} is {value!r}, not a finite number {want}")


def load_calibration(path: Path, bundle: Manifest, sha: str | None = None) -> Calibration:
    """The calibration in `path`, checked against `bundle`: CalibrationError (one line, naming
    the file, the problem and the fix) for a file of another bundle, a missing path, or a
    figure that is not a finite number >= 0."""
    path = Path(path)
    fix = f"measure again with prp-calibrate {bundle.directory}"
    try:
        if not path.exists():
            raise CalibrationError(f"calibration {path} does not exist; {fix}")
        if not path.is_file():  # never a FIFO or a device, which a read could block on
            raise CalibrationError(f"calibration {path} is not a file; {fix}")
        with open(path, "rb") as f:
            raw = f.read(MAX_CALIBRATION_BYTES + 1)
    except OSError as e:
        raise CalibrationError(f"cannot read calibration {path}: {e.strerror}") from None
    try:
        if len(raw) > MAX_CALIBRATION_BYTES:
            raise ValueError(f"larger than {MAX_CALIBRATION_BYTES >> 20} MiB")
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}, this runtime reads {VERSION}")
        cal = _parse(data, bundle)
    except (ValueError, KeyError, TypeError) as e:
        raise CalibrationError(f"calibration {path} is unusable ({e}); {fix}") from None
    want = sha or manifest_sha256(bundle)
    if cal.manifest_sha256 != want:
        raise CalibrationError(
            f"calibration {path} is of another bundle (manifest sha256 {cal.manifest_sha256[:16]}"
            f"..., {bundle.directory} has {want[:16]}...); {fix}"
        )
    return cal


def _parse(data: dict[str, Any], bundle: Manifest) -> Calibration:
    ids = [p["id"] for p in bundle.data["paths"]]
    paths = data["paths"]
    if not isinstance(paths, dict) or sorted(paths) != sorted(ids):
        listed = sorted(paths) if isinstance(paths, dict) else paths
        raise ValueError(f"it measures paths {listed}, the bundle has {ids}")
    costs = {}
    for pid in ids:
        p = paths[pid]
        where = f"paths.{pid}"
        ci = p.get("energy_ci95_mj")
        costs[pid] = PathCost(
            latency_ms=_number(p["latency_ms"], f"{where}.latency_ms", positive=True),
            p25_ms=_number(p["p25_ms"], f"{where}.p25_ms"),
            p75_ms=_number(p["p75_ms"], f"{where}.p75_ms"),
            samples=int(_number(p["samples"], f"{where}.samples")),
            energy_mj=_number(p["energy_mj"], f"{where}.energy_mj"),
            energy_ci95_mj=None if ci is None else _number(ci, f"{where}.energy_ci95_mj"),
        )
    power = data.get("power_w")
    sha = data["manifest_sha256"]
    if not isinstance(sha, str):
        raise ValueError(f"manifest_sha256 is {sha!r}")
    return Calibration(
        manifest_sha256=sha,
        bundle=str(data.get("bundle", "")),
        backend=str(data["backend"]),
        device={str(k): str(v) for k, v in dict(data.get("device") or {}).items()},
        created=str(data.get("created", "")),
        energy_source=str(data["energy_source"]),
        energy_note=str(data.get("energy_note", "")),
        power_w=None if power is None else _number(power, "power_w", positive=True),
        paths=costs,
        fit=data.get("fit"),
        seconds=data.get("seconds"),
    )


# ------------------------------------------------------------------------ agreement
def kendall_tau_b(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two paired sequences (ties on either side accounted for); NaN where
    one side is constant."""
    if len(a) != len(b):
        raise ValueError(f"tau-b needs paired values, got {len(a)} and {len(b)}")
    concordant = discordant = ties_a = ties_b = 0
    n = len(a)
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denominator if denominator > 0 else math.nan


def rank_agreement(
    calibration: Calibration, manifest: Mapping[str, Any]
) -> dict[str, float | None]:
    """Kendall tau-b between measured and manifest cost, per cost the manifest has for every
    path (`latency_ms`, `energy_mj`); None where it has none."""
    out: dict[str, float | None] = {}
    measured = {"latency_ms": calibration.latency_ms(), "energy_mj": calibration.energy_mj()}
    for key, values in measured.items():
        listed = [p.get(key) for p in manifest["paths"]]
        if any(v is None for v in listed):
            out[key] = None
            continue
        out[key] = kendall_tau_b([values[p["id"]] for p in manifest["paths"]], listed)
    return out
