"""Cost models: a path's hardware cost for an objective (`energy` mJ, `latency` ms) on a device.

Each model prices one op (an `OpRecord` from the forward hooks); `price_supernet` sums them into a
`PathTable` that prices any path of the supernet in one vectorised lookup. Registered models:

- `hwnasbench`: HW-NAS-Bench's measured per-op table for the FBNet space (Li et al., ICLR 2021).
- `hwnasbench-nb201`: a per-(edge, op) table for the NB201 space fitted to HW-NAS-Bench's measured
  per-architecture figures (HW-NAS-Bench publishes no per-op table for NB201).
- `proxyless-mobile`: ProxylessNAS' measured Pixel 1 latency table (Cai et al., ICLR 2019).
- `lut`: a user's own table, JSON or CSV, signature -> value.
- `analytic`: MACs and memory traffic times published per-operation energies; works everywhere.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import LUTKeyError, PRPError, UnknownNameError
from .nb201_table import NB201Table
from .profiling import OpRecord, OpTrace, PathTable, trace_ops
from .registry import Registry
from .supernet import Supernet

OBJECTIVES = {"energy": "mJ", "latency": "ms"}


@runtime_checkable
class CostModel(Protocol):
    """Prices one op for one objective on one device."""

    objective: str  # "energy" or "latency"
    unit: str  # "mJ" or "ms"
    device: str
    source: str  # where the figures come from (a file, a paper)

    def op_cost(self, record: OpRecord) -> float: ...


COST_MODELS: Registry[CostModel] = Registry("cost model")


def _check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise UnknownNameError(
            f"unknown objective {objective!r}; objectives are: {', '.join(OBJECTIVES)}"
        )
    return OBJECTIVES[objective]


def get_cost_model(
    name: str, objective: str = "energy", device: str | None = None, **kwargs: object
) -> CostModel:
    """A registered cost model; `device=None` takes the model's default device."""
    _check_objective(objective)
    return COST_MODELS.create(name, objective=objective, device=device, **kwargs)


def list_cost_models() -> list[str]:
    return COST_MODELS.names()


def price_supernet(supernet: Supernet, model: CostModel, trace: OpTrace | None = None) -> PathTable:
    """A table pricing every path of `supernet` with `model` (ops recorded by forward hooks)."""
    trace = trace if trace is not None else trace_ops(supernet)
    if isinstance(model, SlotTableCostModel):
        return model.price(trace)
    table = trace.table(model.op_cost, model.objective, model.unit, model.device)
    if isinstance(model, LUTCostModel):
        # A measured table times the programs prp-export writes, which do not run an op
        # whose result never reaches the output (an NB201 edge into a node that feeds only
        # `none` edges): price a path over its live ops, as the device runs it.
        table = replace(table, live=supernet.space.live_slots)
        if model.correction is not None:
            scale, offset = model.correction
            table = replace(table, fixed=scale * table.fixed + offset, per_op=scale * table.per_op)
    return table


# --------------------------------------------------------------------------- lookup tables
@dataclass
class LUTCostModel:
    """A per-op lookup table: signature -> cost. Free ops (identity, zero) cost 0.

    `correction` (scale, offset), where set, prices a path as scale x (the table's sum) +
    offset (`price_supernet`): what `prp-profile --validate` found the sums miss on whole paths.
    """

    objective: str
    unit: str
    device: str
    source: str
    table: dict[str, float] = field(repr=False)
    correction: tuple[float, float] | None = None

    def op_cost(self, record: OpRecord) -> float:
        if record.signature is None:
            return 0.0
        try:
            return float(self.table[record.signature])
        except KeyError:
            where = (
                f"slot {record.slot} op {record.op_name!r}"
                if record.slot is not None
                else (f"fixed layer {record.op_name}")
            )
            raise LUTKeyError(
                f"lookup table {self.source} ({self.objective} on {self.device}) has no entry "
                f"{record.signature!r}, needed for {where} at {record.module} with input shape "
                f"{list(record.in_shape)}; add that key to the table, or build the search space "
                f"at the size the table was measured for"
            ) from None


def _devices_with(metrics: dict[str, object], objective: str) -> list[str]:
    return sorted(k[: -len(objective) - 1] for k in metrics if k.endswith("_" + objective))


@COST_MODELS.register("hwnasbench", "HW-NAS-Bench FBNet per-op table (measured)")
def hwnasbench(
    objective: str = "energy", device: str | None = None, path: str | Path | None = None
) -> LUTCostModel:
    """HW-NAS-Bench's FBNet table: energy on edgegpu/eyeriss/fpga; latency on all five devices.

    Shipped with the package (MIT, from HW-NAS-Bench, Li et al. ICLR 2021).
    """
    unit = _check_objective(objective)
    device = device or "edgegpu"
    if path is None:
        source = "prp.trainer/data/hwnasbench_fbnet_op_metrics.json"
        text = resources.files("prp.trainer").joinpath("data/hwnasbench_fbnet_op_metrics.json")
        data = json.loads(text.read_text())
    else:
        source = str(path)
        data = json.loads(Path(path).read_text())
    key = f"{device}_{objective}"
    if key not in data:
        devices = _devices_with(data, objective)
        raise UnknownNameError(
            f"HW-NAS-Bench has no {objective} for device {device!r}; devices with {objective}: "
            f"{', '.join(devices)}"
        )
    return LUTCostModel(objective, unit, device, source, dict(data[key]))


def _parse_proxyless_yaml(text: str) -> dict[str, float]:
    import yaml

    data = yaml.safe_load(text)
    return {k: float(v["mean"]) for k, v in data.items()}


@COST_MODELS.register("proxyless-mobile", "ProxylessNAS mobile latency table, Pixel 1 (measured)")
def proxyless_mobile(
    objective: str = "latency", device: str | None = None, path: str | Path | None = None
) -> LUTCostModel:
    """ProxylessNAS' latency table measured on a Pixel 1 (ms); latency only, 224 px inputs."""
    unit = _check_objective(objective)
    if objective != "latency":
        raise UnknownNameError(
            "the ProxylessNAS mobile table has latency only; use --objective latency, or the "
            "'analytic' cost model for energy"
        )
    if device not in (None, "pixel1"):
        raise UnknownNameError(
            f"the ProxylessNAS mobile table was measured on 'pixel1', not {device!r}"
        )
    if path is None:
        source = "prp.trainer/data/proxylessnas_mobile.yaml"
        text = resources.files("prp.trainer").joinpath("data/proxylessnas_mobile.yaml").read_text()
    else:
        source, text = str(path), Path(path).read_text()
    return LUTCostModel(objective, unit, "pixel1", source, _parse_proxyless_yaml(text))


@COST_MODELS.register("lut", "a user's per-op table from a JSON or CSV file")
def user_lut(
    objective: str = "energy", device: str | None = None, path: str | Path | None = None
) -> LUTCostModel:
    """A user's table. JSON: `{"signature": value}` or `{"unit":..., "device":..., "ops": {...}}`.
    CSV: columns `signature,value` (a header row is allowed)."""
    unit = _check_objective(objective)
    if path is None:
        raise PRPError("the 'lut' cost model needs a file: pass path=... (JSON or CSV)")
    p = Path(path)
    if not p.is_file():
        raise PRPError(f"lookup table {p} does not exist; give the path of a JSON or CSV file")
    table: dict[str, float] = {}
    source = str(p)
    correction: tuple[float, float] | None = None
    try:
        if p.suffix.lower() == ".csv":
            with p.open(newline="") as f:
                for row in csv.reader(f):
                    if not row or row[0].startswith("#"):
                        continue
                    try:
                        table[row[0].strip()] = float(row[1])
                    except (IndexError, ValueError):
                        if table:  # only the first row may be a header
                            raise
        else:
            data = json.loads(p.read_text())
            if "ops" in data and isinstance(data["ops"], dict):
                if data.get("unit", unit) != unit:
                    raise PRPError(
                        f"lookup table {p} is in {data['unit']!r} but {objective} is priced in "
                        f"{unit!r}; convert it or pick the other objective"
                    )
                device = device or data.get("device")
                space = data.get("space")
                if isinstance(space, dict):  # a prp-profile table: its space names the misfit
                    source = f"{p} (measured for space {space.get('name')} ({space.get('size')}))"
                correction = _validated_correction(data) if unit == "ms" else None
                if correction is not None:
                    scale, offset = correction
                    sign = "-" if offset < 0 else "+"
                    source += f" x {scale:.4g} {sign} {abs(offset):.4g} {unit} per path"
                data = data["ops"]
            table = {str(k): float(v) for k, v in data.items()}
    except (ValueError, IndexError, TypeError, AttributeError) as e:
        raise PRPError(
            f"cannot read lookup table {p}: {e}; expected JSON {{signature: value}} or CSV "
            f"rows 'signature,value'"
        ) from None
    if not table:
        raise PRPError(f"lookup table {p} has no entries")
    return LUTCostModel(objective, unit, device or "custom", source, table, correction)


def _validated_correction(data: dict[str, object]) -> tuple[float, float] | None:
    """The (scale, offset) `prp-profile --validate` fitted to whole paths and found to lower
    the error on paths it was not fitted on (`validation.correction.applied`), else None."""
    validation = data.get("validation")
    fit = validation.get("correction") if isinstance(validation, dict) else None
    if not isinstance(fit, dict) or not fit.get("applied"):
        return None
    return float(fit["scale"]), float(fit["offset_ms"])


# ------------------------------------------------------------- NB201 fitted to HW-NAS-Bench
NB201_FIT_FILE = "data/hwnasbench_nb201_fit.json"  # one fit per NB201_COST_COLUMNS entry


@dataclass
class SlotTableCostModel:
    """Cost = base + one figure per (slot, op), for the whole network the path denotes.

    The figures price a fixed network (NB201's 15-cell CIFAR-10 network, where one edge op is
    repeated in every cell), whatever size the supernet is built at: a small supernet is then a
    proxy for the accuracy ranking, priced as the real network. Fixed layers are in `base`.
    """

    objective: str
    unit: str
    device: str
    source: str
    ops: tuple[str, ...]
    base: float
    per_op: np.ndarray = field(repr=False)  # [slot, op]
    network: str = "NB201's CIFAR-10 network at C=16, N=5, 32x32 input (HW-NAS-Bench's)"

    def prices_as_built(self, space: Any) -> bool:
        """Whether `space` builds the very network the figures price, NB201 at its real size
        (else it is a proxy of it, priced as that network: the manifest says so)."""
        from .spaces import get_space

        real = get_space("nb201", size="real")
        sizes = ("channels", "cells_per_stage", "input_size")
        return getattr(space, "name", None) == "nb201" and all(
            getattr(space, k) == getattr(real, k) for k in sizes
        )

    def op_cost(self, record: OpRecord) -> float:
        raise PRPError(
            f"cost model {self.source} prices whole slots, not single ops; use price_supernet()"
        )

    def price(self, trace: OpTrace) -> PathTable:
        if trace.num_slots != self.per_op.shape[0]:
            raise PRPError(
                f"cost model {self.source} prices {self.per_op.shape[0]} slots of the NB201 "
                f"space; this supernet has {trace.num_slots}: use it with --space nb201 only"
            )
        per_op = np.full((trace.num_slots, trace.width), np.nan)
        for r in trace.choices:
            assert r.slot is not None and r.op is not None
            if r.op_name not in self.ops:
                raise LUTKeyError(
                    f"cost model {self.source} has no op {r.op_name!r} (slot {r.slot}); "
                    f"it knows {', '.join(self.ops)}"
                )
            per_op[r.slot, r.op] = self.per_op[r.slot, self.ops.index(r.op_name)]
        return PathTable(self.objective, self.unit, self.device, self.base, per_op)


def fit_nb201_costs(table: NB201Table, column: str) -> dict[str, Any]:
    """Non-negative least squares fit of an NB201 cost column: base + sum of c[edge, op].

    Non-negative because a table of op costs with negative entries would price some paths
    below zero. Returns the figures with the fit's R^2 and Kendall tau-b on all architectures.
    """
    from scipy.optimize import nnls

    from .pareto import kendall_tau_b
    from .spaces import get_space

    space = get_space("nb201", size="tiny")  # decoding arch_str does not depend on the size
    ops = space.slots[0].ops
    paths = np.array([space.decode(a) for a in table.arch_strs])
    n, slots = paths.shape
    x = np.zeros((n, 1 + slots * len(ops)))
    x[:, 0] = 1.0
    for s in range(slots):
        x[np.arange(n), 1 + s * len(ops) + paths[:, s]] = 1.0
    y = table.column(column)
    w, _ = nnls(x, y)
    pred = x @ w
    # Each edge holds exactly one op, so a constant per edge is indistinguishable from the base:
    # move each edge's cheapest figure into the base (the cheapest op of an edge then costs 0).
    per = w[1:].reshape(slots, len(ops))
    base = float(w[0] + per.min(axis=1).sum())
    per = per - per.min(axis=1, keepdims=True)
    r2 = 1.0 - float(((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    return {
        "base": round(base, 6),
        "per_edge_op": per.round(6).tolist(),
        "r2": round(r2, 4),
        "kendall_tau_b": round(kendall_tau_b(pred, y), 4),
        "architectures": n,
    }


def nb201_fit_table(table: NB201Table) -> dict[str, Any]:
    """The `hwnasbench-nb201` cost model's whole table (NB201_FIT_FILE): one `fit_nb201_costs`
    per NB201_COST_COLUMNS entry, with what it is and where it comes from. Rebuilt by
    `prp-fit-costs` (`cost_fit`); a test checks the shipped file equals a fresh build."""
    from .nb201_table import NB201_COST_COLUMNS
    from .spaces import get_space

    space = get_space("nb201", size="tiny")
    columns = {}
    for column, (_, unit, device) in NB201_COST_COLUMNS.items():
        columns[column] = {"unit": unit, "device": device, **fit_nb201_costs(table, column)}
    return {
        "what": "NB201 CIFAR-10 network (C=16, N=5) cost per (edge, op): cost = base + sum of "
        "per_edge_op[edge][op], fitted by non-negative least squares",
        "source": "HW-NAS-Bench (Li et al., ICLR 2021, MIT) per-architecture measurements, "
        "from the shared nb201_cifar10_hw.csv",
        "edges": [s.name for s in space.slots],
        "ops": list(space.slots[0].ops),
        "columns": columns,
    }


@COST_MODELS.register(
    "hwnasbench-nb201", "NB201 per-(edge, op) table fitted to HW-NAS-Bench's measurements"
)
def hwnasbench_nb201(
    objective: str = "energy", device: str | None = None, path: str | Path | None = None
) -> SlotTableCostModel:
    """HW-NAS-Bench's NB201 figures (energy: edgegpu; latency: edgegpu, raspi4, pixel3) as a
    per-(edge, op) table, fitted by `fit_nb201_costs` (R^2 and tau-b are in the file)."""
    unit = _check_objective(objective)
    device = device or "edgegpu"
    if path is None:
        source = f"prp.trainer/{NB201_FIT_FILE}"
        data = json.loads(resources.files("prp.trainer").joinpath(NB201_FIT_FILE).read_text())
    else:
        source, data = str(path), json.loads(Path(path).read_text())
    column = f"{device}_{objective}"
    if column not in data["columns"]:
        have = sorted(c[: -len(objective) - 1] for c in data["columns"] if c.endswith(objective))
        raise UnknownNameError(
            f"the NB201 HW-NAS-Bench fit has no {objective} for device {device!r}; devices with "
            f"{objective}: {', '.join(have)}"
        )
    fit = data["columns"][column]
    return SlotTableCostModel(
        objective,
        unit,
        device,
        source,
        tuple(data["ops"]),
        float(fit["base"]),
        np.array(fit["per_edge_op"], dtype=float),
    )


# ----------------------------------------------------------------------------- analytic
@dataclass(frozen=True)
class EnergyProfile:
    """Per-operation energies of one technology point, in picojoules."""

    mac_pj: float  # one multiply-accumulate
    sram_pj_per_byte: float  # on-chip buffer access (activations)
    dram_pj_per_byte: float  # off-chip access (weights, read once per inference)
    bytes_per_elem: int
    note: str


# Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, 45 nm, 0.9 V:
# fp32 add 0.9 pJ + mult 3.7 pJ; int8 add 0.03 pJ + mult 0.2 pJ; 64-bit read from an 8 KB SRAM
# 10 pJ (1.25 pJ/byte); DRAM 1.3-2.6 nJ per 64 bits, i.e. the 640 pJ per 32-bit word used by
# Han et al., ISCA 2016 (160 pJ/byte).
ENERGY_PROFILES: dict[str, EnergyProfile] = {
    "horowitz45-fp32": EnergyProfile(4.6, 1.25, 160.0, 4, "fp32 arithmetic, Horowitz ISSCC 2014"),
    "horowitz45-int8": EnergyProfile(0.23, 1.25, 160.0, 1, "int8 arithmetic, Horowitz ISSCC 2014"),
}


@dataclass
class AnalyticEnergyModel:
    """Energy = MACs x E_mac + activation bytes x E_sram + weight bytes x E_dram (mJ)."""

    device: str
    profile: EnergyProfile
    objective: str = "energy"
    unit: str = "mJ"
    source: str = "analytic: Horowitz ISSCC 2014 (45 nm) per-operation energies"

    def op_cost(self, record: OpRecord) -> float:
        p = self.profile
        pj = (
            record.macs * p.mac_pj
            + record.activation_elems * p.bytes_per_elem * p.sram_pj_per_byte
            + record.params * p.bytes_per_elem * p.dram_pj_per_byte
        )
        return pj * 1e-9  # pJ -> mJ


@COST_MODELS.register("analytic", "MACs and memory traffic x Horowitz 45 nm energies (any space)")
def analytic(objective: str = "energy", device: str | None = None) -> AnalyticEnergyModel:
    """An analytic energy model that prices any op of any space from its MACs and bytes moved."""
    _check_objective(objective)
    if objective != "energy":
        raise UnknownNameError(
            "the analytic model prices energy only; for latency use 'hwnasbench' (fbnet), "
            "'proxyless-mobile' (proxyless) or your own table with 'lut'"
        )
    device = device or "horowitz45-fp32"
    if device not in ENERGY_PROFILES:
        raise UnknownNameError(
            f"unknown analytic device {device!r}; devices are: {', '.join(ENERGY_PROFILES)}"
        )
    return AnalyticEnergyModel(device, ENERGY_PROFILES[device])


COST_MODEL_DEVICES: dict[str, dict[str, list[str]]] = {
    "hwnasbench": {
        "energy": ["edgegpu", "eyeriss", "fpga"],
        "latency": ["edgegpu", "raspi4", "pixel3", "eyeriss", "fpga"],
    },
    "hwnasbench-nb201": {"energy": ["edgegpu"], "latency": ["edgegpu", "raspi4", "pixel3"]},
    "proxyless-mobile": {"latency": ["pixel1"]},
    "lut": {"energy": ["(from file)"], "latency": ["(from file)"]},
    "analytic": {"energy": list(ENERGY_PROFILES)},
}
