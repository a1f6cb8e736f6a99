"""The ProxylessNAS mobile space: its op signatures against the shipped Pixel 1 latency table.

The latency checks build the table keys by hand from the paper's channel and stride plan, so they
do not trust the space's own signature code.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest
import yaml
from prp.trainer.costs import get_cost_model, price_supernet
from prp.trainer.profiling import OpTrace, trace_ops
from prp.trainer.spaces import get_space
from prp.trainer.supernet import Supernet

# The paper's plan, written out independently of trainer/spaces/proxyless.py:
# (out channels, blocks, stride of the first block) per stage, after a 112x112x16 first block.
STAGES = [(24, 4, 2), (40, 4, 2), (80, 4, 2), (96, 4, 1), (192, 4, 2), (320, 1, 1)]
FIXED_KEYS = [
    "Conv-input:224x224x3-output:112x112x32",
    "expanded_conv-input:112x112x32-output:112x112x16-expand:1-kernel:3-stride:1-idskip:0",
    "Conv_1-input:7x7x320-output:7x7x1280",
    "Logits-input:7x7x1280-output:1000",
]
FIRST_OF_STAGE = {0, 4, 8, 12, 16, 20}


def hand_plan() -> list[tuple[int, int, int, int, int]]:
    """(in size, in channels, out size, out channels, stride) of the 21 searchable layers."""
    layers = []
    size, c_in = 112, 16
    for c_out, blocks, first_stride in STAGES:
        for b in range(blocks):
            stride = first_stride if b == 0 else 1
            out_size = size // stride
            layers.append((size, c_in, out_size, c_out, stride))
            size, c_in = out_size, c_out
    return layers


def hand_key(layer: tuple[int, int, int, int, int], kernel: int, expand: int) -> str:
    size, c_in, out_size, c_out, stride = layer
    idskip = int(stride == 1 and c_in == c_out)
    return (
        f"expanded_conv-input:{size}x{size}x{c_in}-output:{out_size}x{out_size}x{c_out}"
        f"-expand:{expand}-kernel:{kernel}-stride:{stride}-idskip:{idskip}"
    )


@pytest.fixture(scope="module")
def table() -> dict[str, float]:
    text = resources.files("prp.trainer").joinpath("data/proxylessnas_mobile.yaml").read_text()
    return {k: float(v["mean"]) for k, v in yaml.safe_load(text).items()}


@pytest.fixture(scope="module")
def real() -> tuple[Supernet, OpTrace]:
    supernet = Supernet(get_space("proxyless", size="real"))
    return supernet, trace_ops(supernet)


def test_every_op_at_real_size_is_in_the_latency_table(real, table) -> None:
    supernet, trace = real
    space = supernet.space
    for r in trace.fixed:
        assert r.signature in table, f"fixed layer {r.module}: {r.signature!r}"
    assert sorted(r.signature for r in trace.fixed) == sorted(FIXED_KEYS)
    seen = set()
    for r in trace.choices:
        seen.add((r.slot, r.op))
        if r.op_name == "skip":
            assert r.signature is None
        else:
            assert r.signature in table, f"slot {r.slot} op {r.op_name}: {r.signature!r}"
    assert seen == {(s, i) for s, slot in enumerate(space.slots) for i in range(len(slot.ops))}

    lat = price_supernet(supernet, get_cost_model("proxyless-mobile", objective="latency"), trace)
    assert lat.unit == "ms"
    assert lat.fixed == pytest.approx(sum(table[k] for k in FIXED_KEYS))
    for s, slot in enumerate(space.slots):
        for i, op in enumerate(slot.ops):
            v = lat.per_op[s, i]
            if op == "skip":
                assert v == 0.0
            else:
                assert math.isfinite(v) and v > 0, (s, op, v)
        assert np.isnan(lat.per_op[s, len(slot.ops) :]).all()


def _hand_latency(names: list[str], table: dict[str, float]) -> float:
    total = sum(table[k] for k in FIXED_KEYS)
    for layer, name in zip(hand_plan(), names, strict=True):
        if name == "skip":
            continue
        kernel, expand = (int(part[1:]) for part in name.split("_")[1:])
        total += table[hand_key(layer, kernel, expand)]
    return total


def _paths() -> dict[str, list[str]]:
    rng = np.random.default_rng(7)
    mixed = []
    for i in range(21):
        ops = [f"mb_k{k}_e{e}" for k in (3, 5, 7) for e in (3, 6)]
        if i not in FIRST_OF_STAGE:
            ops.append("skip")
        mixed.append(str(rng.choice(ops)))
    return {
        "all_k3_e3": ["mb_k3_e3"] * 21,
        "all_k7_e6": ["mb_k7_e6"] * 21,
        "shortest": ["mb_k3_e3" if i in FIRST_OF_STAGE else "skip" for i in range(21)],
        "mixed": mixed,
    }


@pytest.mark.parametrize("which", sorted(_paths()))
def test_path_latency_matches_a_hand_built_sum(real, table, which) -> None:
    supernet, trace = real
    names = _paths()[which]
    path = supernet.space.from_op_names(names)
    lat = price_supernet(supernet, get_cost_model("proxyless-mobile", objective="latency"), trace)
    expected = _hand_latency(names, table)
    assert lat(path) == pytest.approx(expected, rel=1e-12)
    assert lat.many([path])[0] == pytest.approx(expected, rel=1e-12)


def test_hand_sums_are_what_the_table_says(table) -> None:
    # Guards the hand-built keys themselves: every one of them must be in the table.
    for layer in hand_plan():
        for k in (3, 5, 7):
            for e in (3, 6):
                assert hand_key(layer, k, e) in table
    assert _hand_latency(["mb_k3_e3"] * 21, table) == pytest.approx(76.048, abs=1e-3)


@pytest.mark.parametrize("size", ["real", "tiny"])
def test_skip_only_where_shapes_allow(size) -> None:
    space = get_space("proxyless", size=size)
    assert space.num_slots == 21
    mb = [f"mb_k{k}_e{e}" for k in (3, 5, 7) for e in (3, 6)]
    for s, slot in enumerate(space.slots):
        has_skip = "skip" in slot.ops
        assert has_skip == (s not in FIRST_OF_STAGE), slot
        assert list(slot.ops[:6]) == mb
        assert len(slot.ops) == (7 if has_skip else 6)
    if size == "real":
        for s, (_, c_in, _, c_out, stride) in enumerate(hand_plan()):
            assert ("skip" in space.slots[s].ops) == (stride == 1 and c_in == c_out)


def test_skip_matches_traced_shapes_at_tiny_size() -> None:
    supernet = Supernet(get_space("proxyless", size="tiny"))
    trace = trace_ops(supernet)
    for r in trace.choices:
        slot = supernet.space.slots[r.slot]
        if r.op_name != "skip":
            assert ("skip" in slot.ops) == (r.in_shape == r.out_shape), (slot, r.in_shape)
    assert trace.fixed[-1].out_shape == (1, 10)


@pytest.mark.parametrize("size", ["real", "tiny"])
def test_analytic_energy_prices_every_op(size, real) -> None:
    supernet = real[0] if size == "real" else Supernet(get_space("proxyless", size=size))
    energy = price_supernet(supernet, get_cost_model("analytic"))
    assert energy.fixed > 0
    for s, slot in enumerate(supernet.space.slots):
        for i, op in enumerate(slot.ops):
            v = energy.per_op[s, i]
            assert v == 0.0 if op == "skip" else (math.isfinite(v) and v > 0), (s, op, v)
    small = energy(supernet.space.from_op_names(["mb_k3_e3"] * 21))
    big = energy(supernet.space.from_op_names(["mb_k7_e6"] * 21))
    assert 0 < small < big
