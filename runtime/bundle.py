"""The bundle contract: `manifest.json` schema and checksummed files (DESIGN.md, "Bundle format").

Shared by the exporter (which validates what it writes) and the runtime (which validates what it
loads). Plain Python and hashlib only: the runtime must import without torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


class BundleError(Exception):
    """A bundle that is missing, damaged or of an unknown version; the message says which file."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# field -> (type or types, required)
_TOP: dict[str, tuple[Any, bool]] = {
    "schema_version": (int, True),
    "search_space": (dict, True),
    "input": (dict, True),
    "classes": (list, True),
    "objective": (str, True),
    "costs": (dict, True),
    "paths": (list, True),
    "policies": (dict, True),
    "files": (dict, True),
    "provenance": (dict, True),
}
_INPUT: dict[str, tuple[Any, bool]] = {
    "shape": (list, True),
    "dtype": (str, True),
    "layout": (str, True),
    "mean": (list, True),
    "std": (list, True),
}
_PATH: dict[str, tuple[Any, bool]] = {
    "id": (str, True),
    "method": (str, True),
    "onnx": (str, True),
    "ops": (list, True),
    "key": (str, True),
    "accuracy": ((int, float), True),
    "test_accuracy": ((int, float), True),
    "energy_mj": ((int, float, type(None)), True),
    "latency_ms": ((int, float, type(None)), True),
    "params": (int, True),
    "macs": (int, True),
    "pareto_rank": (int, True),
    "max_abs_diff": (dict, True),
}


def _check(obj: Any, spec: dict[str, tuple[Any, bool]], where: str, errors: list[str]) -> None:
    if not isinstance(obj, dict):
        errors.append(f"{where} must be an object, got {type(obj).__name__}")
        return
    for key, (types, required) in spec.items():
        if key not in obj:
            if required:
                errors.append(f"{where} lacks {key!r}")
            continue
        if not isinstance(obj[key], types) or isinstance(obj[key], bool) and types is int:
            errors.append(f"{where}.{key} has type {type(obj[key]).__name__}")


def validate_manifest(data: Any) -> list[str]:
    """Every problem found in a manifest (empty list when it is valid)."""
    errors: list[str] = []
    _check(data, _TOP, "manifest", errors)
    if errors:
        return errors
    if data["schema_version"] > SCHEMA_VERSION:
        errors.append(
            f"schema_version {data['schema_version']} is newer than this runtime reads "
            f"({SCHEMA_VERSION}); upgrade prp-nas"
        )
    _check(data["input"], _INPUT, "manifest.input", errors)
    if not data["paths"]:
        errors.append("manifest.paths is empty")
    methods = set()
    for k, path in enumerate(data["paths"]):
        _check(path, _PATH, f"manifest.paths[{k}]", errors)
        if isinstance(path, dict):
            methods.add(path.get("method"))
            for name in (path.get("onnx"),):
                if name is not None and name not in data["files"]:
                    errors.append(f"manifest.paths[{k}].onnx {name!r} is not listed in files")
    if len(methods) != len(data["paths"]):
        errors.append("manifest.paths have duplicate method names")
    accs = [p.get("accuracy") for p in data["paths"] if isinstance(p, dict)]
    numeric = [float(a) for a in accs if isinstance(a, (int, float))]
    if len(numeric) == len(accs) and numeric != sorted(numeric, reverse=True):
        errors.append("manifest.paths must be ordered from most to least accurate")
    for name, digest in data["files"].items():
        if not (isinstance(digest, str) and len(digest) == 64):
            errors.append(f"manifest.files[{name!r}] must be a sha256 hex digest")
    return errors


@dataclass(frozen=True)
class Manifest:
    directory: Path
    data: dict[str, Any]

    @property
    def paths(self) -> list[dict[str, Any]]:
        return list(self.data["paths"])


def load_manifest(directory: str | Path, verify_files: bool = True) -> Manifest:
    """Read and validate `directory/manifest.json`, and check every file's sha256."""
    d = Path(directory)
    path = d / MANIFEST
    if not d.is_dir():
        raise BundleError(
            f"bundle {d} does not exist or is not a folder; export one with prp-export"
        )
    if not path.is_file():
        raise BundleError(f"{path} is missing: {d} is not a bundle (export one with prp-export)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path} is damaged ({e}); export the bundle again") from None
    errors = validate_manifest(data)
    if errors:
        raise BundleError(f"{path} is not a valid manifest: " + "; ".join(errors))
    if verify_files:
        for name, digest in data["files"].items():
            f = d / name
            if not f.is_file():
                raise BundleError(f"bundle file {f} is missing; export the bundle again")
            actual = sha256_file(f)
            if actual != digest:
                raise BundleError(
                    f"bundle file {f} is corrupt or truncated: sha256 {actual[:12]}... does not "
                    f"match the manifest's {digest[:12]}...; copy or export the bundle again"
                )
    return Manifest(d, data)


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

    def path(self, path_id: str) -> dict[str, Any]:
        for p in self.data["paths"]:
            if p["id"] == path_id:
                return dict(p)
        raise BundleError(f"bundle {self.directory} has no path {path_id!r}; paths: {self.ids}")
