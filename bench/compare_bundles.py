"""Two exports of the same paths timed side by side, per path and backend, as the runtime
runs them: what an exporter change (or a re-export) did to the time of a call.

    python bench/compare_bundles.py OLD NEW [--label NAME] [--rounds 30] [--calls 10] [--threads 1]

OLD and NEW are bundles holding the same paths (the manifests' path keys). Both are loaded
in one process by each backend of the runtime (ExecuTorch and ONNX Runtime, each where it is
installed); each round calls every path of each bundle `--calls` times, the bundles
interleaved so that a drift of the machine hits both alike. A path's figure is its median
per-call time over the rounds, one image per call. An older bundle is rebuilt from git, e.g.

    mkdir -p /tmp/old && for f in manifest.json supernet.pte weights.bin path_{0..4}.onnx; do
      git show af18526^:exported/nb201-edgegpu/$f > /tmp/old/$f; done

Writes `compare_bundles.<label>` of bench/results/compare_bundles.json (other labels kept) and
prints a table. `bench/low_memory.py` is the same comparison for a `--low-memory` pair, with
ExecuTorch's own calls only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import print_table, update_record
from prp.runtime.backends import ExecuTorchBackend, OnnxRuntimeBackend, available
from prp.runtime.bundle import Bundle


def per_call_ms(backend: Any, path_id: str, x: np.ndarray, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        backend.run(path_id, x)
    return (time.perf_counter() - start) / calls * 1e3


def backends(bundle: Bundle, threads: int) -> dict[str, Any]:
    """The runtime's backends over `bundle`, each that is installed here."""
    made: dict[str, Any] = {}
    if available("executorch"):
        made["executorch"] = ExecuTorchBackend(bundle)
    if available("onnxruntime"):
        made["onnxruntime"] = OnnxRuntimeBackend(bundle, threads=threads)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--label", help="record entry (default: the new bundle's folder name)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundles = {"old": Bundle.load(args.old), "new": Bundle.load(args.new)}
    keys = {n: [p["key"] for p in b.data["paths"]] for n, b in bundles.items()}
    if keys["old"] != keys["new"]:
        parser.error("the two bundles hold different paths; compare exports of the same run")
    ids = bundles["new"].ids
    shape = [1, *bundles["new"].data["input"]["shape"][1:]]
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    loaded = {n: backends(b, args.threads) for n, b in bundles.items()}
    for per_bundle in loaded.values():  # warm-up: first calls prepare each path
        for backend in per_bundle.values():
            for pid in ids:
                per_call_ms(backend, pid, x, 3)
    names = list(loaded["new"])
    times: dict[str, dict[str, dict[str, list[float]]]] = {
        b: {n: {pid: [] for pid in ids} for n in names} for b in bundles
    }
    for _ in range(args.rounds):
        for name in names:
            for pid in ids:
                for b in bundles:
                    times[b][name][pid].append(per_call_ms(loaded[b][name], pid, x, args.calls))
    median = {
        b: {n: {pid: statistics.median(v) for pid, v in t.items()} for n, t in per.items()}
        for b, per in times.items()
    }
    ratio = {n: {pid: median["new"][n][pid] / median["old"][n][pid] for pid in ids} for n in names}
    rows = [
        [n, pid, f"{median['old'][n][pid]:.3f}", f"{median['new'][n][pid]:.3f}", ratio[n][pid]]
        for n in names
        for pid in ids
    ]
    label = args.label or args.new.resolve().name
    print_table(
        f"{label}: ms per call (one image, {args.threads} thread(s)), median of {args.rounds} "
        f"rounds of {args.calls}",
        ["backend", "path", "old", "new", "new / old"],
        rows,
    )
    part = {
        "old": str(args.old),
        "new": str(args.new),
        "rounds": args.rounds,
        "calls": args.calls,
        "threads": args.threads,
        "median_ms": median,
        "ratio": ratio,
        "ratio_of_sums": {
            n: sum(median["new"][n].values()) / sum(median["old"][n].values()) for n in names
        },
        "runs_ms": times,
    }
    print(f"wrote {update_record('compare_bundles', (label,), part)}")


if __name__ == "__main__":
    main()
