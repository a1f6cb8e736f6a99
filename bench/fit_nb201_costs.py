"""Writes `trainer/data/hwnasbench_nb201_fit.json`, the `hwnasbench-nb201` cost model's table.

    python bench/fit_nb201_costs.py [--truth ../shared/data/nasbench201/nb201_cifar10_hw.csv]

HW-NAS-Bench measured whole NB201 architectures, not ops; a per-(edge, op) table is fitted to
those measurements by non-negative least squares (cost = base + sum of c[edge, op]) so the
trainer can price paths it has never seen, as the paper prices paths with a lookup table. The fit
quality (R^2, Kendall tau-b over all 15,625 architectures) is stored with the table and printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402
from prp.trainer.benchmarks import NB201Table  # noqa: E402
from prp.trainer.costs import NB201_FIT_FILE, nb201_fit_table  # noqa: E402
from prp.trainer.runs import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRUTH = ROOT.parent / "shared" / "data" / "nasbench201" / "nb201_cifar10_hw.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--truth", type=Path, default=DEFAULT_TRUTH)
    parser.add_argument("--out", type=Path, default=ROOT / "trainer" / NB201_FIT_FILE)
    args = parser.parse_args()
    data = nb201_fit_table(NB201Table.load(args.truth))
    write_json(args.out, data)
    cols = data["columns"]
    assert isinstance(cols, dict)
    print_table(
        "NB201 per-(edge, op) fit of HW-NAS-Bench",
        ["column", "R^2", "tau-b", "base"],
        [[c, f["r2"], f["kendall_tau_b"], f["base"]] for c, f in cols.items()],
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
