"""The ladder's significance rule: a costlier path stands on the battery and schedule ladders
only if a paired test on held-out images found it more accurate than every cheaper path on them.
Hypothesis drives the Python policies, the loader's check and the exporter's test record on
random fronts and random per-image correctness; the Java bridge is held to the same fronts by
the conformance table (test_android_bridge.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from prp.runtime import validate_manifest
from prp.runtime.bundle import SCHEMA_VERSION
from prp.runtime.policies import (
    COST_FIELDS,
    Rung,
    ladder,
    ladder_policies,
    passed_pairs,
    rungs_of,
)
from prp.trainer.export.ladder_tests import ALPHA, correct_on, ladder_tests, mcnemar_p
from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[1]
BASE = json.loads((ROOT / "exported" / "smoke" / "manifest.json").read_text())

accuracies = st.sampled_from([50.0, 49.5, 48.0, 45.0, 10.0]) | st.floats(0.0, 100.0)
costs = st.sampled_from([0.1, 0.3, 1.0, 2.0]) | st.floats(0.0, 1e3)
fronts = st.lists(st.tuples(accuracies, costs), min_size=1, max_size=7)


def as_rungs(front: list[tuple[float, float]]) -> list[Rung]:
    return [Rung(f"p{k}", a, c) for k, (a, c) in enumerate(front)]


@st.composite
def fronts_with_tests(draw: st.DrawFn) -> tuple[list[Rung], frozenset[tuple[str, str]]]:
    rungs = as_rungs(draw(fronts))
    pairs = [(a.id, b.id) for a in rungs for b in rungs if b.cost < a.cost]
    passed = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    return rungs, frozenset(passed)


@settings(max_examples=300, deadline=None)
@given(fronts_with_tests())
def test_every_rung_beats_every_cheaper_rung(case) -> None:
    rungs, beats = case
    plain = ladder(rungs)
    tested = ladder(rungs, beats)
    # A subset of the non-dominated ladder, in its order, always holding its cheapest rung.
    assert [r for r in plain if r in tested] == tested
    assert tested[-1] == plain[-1]
    for k, upper in enumerate(tested):
        assert all((upper, lower) in beats for lower in tested[k + 1 :])
    # Maximal: a non-dominated path left off failed a test against a kept cheaper rung.
    by_id = {r.id: r for r in rungs}
    for pid in set(plain) - set(tested):
        cheaper_kept = [t for t in tested if by_id[t].cost < by_id[pid].cost]
        assert any((pid, t) not in beats for t in cheaper_kept)


@settings(max_examples=200, deadline=None)
@given(fronts)
def test_all_tests_passed_is_the_plain_ladder(front) -> None:
    rungs = as_rungs(front)
    every = frozenset((a.id, b.id) for a in rungs for b in rungs if b.cost < a.cost)
    assert ladder(rungs, every) == ladder(rungs)


def manifest_with(front, correct, objective="energy") -> dict:
    field = COST_FIELDS[objective][0]
    template = {k: v for k, v in BASE["paths"][0].items() if k != "onnx_initializers"}
    order = sorted(range(len(front)), key=lambda k: -front[k][0])
    paths = [
        {
            **template,
            "id": f"path_{i}",
            "method": f"path_{i}",
            "accuracy": front[k][0],
            field: front[k][1],
        }
        for i, k in enumerate(order)
    ]
    record = ladder_tests(
        {p["id"]: p[field] for p in paths},
        {f"path_{i}": correct[k] for i, k in enumerate(order)},
        "held-out validation images",
    )
    m = {**BASE, "schema_version": SCHEMA_VERSION, "objective": objective, "paths": paths}
    m["ladder_tests"] = record
    m["policies"] = ladder_policies(paths, objective, passed_pairs(m))
    return m


@st.composite
def measured_fronts(draw: st.DrawFn):
    n_paths = draw(st.integers(1, 5))
    n_images = draw(st.integers(1, 60))
    correct = [
        np.array(draw(st.lists(st.booleans(), min_size=n_images, max_size=n_images)))
        for _ in range(n_paths)
    ]
    cost = draw(st.lists(costs, min_size=n_paths, max_size=n_paths))
    front = [(100.0 * float(c.mean()), float(x)) for c, x in zip(correct, cost, strict=True)]
    return front, correct


@settings(max_examples=200, deadline=None)
@given(measured_fronts())
def test_exported_tables_obey_the_recorded_tests(case) -> None:
    front, correct = case
    m = manifest_with(front, correct)
    assert validate_manifest(m) == []
    beats = passed_pairs(m)
    order = m["policies"]["schedule"]["order"]
    assert [lv["path"] for lv in m["policies"]["battery"]["levels"]] == order
    assert order == ladder(rungs_of(m["paths"], "energy"), beats)
    for k, upper in enumerate(order):
        for lower in order[k + 1 :]:
            pair = next(
                p for p in m["ladder_tests"]["pairs"] if (p["path"], p["cheaper"]) == (upper, lower)
            )
            assert pair["p_value"] < ALPHA and pair["only_path_right"] > pair["only_cheaper_right"]


@settings(max_examples=100, deadline=None)
@given(measured_fronts())
def test_the_loader_refuses_a_rung_without_a_passed_test(case) -> None:
    front, correct = case
    m = manifest_with(front, correct)
    failed = [p for p in m["ladder_tests"]["pairs"] if not p["more_accurate"]]
    plain = ladder(rungs_of(m["paths"], "energy"))
    for pair in failed:
        if pair["path"] in plain and pair["cheaper"] in plain:
            m["policies"]["schedule"]["order"] = [pair["path"], pair["cheaper"]]
            errors = validate_manifest(m)
            assert any("not measurably more accurate" in e for e in errors)
            return


def test_mcnemar_is_the_exact_one_sided_binomial_test() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(15, 3) == binomtest(15, 18, 0.5, alternative="greater").pvalue
    assert mcnemar_p(15, 3) < ALPHA < mcnemar_p(10, 8)
    # Concordant images (both right or both wrong) do not count.
    upper = np.array([1, 1, 1, 0, 0] * 10, dtype=bool)
    lower = np.array([1, 0, 1, 0, 1] * 10, dtype=bool)
    record = ladder_tests({"a": 2.0, "b": 1.0}, {"a": upper, "b": lower}, "val")
    (pair,) = record["pairs"]
    assert (pair["only_path_right"], pair["only_cheaper_right"]) == (10, 10)
    assert pair["more_accurate"] is False and record["images"] == 50


def test_correct_on_marks_each_image() -> None:
    import torch

    class Fixed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.one_hot(x[:, 0].long(), 3).float()

    x = torch.tensor([[0.0], [1.0], [2.0], [1.0]])
    y = torch.tensor([0, 2, 2, 1])
    assert correct_on(Fixed(), x, y, batch_size=3).tolist() == [True, False, True, True]


def test_bundles_without_tests_keep_the_plain_ladder() -> None:
    plain = {k: v for k, v in BASE.items() if k != "ladder_tests"}
    assert passed_pairs(plain) is None
    tables = ladder_policies(plain["paths"], plain["objective"], passed_pairs(plain))
    assert tables["schedule"]["order"] == ladder(rungs_of(plain["paths"], plain["objective"]))
