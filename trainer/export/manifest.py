"""What the manifest says about an export: costs per path (float32 and int8), weight bytes,
switching tables and provenance."""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from prp.runtime.bundle import SCHEMA_VERSION
from prp.runtime.policies import ladder_policies, passed_pairs
from torch import Tensor, nn

from .. import __version__
from ..config import DEFAULT_COST_MODELS
from ..costs import COST_MODEL_DEVICES, get_cost_model, price_supernet
from ..datasets import DataSplits
from ..errors import PRPError
from ..lowering import (
    FP32,
    INT8,
    Int8Path,
    distinct_bytes,
    live_tensors,
    stored_constants,
)
from ..profiling import PathTable
from ..search import PathMetrics
from ..spaces import Path as ArchPath
from .checks import INT8_TOLERANCE, TOLERANCE
from .run import LoadedRun


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "prp-nas": __version__}
    for pkg in ("torch", "executorch", "onnx", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


# Where the run's own cost model also prices the other objective, the device it is priced on,
# in order of preference: a phone first, where the runtime's policies are meant to run.
OTHER_OBJECTIVE_DEVICES = ("pixel3", "pixel1", "raspi4", "edgegpu")


def other_objective_cost(run: LoadedRun, objective: str) -> tuple[PathTable, Any] | None:
    """A table for the objective the run did not train on: the run's own cost model where it
    has that objective (NB201 priced by HW-NAS-Bench: Pixel 3 latency beside edge-GPU energy),
    else the space's default for it (the analytic model for energy), else None."""
    own = run.cfg.resolved_cost_model()
    devices = COST_MODEL_DEVICES.get(own, {}).get(objective, [])
    preferred = [d for d in OTHER_OBJECTIVE_DEVICES if d in devices]
    name: str | None
    device: str | None
    if preferred and own != "lut":
        name, device = own, preferred[0]
    else:
        name = DEFAULT_COST_MODELS.get((run.cfg.space, objective))
        if name is None and objective == "energy":
            name = "analytic"
        if name is None:
            return None
        device = run.cfg.cost_device if name == own else None
    try:
        model = get_cost_model(name, objective, device)
        return price_supernet(run.supernet, model), model
    except PRPError:
        return None


# The manifest fields the policies read, per objective (each path's figure on the run's tables).
POLICY_FIELDS = {"energy": "energy_mj", "latency": "latency_ms"}


def priced_by_files(
    run: LoadedRun, files: Sequence[str | Path], trace: Any
) -> list[tuple[PathTable, Any]]:
    """Tables of extra cost sources (`prp-export --price-with`): each file a `prp-profile`
    table or a per-op JSON table with its unit (ms: latency, mJ: energy) and device, priced over
    the exported supernet as it is (a table measured at another size does not fit and is
    refused with the signatures it lacks)."""
    out = []
    for f in files:
        p = Path(f)
        try:
            data = json.loads(p.read_text())
            unit = data.get("unit") if isinstance(data, dict) else None
        except (OSError, ValueError) as e:
            raise PRPError(
                f"--price-with {p}: cannot read it ({e}); give a prp-profile table"
            ) from None
        objective = {"ms": "latency", "mJ": "energy"}.get(str(unit))
        if objective is None:
            raise PRPError(
                f"--price-with {p}: its unit is {unit!r}, not 'ms' or 'mJ'; give a prp-profile "
                f'table or a JSON table with "unit", "device" and "ops"'
            )
        model = get_cost_model("lut", objective, None, path=p)
        try:
            out.append((price_supernet(run.supernet, model, trace), model))
        except PRPError as e:
            raise PRPError(f"--price-with {p} does not price run {run.run_dir}: {e}") from None
    return out


def priced_network(model: Any, space: Any) -> dict[str, str]:
    """What network a fixed-network cost model's figures describe (`network`), and a `note`
    where the bundle's paths are a smaller proxy of it: the default run searches NB201 at 8
    channels for the benchmark's network and is priced as that network."""
    if not hasattr(model, "prices_as_built"):
        return {}
    out = {"network": model.network}
    if not model.prices_as_built(space):
        out["note"] = (
            "this bundle's paths are a smaller proxy of that network (the search's target); "
            "their own cost is lower"
        )
    return out


def cost_sources(
    tables: Mapping[str, tuple[PathTable, Any] | None],
    extra: Sequence[tuple[PathTable, Any]],
    entries: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The manifest's `cost_sources`: every table that priced the paths, named with its
    objective, unit, device and source, and which path field the policies read from it (None
    for an extra source, recorded for comparison only). Adds each path's figure from every
    source to its entry as `costs` (source id to figure)."""
    sources: list[tuple[str, str, PathTable, Any, str | None]] = []
    for objective, t in tables.items():
        if t is not None:
            sources.append(
                (POLICY_FIELDS[objective], objective, t[0], t[1], POLICY_FIELDS[objective])
            )
    for i, (table, model) in enumerate(extra):
        sources.append((f"extra_{i}_{table.name}", table.name, table, model, None))
    for entry in entries:
        entry["costs"] = {sid: float(table(entry["path"])) for sid, _, table, _, _ in sources}
        # An int8 path's policy energy is rescaled (`int8_energy`): the entry's own field wins.
        for sid, _, _, _, field in sources:
            if field is not None and entry.get(field) is not None:
                entry["costs"][sid] = entry[field]
    return [
        {
            "id": sid,
            "objective": objective,
            "unit": table.unit,
            "device": table.device,
            "source": model.source,
            "policy_field": field,
        }
        for sid, objective, table, model, field in sources
    ]


def int8_energy(
    run: LoadedRun, table: tuple[PathTable, Any] | None, trace: Any
) -> tuple[Callable[[ArchPath, float], float] | None, dict[str, Any] | None]:
    """How an int8 path's energy is priced: with the analytic model's `horowitz45-int8` device
    where the run's energy model is the analytic one, else the run's table scaled by the
    analytic int8 / fp32 ratio of the same path. None where the bundle has no energy figures."""
    if table is None:
        return None, None
    int8_model = get_cost_model("analytic", "energy", "horowitz45-int8")
    int8_table = price_supernet(run.supernet, int8_model, trace)
    if table[0].device.startswith("horowitz45"):
        info = {"device": "horowitz45-int8", "source": int8_model.source, "how": "priced"}
        return (lambda path, _fp32: float(int8_table(path))), info
    fp32_table = price_supernet(
        run.supernet, get_cost_model("analytic", "energy", "horowitz45-fp32"), trace
    )
    info = {
        "device": f"{table[0].device} x horowitz45-int8 / horowitz45-fp32",
        "source": f"{table[1].source}, scaled by {int8_model.source}",
        "how": "scaled",
    }
    return (lambda path, fp32: fp32 * float(int8_table(path)) / float(fp32_table(path))), info


def _tensors(m: nn.Module, example: Tensor) -> list[Tensor]:
    """What the module's programs store: the tensors its live program reads (`live_tensors`)."""
    return [t.detach() for t in live_tensors(m, example)]


def default_policies(
    paths: Sequence[Mapping[str, Any]],
    objective: str,
    ladder_tests: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest's `policies` for exported `paths` (manifest entries): battery thresholds
    evenly spaced over the ladder (most accurate path on a full battery) and the paper's schedule
    (one level down every 5 hours). The ladder holds the paths no other path dominates on
    (accuracy, `objective`'s cost), each strictly cheaper than the one above and, with
    `ladder_tests` (the manifest's record, `ladder_tests.ladder_tests`), measurably more accurate
    than every cheaper path on it; the other paths stay in the bundle but on no table
    (prp.runtime.policies.ladder, the one definition)."""
    beats = None if ladder_tests is None else passed_pairs({"ladder_tests": ladder_tests})
    return ladder_policies(paths, objective, beats)


def path_entries(
    records: Sequence[tuple[PathMetrics, float, float]],
    order: Sequence[int],
    ids: Sequence[str],
    int8: Mapping[str, tuple[Int8Path, float]],
    trace: Any,
    tables: Mapping[str, tuple[PathTable, Any] | None],
    onnx_info: Mapping[str, Any],
    max_abs_diff: Mapping[str, Mapping[str, float]],
    quantize: str | None,
    energy_int8: Callable[[ArchPath, float], float] | None,
) -> list[dict[str, Any]]:
    """The manifest's `paths`, most accurate first: `records[order[i]]` (the path's metrics, its
    estimated and its float32 test accuracy) becomes path `ids[i]`. `max_abs_diff` is each
    backend's distance from PyTorch per path id. Params and MACs count only the ops a path's
    programs run (`OpTrace.live_sizes`; `drop_zero_terms`)."""
    params, macs = trace.live_sizes()
    out = []
    for i, k in enumerate(order):
        metrics, estimated, test_acc = records[k]
        entry: dict[str, Any] = {
            "id": ids[i],
            "method": ids[i],
            "onnx": onnx_info["graphs"][ids[i]],
            "ops": list(metrics.ops),
            "path": list(metrics.path),
            "key": metrics.key,
            "accuracy": round(float(estimated), 4),
            "test_accuracy": round(float(int8[ids[i]][1] if ids[i] in int8 else test_acc), 4),
            "energy_mj": None,
            "latency_ms": None,
            "params": int(params(metrics.path)),
            "macs": int(macs(metrics.path)),
            "pareto_rank": int(metrics.pareto_rank),
            "onnx_initializers": onnx_info["tensors"].get(ids[i], []),
            "max_abs_diff": {name: diff[ids[i]] for name, diff in max_abs_diff.items()},
        }
        for objective, field in (("energy", "energy_mj"), ("latency", "latency_ms")):
            table = tables[objective]
            if table is not None:
                entry[field] = float(table[0](metrics.path))
        if quantize is not None:  # an fp32 bundle's manifest stays as it was
            entry["precision"] = INT8 if ids[i] in int8 else FP32
            entry["fp32_test_accuracy"] = round(float(test_acc), 4)
            if ids[i] in int8 and energy_int8 is not None and entry["energy_mj"] is not None:
                entry["energy_mj"] = float(energy_int8(metrics.path, entry["energy_mj"]))
        out.append(entry)
    return out


def build_manifest(
    run: LoadedRun,
    data: DataSplits,
    tables: Mapping[str, tuple[PathTable, Any] | None],
    entries: list[dict[str, Any]],
    *,
    files: dict[str, str],
    named: Mapping[str, nn.Module],
    int8: Mapping[str, tuple[Int8Path, float]],
    onnx_info: Mapping[str, Any],
    program: Mapping[str, Any],
    quantize: str | None,
    calibration: int,
    energy_int8_info: dict[str, Any] | None,
    ladder_tests: dict[str, Any] | None = None,
    sources: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The whole `manifest.json` of an export whose files (name to sha256) are `files`; with
    `ladder_tests`, the paired tests the ladder is built from (recorded in the manifest).

    Over 80 lines because it is one literal, the manifest's fields in the order the file lists
    them, and the int8 section beside it."""
    cfg, supernet = run.cfg, run.supernet
    example = torch.zeros(1, *supernet.space.input_shape)  # to export each path's live program
    # What the files store, each path's live program exported once: its float tensors, and an
    # int8 path's constants instead of its float module's.
    fp32_tensors = [t for i, m in named.items() if i not in int8 for t in _tensors(m, example)]
    int8_tensors = [t for q, _ in int8.values() for t in stored_constants(q)]
    costs = {
        objective: None
        if t is None
        else {
            "unit": t[0].unit,
            "device": t[0].device,
            "source": t[1].source,
            **priced_network(t[1], supernet.space),
        }
        for objective, t in tables.items()
    }
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "search_space": run.front_data["space_config"],
        "input": {
            "shape": [1, *supernet.space.input_shape],
            "dtype": "float32",
            "layout": "NCHW",
            "mean": [float(v) for v in data.mean],
            "std": [float(v) for v in data.std],
            "scale": "pixels / 255, then (x - mean) / std",
            "batch": {"executorch": 1, "onnx": "dynamic"},
        },
        "classes": list(data.classes),
        "objective": cfg.objective,
        "costs": costs,
        **({"cost_sources": sources} if sources is not None else {}),
        "paths": entries,
        "policies": default_policies(entries, cfg.objective, ladder_tests),
        **({"ladder_tests": ladder_tests} if ladder_tests is not None else {}),
        "files": files,
        "export": {
            "distinct_weight_bytes": distinct_bytes(fp32_tensors) + distinct_bytes(int8_tensors),
            "onnx_distinct_tensors": onnx_info["distinct_tensors"],
            "bn": "per-path BatchNorm statistics as per-channel scale and shift after a "
            "shared conv, folded into a conv only one path reads",
            "tolerance": TOLERANCE,
            # how the .pte was written: XNNPACK's constant keys (shortened by the private rewrite
            # or why not, and their scheme) and where its convolutions keep indirection buffers
            **program,
        },
        "provenance": {
            "run": str(run.run_dir),
            "dataset": data.source,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions(),
            "command": " ".join(sys.argv),
        },
    }
    if quantize is not None:
        manifest["export"]["int8_distinct_weight_bytes"] = distinct_bytes(int8_tensors)
        manifest["export"]["fp32_distinct_weight_bytes"] = distinct_bytes(fp32_tensors)
        manifest["export"]["int8_tolerance"] = INT8_TOLERANCE
        manifest["quantization"] = {
            "precision": quantize,
            "paths": [p["id"] for p in entries if p["precision"] == INT8],
            "scheme": "PT2E static post-training quantization, XNNPACKQuantizer: int8 "
            "activations per tensor (affine), int8 weights per output channel (symmetric)",
            "bn": "folded per path into the shared conv's int8 grid: int8 weights shared, "
            "per-channel scales and biases per path",
            "calibration": {
                "split": "val",
                "images": calibration,
                "which": f"the first {calibration} images of the run's validation split",
            },
            "reference": "the PT2E-converted module (PyTorch); every int8 method and graph "
            "is checked against it",
            "onnx": "QDQ graphs (QuantizeLinear/DequantizeLinear around float ops) exported "
            "from the PT2E module: the same scales and zero points as the .pte",
            "energy": energy_int8_info,
            "latency": "latency_ms of an int8 path is the float32 table's figure",
        }
    return manifest
