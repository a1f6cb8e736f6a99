"""Cost models against the real tables: HW-NAS-Bench FBNet, user tables, the analytic model."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from prp.trainer.costs import get_cost_model, list_cost_models, price_supernet
from prp.trainer.errors import LUTKeyError, PRPError, UnknownNameError
from prp.trainer.profiling import trace_ops
from prp.trainer.spaces import get_space, list_spaces
from prp.trainer.supernet import Supernet

# HW-NAS-Bench's CIFAR FBNet plan, written out here independently of the space's code:
# (in channels, out channels, stride, input height) of the 22 searchable layers.
CHANNELS = [16] + [24] * 4 + [32] * 4 + [64] * 4 + [112] * 4 + [184] * 4 + [352]
STRIDES = [1, 1, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]


def fbnet_keys(op_names: tuple[str, ...]) -> list[str]:
    keys = ["ConvNorm_H32_W32_Cin3_Cout16_kernel3_stride1_group1"]
    c_in, h = 16, 32
    for name, c_out, stride in zip(op_names, CHANNELS, STRIDES, strict=True):
        if name == "skip":
            keys.append(f"Skip_H{h}_W{h}_Cin{c_in}_Cout{c_out}_stride{stride}")
        else:
            k, e, g = re.fullmatch(r"k(\d)_e(\d)(_g2)?", name).groups()
            group = 2 if g else 1
            keys.append(
                f"ConvBlock_H{h}_W{h}_Cin{c_in}_Cout{c_out}_exp{e}_kernel{k}_stride{stride}"
                f"_group{group}"
            )
        c_in, h = c_out, h // stride
    keys += [
        "ConvNorm_H4_W4_Cin352_Cout1504_kernel1_stride1_group1",
        "AvgP_H4_W4_Cin1504_Cout1504_kernel4_stride1",
        "FC_Cin1504_Cout10",
    ]
    return keys


@pytest.fixture(scope="module")
def fbnet_real():
    supernet = Supernet(get_space("fbnet"))
    return supernet, trace_ops(supernet)


ENERGY = ["edgegpu", "eyeriss", "fpga"]
LATENCY = ["edgegpu", "raspi4", "pixel3", "eyeriss", "fpga"]


@pytest.mark.parametrize(
    "objective,device", [("energy", d) for d in ENERGY] + [("latency", d) for d in LATENCY]
)
def test_every_fbnet_choice_prices_from_hwnasbench(fbnet_real, fbnet_lut_json, objective, device):
    supernet, trace = fbnet_real
    table = price_supernet(supernet, get_cost_model("hwnasbench", objective, device), trace)
    assert table.per_op.shape == (22, 9)
    assert np.isfinite(table.per_op).all() and (table.per_op >= 0).all()
    # Every op of every layer has its own HW-NAS-Bench key (none priced by fallback).
    lut = json.loads(fbnet_lut_json.read_text())[f"{device}_{objective}"]
    signatures = {r.signature for r in trace.records}
    assert None not in signatures and signatures <= set(lut)
    # 12 distinct layer shapes in the plan, 9 ops each: every one a different key.
    assert len({r.signature for r in trace.choices}) == 12 * 9


@pytest.mark.parametrize(
    "objective,device", [("energy", "edgegpu"), ("latency", "pixel3"), ("energy", "eyeriss")]
)
def test_fbnet_totals_match_an_independent_sum(fbnet_real, fbnet_lut_json, objective, device):
    supernet, trace = fbnet_real
    table = price_supernet(supernet, get_cost_model("hwnasbench", objective, device), trace)
    lut = json.loads(fbnet_lut_json.read_text())[f"{device}_{objective}"]
    rng = np.random.default_rng(7)
    paths = [supernet.sample_uniform(rng) for _ in range(8)]
    paths += [(0,) * 22, (8,) * 22]  # smallest blocks, all skips
    for path in paths:
        expected = sum(lut[k] for k in fbnet_keys(supernet.space.op_names(path)))
        assert table(path) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(table.many(paths), [table(p) for p in paths])


def test_packaged_hwnasbench_table_is_the_shared_one(fbnet_lut_json) -> None:
    from importlib import resources

    packaged = resources.files("prp.trainer").joinpath("data/hwnasbench_fbnet_op_metrics.json")
    assert json.loads(packaged.read_text()) == json.loads(fbnet_lut_json.read_text())


def test_missing_lut_key_names_the_key_and_the_file(tmp_path) -> None:
    supernet = Supernet(get_space("fbnet", size="tiny"))  # tiny channels are not in the table
    with pytest.raises(
        LUTKeyError,
        match=r"hwnasbench_fbnet_op_metrics\.json .* no entry 'ConvNorm_H32_W32_Cin3_Cout8",
    ):
        price_supernet(supernet, get_cost_model("hwnasbench", "energy", "edgegpu"))
    user = tmp_path / "mine.json"
    user.write_text(json.dumps({"Stem_H32_W32_Cin3_Cout4": 1.0}))
    nb = Supernet(get_space("nb201", size="tiny"))
    with pytest.raises(
        LUTKeyError, match=r"mine\.json \(energy on custom\) has no entry 'ResBlock_H32"
    ):
        price_supernet(nb, get_cost_model("lut", "energy", path=user))


def test_user_lut_from_json_and_csv_prices_nb201(tmp_path) -> None:
    supernet = Supernet(get_space("nb201", size="tiny"))
    trace = trace_ops(supernet)
    sigs = sorted({r.signature for r in trace.records if r.signature})
    values = {s: float(i + 1) for i, s in enumerate(sigs)}
    js = tmp_path / "t.json"
    js.write_text(json.dumps({"unit": "ms", "device": "myphone", "ops": values}))
    csv = tmp_path / "t.csv"
    csv.write_text("signature,latency_ms\n" + "".join(f"{k},{v}\n" for k, v in values.items()))
    a = price_supernet(supernet, get_cost_model("lut", "latency", path=js), trace)
    b = price_supernet(supernet, get_cost_model("lut", "latency", path=csv), trace)
    assert a.device == "myphone" and a.unit == "ms"
    np.testing.assert_array_equal(a.per_op, b.per_op)
    path = (3, 1, 0, 2, 4, 3)
    expected = sum(values[r.signature] for r in trace.fixed) + sum(
        values[r.signature] for r in trace.choices if r.signature and r.op == path[r.slot]
    )
    assert a(path) == pytest.approx(expected)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    with pytest.raises(PRPError, match="cannot read lookup table"):
        get_cost_model("lut", "latency", path=bad)
    with pytest.raises(PRPError, match="does not exist"):
        get_cost_model("lut", "latency", path=tmp_path / "nope.csv")
    with pytest.raises(PRPError, match="is in 'ms' but energy"):
        get_cost_model("lut", "energy", path=js)


@pytest.mark.parametrize("name", list_spaces())
def test_analytic_energy_prices_every_space(name: str) -> None:
    supernet = Supernet(get_space(name, size="tiny"))
    table = price_supernet(supernet, get_cost_model("analytic", "energy"))
    live = table.per_op[supernet.op_mask.numpy()]
    assert np.isfinite(live).all() and (live >= 0).all() and table.fixed > 0
    assert table.unit == "mJ"


def test_analytic_energy_orders_nb201_ops_by_work() -> None:
    supernet = Supernet(get_space("nb201"))
    fp32 = price_supernet(supernet, get_cost_model("analytic", "energy"))
    int8 = price_supernet(supernet, get_cost_model("analytic", "energy", "horowitz45-int8"))
    none, skip, c1, c3, pool = fp32.per_op[0]
    assert none == skip == 0.0  # identities move and compute nothing
    assert c3 > c1 > pool > 0
    # int8 arithmetic and bytes are cheaper than fp32 for every op that does work.
    assert (int8.per_op[:, 2:] < fp32.per_op[:, 2:]).all()
    # The biggest NB201 network costs about 1 mJ in fp32 at 45 nm: MACs and weights both count.
    assert 0.5 < fp32((3,) * 6) < 3.0


def test_unknown_cost_model_device_and_objective() -> None:
    assert {"hwnasbench", "analytic", "lut", "proxyless-mobile"} <= set(list_cost_models())
    with pytest.raises(UnknownNameError, match="registered cost models are"):
        get_cost_model("magic")
    with pytest.raises(UnknownNameError, match="devices with energy: edgegpu, eyeriss, fpga"):
        get_cost_model("hwnasbench", "energy", "pixel3")
    with pytest.raises(UnknownNameError, match="unknown objective 'carbon'"):
        get_cost_model("hwnasbench", "carbon")
    with pytest.raises(UnknownNameError, match="energy only"):
        get_cost_model("analytic", "latency")


# ------------------------------------------------------------------ NB201 fit of HW-NAS-Bench
def test_packaged_nb201_fit_is_a_fresh_fit_of_the_shared_table(nb201_csv, tmp_path) -> None:
    """The shipped table is, byte for byte, what `prp-fit-costs` writes from the shared CSV."""
    from importlib import resources

    from prp.trainer.cost_fit import write_nb201_fit

    shipped = resources.files("prp.trainer").joinpath("data/hwnasbench_nb201_fit.json")
    data = write_nb201_fit(nb201_csv, tmp_path / "fit.json")
    assert (tmp_path / "fit.json").read_bytes() == shipped.read_bytes()
    assert json.loads(shipped.read_text()) == json.loads(json.dumps(data))


@pytest.mark.parametrize("objective,device", [("energy", "edgegpu"), ("latency", "pixel3")])
def test_nb201_fit_prices_supernets_of_any_size_as_the_real_network(
    nb201_csv, objective, device
) -> None:
    from prp.trainer.nb201_table import NB201Table
    from prp.trainer.pareto import kendall_tau_b

    table = NB201Table.load(nb201_csv)
    column = table.column(f"{device}_{objective}")
    model = get_cost_model("hwnasbench-nb201", objective, device)
    assert model.unit == ("mJ" if objective == "energy" else "ms")
    rng = np.random.default_rng(0)
    prices = []
    for size, overrides in (("tiny", {}), ("real", {"channels": 8, "cells_per_stage": 1})):
        supernet = Supernet(get_space("nb201", size=size, **overrides))
        prices.append(price_supernet(supernet, model))
    space = supernet.space
    paths = [tuple(int(i) for i in rng.integers(0, 5, 6)) for _ in range(500)]
    a, b = prices[0].many(paths), prices[1].many(paths)
    np.testing.assert_allclose(a, b)  # the proxy's size does not change the price
    truth = table.lookup(space, paths, f"{device}_{objective}")
    assert kendall_tau_b(a, truth) > 0.75  # measured on all 15,625: 0.84 (energy), 0.80
    assert (a >= 0).all() and a.max() <= 1.5 * column.max()


def test_nb201_fit_refuses_other_spaces_and_devices() -> None:
    with pytest.raises(UnknownNameError, match="devices with energy: edgegpu"):
        get_cost_model("hwnasbench-nb201", "energy", "raspi4")
    fbnet = Supernet(get_space("fbnet", size="tiny"))
    with pytest.raises(PRPError, match="--space nb201"):
        price_supernet(fbnet, get_cost_model("hwnasbench-nb201", "energy"))


def test_the_manifest_says_which_network_a_fixed_network_model_prices() -> None:
    """A bundle exported from a proxy-size NB201 run carries the real network's figures: the
    manifest's cost entry names that network and says the bundle is a smaller proxy of it; at
    the benchmark's size it only names it; a per-op model adds nothing."""
    from prp.trainer.export.manifest import priced_network

    model = get_cost_model("hwnasbench-nb201", "energy")
    real = priced_network(model, get_space("nb201", size="real"))
    proxy = priced_network(model, get_space("nb201", size="real", channels=8, cells_per_stage=2))
    assert real == {"network": model.network} and "C=16, N=5" in model.network
    assert proxy["network"] == model.network and "proxy" in proxy["note"]
    assert priced_network(get_cost_model("analytic", "energy"), get_space("nb201")) == {}
