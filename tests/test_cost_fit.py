"""`prp-fit-costs`: the shipped NB201 cost table as a product command, for anyone's
measurements of NB201 architectures, written atomically and never over another file."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
from prp.trainer.cli import fit_costs_app
from prp.trainer.costs import get_cost_model
from typer.testing import CliRunner


def invoke(*args: str):
    return CliRunner().invoke(fit_costs_app, list(args))


def test_it_rebuilds_the_shipped_table_and_may_replace_its_own(nb201_csv, tmp_path) -> None:
    out = tmp_path / "fit.json"
    for _ in range(2):  # the second call replaces the first's table
        result = invoke("--truth", str(nb201_csv), "--out", str(out))
        assert result.exit_code == 0, result.output
    shipped = resources.files("prp.trainer").joinpath("data/hwnasbench_nb201_fit.json")
    assert out.read_bytes() == shipped.read_bytes()
    assert "edgegpu_energy" in result.output and "0.8769" in result.output  # its R^2, printed
    assert [p.name for p in tmp_path.iterdir()] == ["fit.json"]  # no temporary file left


def test_a_fit_of_your_own_measurements_prices_paths_through_cost_lut(nb201_csv, tmp_path) -> None:
    lines = nb201_csv.read_text().splitlines()
    own = tmp_path / "own.csv"
    own.write_text("\n".join(lines[:2001]) + "\n")  # the header and 2,000 architectures
    out = tmp_path / "own-fit.json"
    assert invoke("--truth", str(own), "--out", str(out)).exit_code == 0
    data = json.loads(out.read_text())
    assert {c["architectures"] for c in data["columns"].values()} == {2000}
    model = get_cost_model("hwnasbench-nb201", "latency", "pixel3", path=str(out))
    fit = data["columns"]["pixel3_latency"]
    assert model.source == str(out) and model.base == fit["base"]
    assert np.array_equal(model.per_op, np.array(fit["per_edge_op"]))


def test_bad_input_ends_in_one_line_and_no_other_file_is_replaced(nb201_csv, tmp_path) -> None:
    mine = tmp_path / "mine.json"
    mine.write_text('{"my": "notes"}')
    no_costs = tmp_path / "no-costs.csv"
    header = nb201_csv.read_text().splitlines()[0].split(",")
    row = nb201_csv.read_text().splitlines()[1].split(",")
    keep = [i for i, c in enumerate(header) if c != "pixel3_latency"]
    no_costs.write_text(
        ",".join(header[i] for i in keep) + "\n" + ",".join(row[i] for i in keep) + "\n"
    )
    few = tmp_path / "few.csv"
    few.write_text("\n".join(nb201_csv.read_text().splitlines()[:31]) + "\n")
    cases = {
        "has 30 architectures; a fit of the 30 per-(edge, op) costs and a base needs at least 31": [
            "--truth",
            str(few),
            "--out",
            str(tmp_path / "c"),
        ],
        "is not a cost table prp-fit-costs wrote": ["--truth", str(nb201_csv), "--out", str(mine)],
        "does not exist": ["--truth", str(tmp_path / "none.csv"), "--out", str(tmp_path / "a")],
        "has no column 'pixel3_latency'": ["--truth", str(no_costs), "--out", str(tmp_path / "b")],
        "is a folder": ["--truth", str(nb201_csv), "--out", str(tmp_path)],
    }
    for message, args in cases.items():
        result = invoke(*args)
        assert result.exit_code == 2, (message, result.output)
        assert result.output.startswith("error:") and message in " ".join(result.output.split())
    assert mine.read_text() == '{"my": "notes"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few.csv", "mine.json", "no-costs.csv"]
