"""What `prp-export --low-memory` costs per call: the same paths exported without and with it,
timed side by side by ExecuTorch's Python runtime.

    OMP_NUM_THREADS=1 python bench/low_memory.py PLAIN LOW [--rounds 30] [--calls 10] [--label NAME]

PLAIN and LOW are bundles of the same paths (the manifest's `export.indirection_buffers`:
`per node` and `transient`). Both programs are loaded in one process; each round calls every
method of each `--calls` times in turn, the two programs interleaved so that a drift of the
machine hits both alike; a method's figure is its median per-call time over the rounds. The
memory side is `bench/weight_cache.py` on each bundle. Writes `low_memory.<label>` of
bench/results/low_memory.json (other labels kept) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from common import print_table, update_record
from prp.runtime.bundle import PTE


def per_call_ms(method, x, calls: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(calls):
        method.execute([x])
    return (time.perf_counter() - start) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("plain", type=Path)
    parser.add_argument("low", type=Path)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--label", help="record entry (default: the plain bundle's folder name)")
    args = parser.parse_args()
    import torch
    from executorch.runtime import Runtime

    manifests = {b: json.loads((b / "manifest.json").read_text()) for b in (args.plain, args.low)}
    kinds = [m["export"].get("indirection_buffers", "per node") for m in manifests.values()]
    if kinds != ["per node", "transient"]:
        parser.error(f"expected a plain and a --low-memory bundle, got {kinds}")
    keys = [[p["key"] for p in m["paths"]] for m in manifests.values()]
    if keys[0] != keys[1]:
        parser.error("the two bundles hold different paths; export the same run both ways")
    shape = [int(v) for v in manifests[args.plain]["input"]["shape"]]
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
    runtime = Runtime.get()
    methods = {}
    for name, bundle in (("plain", args.plain), ("low", args.low)):
        program = runtime.load_program(str(bundle / PTE))
        methods[name] = {m: program.load_method(m) for m in sorted(program.method_names)}
        for method in methods[name].values():  # warm-up: first calls prepare XNNPACK's operators
            per_call_ms(method, x, 3)
    times: dict[str, dict[str, list[float]]] = {"plain": {}, "low": {}}
    for _ in range(args.rounds):
        for path in methods["plain"]:
            for name in ("plain", "low"):
                ms = per_call_ms(methods[name][path], x, args.calls)
                times[name].setdefault(path, []).append(ms)
    median = {n: {p: statistics.median(v) for p, v in t.items()} for n, t in times.items()}
    ratio = {p: median["low"][p] / median["plain"][p] for p in median["plain"]}
    rows = [
        [p, f"{median['plain'][p]:.3f}", f"{median['low'][p]:.3f}", f"{ratio[p]:.3f}"]
        for p in median["plain"]
    ]
    label = args.label or args.plain.resolve().name
    print_table(
        f"{label}: ms per call, ExecuTorch's Python runtime, median of {args.rounds} rounds",
        ["method", "plain", "--low-memory", "ratio"],
        rows,
    )
    part = {
        "plain": str(args.plain),
        "low": str(args.low),
        "rounds": args.rounds,
        "calls": args.calls,
        "threads": torch.get_num_threads(),
        "median_ms": median,
        "ratio": ratio,
        "ratio_of_sums": sum(median["low"].values()) / sum(median["plain"].values()),
        "runs_ms": times,
    }
    print(f"wrote {update_record('low_memory', (label,), part)}")


if __name__ == "__main__":
    main()
