"""The NB201 ground-truth table (truth for evaluation, not a cost model)."""

from __future__ import annotations

import numpy as np
import pytest
from prp.trainer.errors import PRPError
from prp.trainer.nb201_table import NB201_COST_COLUMNS, NB201Table
from prp.trainer.spaces import get_space


def test_lookup_by_path_reads_the_right_rows(nb201_csv) -> None:
    table = NB201Table.load(nb201_csv)
    space = get_space("nb201")
    # Row 1 of the CSV, read independently of our parser.
    line = nb201_csv.read_text().splitlines()[2].split(",")
    path = space.decode(line[1])
    assert table.lookup(space, [path], "cifar10_test_acc")[0] == pytest.approx(float(line[2]))
    assert table.lookup(space, [path], "edgegpu_energy")[0] == pytest.approx(float(line[5]))
    assert set(NB201_COST_COLUMNS) <= set(table.columns)
    best = int(np.argmax(table.column("cifar10_test_acc")))
    assert table.column("cifar10_test_acc")[best] == pytest.approx(94.37, abs=0.01)


def test_bad_tables_and_columns_give_clear_errors(tmp_path, nb201_csv) -> None:
    with pytest.raises(PRPError, match="does not exist"):
        NB201Table.load(tmp_path / "missing.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    with pytest.raises(PRPError, match="no 'arch_str' column"):
        NB201Table.load(wrong)
    table = NB201Table.load(nb201_csv)
    with pytest.raises(PRPError, match="no column 'imagenet_acc'"):
        table.column("imagenet_acc")
