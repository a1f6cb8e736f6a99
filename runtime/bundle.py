"""The bundle contract: `manifest.json` schema and checksummed files (DESIGN.md, "Bundle format").

Shared by the exporter (which validates what it writes) and the runtime (which validates what it
loads). Plain Python and hashlib only: the runtime must import without torch.

What loading guarantees (docs/security.md): every file a backend reads is listed in `files` and
its sha256 checked; every listed name is a plain file name that stays inside the bundle folder
after resolving symlinks; only regular files are opened (never a FIFO or a device, which could
block the loader); every field the runtime uses has the type and range it needs, so a damaged
manifest gives one `BundleError` naming the problem rather than a traceback later.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from .policies import ladder_errors

SCHEMA_VERSION = 2  # 2: policy tables must be ladders (policies.ladder_errors)
MANIFEST = "manifest.json"
PTE = "supernet.pte"
WEIGHTS = "weights.bin"
MAX_MANIFEST_BYTES = 64 << 20  # a real one is ~40 KB; more is not a manifest
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DTYPES = {"float32": 4, "float16": 2, "float64": 8, "int64": 8, "int32": 4, "int8": 1, "uint8": 1}
POLICY_NAMES = ("battery", "schedule", "energy-budget", "fixed")
# A path's arithmetic (`paths[k].precision`); a path without the field (every bundle before int8
# export, and every fp32 export) is float32. Input and output are float32 either way.
PRECISIONS = ("float32", "int8")


class BundleError(Exception):
    """A bundle that is missing, damaged or of an unknown version; the message says which file."""


def _open_regular(path: Path) -> int:
    """A read-only descriptor on `path`, which must be a regular file. Checked before opening
    (so a FIFO or device is never opened) and again on the open descriptor (so a file swapped
    in between is caught); O_NONBLOCK means even that race cannot block on a FIFO."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise BundleError(f"bundle file {path} is not a regular file; export the bundle again")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise BundleError(f"bundle file {path} is missing; export the bundle again") from None
    except OSError as e:
        raise BundleError(f"cannot read bundle file {path}: {e.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BundleError(f"bundle file {path} is not a regular file; export the bundle again")
    return fd


def sha256_file(path: Path) -> str:
    """sha256 of a regular file (BundleError for anything else)."""
    h = hashlib.sha256()
    with os.fdopen(_open_regular(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def plain_name_problem(name: Any) -> str | None:
    """Why `name` cannot be a bundle file name, or None when it is a plain file name: one
    component, no separator, not `.` or `..`, no control characters (so it cannot be absolute
    or climb out of the folder, whatever the platform)."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if "/" in name or "\\" in name or name in (".", "..") or ":" in name:
        return "must be a plain file name inside the bundle folder (no '/', '\\', ':' or '..')"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "must not contain control characters"
    return None


def resolve_in_bundle(directory: Path, name: str) -> Path:
    """`directory/name` after resolving symlinks, which must stay inside `directory`."""
    problem = plain_name_problem(name)
    if problem:
        raise BundleError(f"bundle file name {name!r} {problem}; export the bundle again")
    root = directory.resolve()
    try:
        target = (directory / name).resolve(strict=True)
    except FileNotFoundError:
        raise BundleError(
            f"bundle file {directory / name} is missing; export the bundle again"
        ) from None
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop on older Pythons
        raise BundleError(f"cannot resolve bundle file {directory / name}: {e}") from None
    if not target.is_relative_to(root):
        raise BundleError(
            f"bundle file {directory / name} points outside the bundle folder (a symlink to "
            f"{target}); a bundle may only read its own files"
        )
    return target


# ------------------------------------------------------------------------------- validation
def _number(value: Any) -> TypeGuard[int | float]:
    """A finite real number from JSON (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer too large for a float
        return False


def _int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# field -> (check, what it must be, required)
_Spec = dict[str, tuple[Any, str, bool]]
_TOP: _Spec = {
    "schema_version": (_int, "an integer", True),
    "search_space": (lambda v: isinstance(v, dict), "an object", True),
    "input": (lambda v: isinstance(v, dict), "an object", True),
    "classes": (lambda v: isinstance(v, list), "a list", True),
    "objective": (lambda v: isinstance(v, str), "a string", True),
    "costs": (lambda v: isinstance(v, dict), "an object", True),
    "paths": (lambda v: isinstance(v, list), "a list", True),
    "policies": (lambda v: isinstance(v, dict), "an object", True),
    "files": (lambda v: isinstance(v, dict), "an object", True),
    "provenance": (lambda v: isinstance(v, dict), "an object", True),
    "quantization": (lambda v: isinstance(v, dict), "an object", False),
    # The paired tests the ladder was built from (policies.passed_pairs); optional.
    "ladder_tests": (lambda v: isinstance(v, dict), "an object", False),
}
_INPUT: _Spec = {
    "shape": (
        lambda v: (
            isinstance(v, list) and len(v) == 4 and all(_int(d) and 1 <= d <= 1 << 16 for d in v)
        ),
        "4 integers in 1-65536 (N, C, H, W)",
        True,
    ),
    "dtype": (lambda v: v == "float32", '"float32"', True),
    "layout": (lambda v: v == "NCHW", '"NCHW"', True),
    "mean": (lambda v: isinstance(v, list) and all(_number(m) for m in v), "numbers", True),
    "std": (
        lambda v: isinstance(v, list) and all(_number(s) and s > 0 for s in v),
        "numbers > 0",
        True,
    ),
}
_PATH: _Spec = {
    "id": (lambda v: isinstance(v, str) and v != "", "a non-empty string", True),
    "method": (lambda v: isinstance(v, str) and v != "", "a non-empty string", True),
    "onnx": (lambda v: plain_name_problem(v) is None, "a plain file name", True),
    "ops": (lambda v: isinstance(v, list) and all(isinstance(o, str) for o in v), "names", True),
    "key": (lambda v: isinstance(v, str), "a string", True),
    "accuracy": (_number, "a number", True),
    "test_accuracy": (_number, "a number", True),
    "energy_mj": (lambda v: v is None or _number(v) and v >= 0, "null or a number >= 0", True),
    "latency_ms": (lambda v: v is None or _number(v) and v >= 0, "null or a number >= 0", True),
    "params": (_int, "an integer", True),
    "macs": (_int, "an integer", True),
    "pareto_rank": (_int, "an integer", True),
    "max_abs_diff": (lambda v: isinstance(v, dict), "an object", True),
    "onnx_initializers": (lambda v: isinstance(v, list), "a list", False),
    "precision": (lambda v: v in PRECISIONS, " or ".join(map(repr, PRECISIONS)), False),
    "fp32_test_accuracy": (_number, "a number", False),
}
_TENSOR: _Spec = {
    "name": (lambda v: isinstance(v, str) and v != "", "a non-empty string", True),
    "offset": (lambda v: _int(v) and v >= 0, "an integer >= 0", True),
    "length": (lambda v: _int(v) and v >= 0, "an integer >= 0", True),
    "dtype": (lambda v: isinstance(v, str) and v in _DTYPES, f"one of {sorted(_DTYPES)}", True),
    "shape": (
        lambda v: isinstance(v, list) and all(_int(d) and 0 <= d <= 1 << 31 for d in v),
        "a list of integers >= 0",
        True,
    ),
}


def _check(obj: Any, spec: _Spec, where: str, errors: list[str]) -> bool:
    """Append what is wrong with `obj` against `spec`; True when nothing was."""
    if not isinstance(obj, dict):
        errors.append(f"{where} must be an object, got {type(obj).__name__}")
        return False
    ok = True
    for key, (check, what, required) in spec.items():
        if key not in obj:
            if required:
                errors.append(f"{where} lacks {key!r}")
                ok = False
        elif not check(obj[key]):
            errors.append(f"{where}.{key} must be {what}, got {_show(obj[key])}")
            ok = False
    return ok


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else ""
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}".strip()


def _check_tensor(t: Any, where: str, errors: list[str]) -> None:
    if not _check(t, _TENSOR, where, errors):
        return
    count = math.prod(t["shape"])
    if count * _DTYPES[t["dtype"]] != t["length"]:
        errors.append(
            f"{where}: shape {t['shape']} of {t['dtype']} takes {count * _DTYPES[t['dtype']]} "
            f"bytes, not length {t['length']}"
        )
    if t["offset"] % _DTYPES[t["dtype"]]:
        errors.append(f"{where}.offset {t['offset']} is not aligned to its {t['dtype']} items")


def _check_policies(tables: dict[str, Any], ids: set[str], errors: list[str]) -> None:
    """The tables `policy_from_manifest` reads, with the types it needs. Which ladders make
    sense (descending thresholds, costs) is the policies' own check."""
    where = "manifest.policies"
    default = tables.get("default", "battery")
    if default not in POLICY_NAMES:
        errors.append(f"{where}.default must be one of {list(POLICY_NAMES)}, got {_show(default)}")
    battery = tables.get("battery")
    if not isinstance(battery, dict):
        errors.append(f"{where}.battery must be an object with levels, got {_show(battery)}")
    else:
        levels = battery.get("levels")
        if not isinstance(levels, list) or not levels:
            errors.append(f"{where}.battery.levels must be a non-empty list")
        else:
            for k, level in enumerate(levels):
                w = f"{where}.battery.levels[{k}]"
                if not isinstance(level, dict):
                    errors.append(f"{w} must be an object, got {_show(level)}")
                    continue
                pct = level.get("min_battery_pct")
                if not (_number(pct) and 0 <= pct <= 100):
                    errors.append(
                        f"{w}.min_battery_pct must be a number in 0-100, got {_show(pct)}"
                    )
                if not (isinstance(level.get("path"), str) and level["path"] in ids):
                    errors.append(
                        f"{w}.path must name a path of the bundle, got {_show(level.get('path'))}"
                    )
        hysteresis = battery.get("hysteresis_pct", 3.0)
        if not (_number(hysteresis) and 0 <= hysteresis <= 100):
            errors.append(f"{where}.battery.hysteresis_pct must be a number in 0-100")
    schedule = tables.get("schedule")
    if not isinstance(schedule, dict):
        errors.append(f"{where}.schedule must be an object with order, got {_show(schedule)}")
    else:
        order = schedule.get("order")
        if not (
            isinstance(order, list)
            and order
            and all(isinstance(p, str) and p in ids for p in order)
        ):
            errors.append(f"{where}.schedule.order must be a non-empty list of the bundle's paths")
        every = schedule.get("switch_every_h")
        if not (_number(every) and every > 0):
            errors.append(
                f"{where}.schedule.switch_every_h must be a number > 0, got {_show(every)}"
            )


def validate_manifest(data: Any) -> list[str]:
    """Every problem found in a manifest (empty list when it is valid); never raises."""
    errors: list[str] = []
    if not _check(data, _TOP, "manifest", errors):
        return errors
    if data["schema_version"] > SCHEMA_VERSION:  # a newer layout: nothing below applies
        return [
            f"schema_version {data['schema_version']} is newer than this runtime reads "
            f"({SCHEMA_VERSION}); upgrade prp-nas"
        ]
    if data["schema_version"] < 1:
        errors.append(f"schema_version must be >= 1, got {data['schema_version']}")
    if _check(data["input"], _INPUT, "manifest.input", errors):
        channels = data["input"]["shape"][1]
        for key in ("mean", "std"):
            if len(data["input"][key]) != channels:
                errors.append(
                    f"manifest.input.{key} has {len(data['input'][key])} values for {channels} "
                    f"channels"
                )
    classes = data["classes"]
    if not classes or not all(isinstance(c, str) for c in classes):
        errors.append("manifest.classes must be a non-empty list of class names")
    n_classes = data["search_space"].get("num_classes")
    if n_classes is not None and (not _int(n_classes) or n_classes != len(classes)):
        errors.append(
            f"manifest.classes lists {len(classes)} names but the network has "
            f"{n_classes if _int(n_classes) else _show(n_classes)} outputs "
            f"(search_space.num_classes)"
        )

    files = data["files"]
    if not files:
        errors.append("manifest.files is empty")
    for name, digest in files.items():
        problem = plain_name_problem(name)
        if problem:
            errors.append(f"manifest.files name {name!r} {problem}")
        if not (isinstance(digest, str) and _HEX64.fullmatch(digest)):
            errors.append(f"manifest.files[{name!r}] must be a sha256 hex digest")

    paths = data["paths"]
    if not paths:
        errors.append("manifest.paths is empty")
    ids: set[str] = set()
    methods: set[str] = set()
    paths_ok = True
    for k, path in enumerate(paths):
        where = f"manifest.paths[{k}]"
        if not _check(path, _PATH, where, errors):
            paths_ok = False
            continue
        for key, seen in (("id", ids), ("method", methods)):
            if path[key] in seen:
                errors.append(f"{where}.{key} {path[key]!r} is used by an earlier path")
            seen.add(path[key])
        if path["onnx"] not in files:
            errors.append(f"{where}.onnx {path['onnx']!r} is not listed in files")
        for j, tensor in enumerate(path.get("onnx_initializers", [])):
            _check_tensor(tensor, f"{where}.onnx_initializers[{j}]", errors)
    if paths_ok:
        accs = [float(p["accuracy"]) for p in paths]
        if accs != sorted(accs, reverse=True):
            errors.append("manifest.paths must be ordered from most to least accurate")
    # Everything a backend reads must be checksummed: the ExecuTorch program, and the weights
    # every ONNX graph reads (its external data, or initializers mapped from it).
    for name, reader in ((PTE, "the ExecuTorch backend reads"), (WEIGHTS, "the ONNX graphs read")):
        if name not in files:
            errors.append(f"manifest.files does not list {name}, which {reader}")
    _check_policies(data["policies"], ids, errors)
    errors.extend(ladder_errors(data))
    return errors


def path_precision(path: dict[str, Any]) -> str:
    """The arithmetic of a manifest path: "float32" (also where the field is absent) or "int8"."""
    return str(path.get("precision", "float32"))


# ---------------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class Manifest:
    directory: Path
    data: dict[str, Any]

    @property
    def paths(self) -> list[dict[str, Any]]:
        return list(self.data["paths"])

    def file(self, name: str) -> Path:
        """The path of bundle file `name` for a backend to read; it must be listed in `files`
        (so its checksum was verified) and stay inside the bundle folder."""
        if name not in self.data["files"]:
            raise BundleError(
                f"{self.directory} needs {name!r}, which its manifest does not list in files "
                f"(so its checksum cannot be checked); export the bundle again"
            )
        return resolve_in_bundle(self.directory, name)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _read_manifest(d: Path) -> Any:
    path = d / MANIFEST
    if not (path.exists() or path.is_symlink()):
        raise BundleError(f"{path} is missing: {d} is not a bundle (export one with prp-export)")
    fd = _open_regular(resolve_in_bundle(d, MANIFEST))
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_MANIFEST_BYTES + 1)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path} is larger than {MAX_MANIFEST_BYTES >> 20} MB: not a manifest")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError included
        raise BundleError(f"{path} is damaged ({str(e)[:200]}); export the bundle again") from None


def load_manifest(directory: str | Path, verify_files: bool = True) -> Manifest:
    """Read and validate `directory/manifest.json`, and check every listed file: a plain name
    inside the folder, a regular file, the sha256 the manifest gives."""
    d = Path(directory)
    if not d.is_dir():
        raise BundleError(
            f"bundle {d} does not exist or is not a folder; export one with prp-export"
        )
    data = _read_manifest(d)
    errors = validate_manifest(data)
    if errors:
        raise BundleError(f"{d / MANIFEST} is not a valid manifest: " + "; ".join(errors))
    manifest = Manifest(d, data)
    if verify_files:
        sizes = {}
        for name, digest in data["files"].items():
            f = manifest.file(name)
            sizes[name] = f.stat().st_size
            # Neither digest goes into the message: it names the file, which is what to act on.
            if sha256_file(f) != digest:
                raise BundleError(
                    f"bundle file {d / name} is corrupt or truncated: its sha256 does not match "
                    f"the manifest; copy or export the bundle again"
                )
        for k, p in enumerate(data["paths"]):
            for j, t in enumerate(p.get("onnx_initializers", [])):
                if t["offset"] + t["length"] > sizes[WEIGHTS]:
                    raise BundleError(
                        f"{d / MANIFEST}: paths[{k}].onnx_initializers[{j}] ({t['name']}) "
                        f"reads bytes {t['offset']}-{t['offset'] + t['length']} of {WEIGHTS}, "
                        f"which has {sizes[WEIGHTS]}; export the bundle again"
                    )
    return manifest


class Bundle(Manifest):
    """A loaded, validated bundle: `Bundle.load(dir)`."""

    @classmethod
    def load(cls, directory: str | Path) -> Bundle:
        m = load_manifest(directory)
        return cls(m.directory, m.data)

    @property
    def ids(self) -> list[str]:
        return [p["id"] for p in self.data["paths"]]

    @property
    def classes(self) -> list[str]:
        return list(self.data["classes"])

    def precision(self, path_id: str) -> str:
        """ "float32" or "int8": the arithmetic of path `path_id` (inputs and logits are float32
        either way, so backends and policies treat both alike)."""
        return path_precision(self.path(path_id))

    def path(self, path_id: str) -> dict[str, Any]:
        for p in self.data["paths"]:
            if p["id"] == path_id:
                return dict(p)
        raise BundleError(f"bundle {self.directory} has no path {path_id!r}; paths: {self.ids}")
