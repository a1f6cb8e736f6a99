"""Bundle size and speed: one multi-method program against S single-path programs.

    python bench/export.py RUN [--top 5] [--reps 200] [--real-size]

Exports RUN's top paths as a bundle (timed), then each path alone as its own .pte, and reports
.pte size against the sum of the single-path programs and against the bytes of distinct weights
(target <= 1.05x), the ONNX weights file against distinct weights (target <= 1.01x), and each
method's latency in the bundle against the same path's own program (target ratio ~1.0), timed
interleaved with ExecuTorch's runtime at batch 1. `--real-size` also exports 5 seeded uniform
paths of NB201 at its real size (C=16, N=5; untrained weights, each path with its own BatchNorm
statistics) to measure the .pte against distinct weights where the weights are not tiny.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_record  # noqa: E402
from prp.runtime.bundle import load_manifest  # noqa: E402
from prp.trainer.datasets import load_dataset, to_tensor  # noqa: E402
from prp.trainer.export import calibrated_path_module, export_bundle, load_run, write_pte  # noqa: E402


def median_ms(method, x, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        method.execute([x])
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def real_size_ratio(paths: int = 5, seed: int = 0) -> dict[str, float]:
    """.pte bytes over distinct weight bytes for `paths` uniform paths of real-size NB201."""
    import numpy as np
    from prp.trainer.export import _distinct_bytes, check_pte, path_module
    from prp.trainer.spaces import get_space
    from prp.trainer.supernet import Supernet

    torch.manual_seed(seed)
    supernet = Supernet(get_space("nb201", size="real")).eval()
    rng = np.random.default_rng(seed)
    modules = {}
    for i in range(paths):
        path = supernet.sample_uniform(rng)
        supernet.recalibrate_bn(path, [torch.randn(16, 3, 32, 32) for _ in range(2)])
        modules[f"path_{i}"] = path_module(supernet, path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "real.pte"
        write_pte(modules, torch.randn(1, 3, 32, 32), out)
        diff = max(check_pte(out, modules, torch.randn(3, 3, 32, 32)).values())
        pte = out.stat().st_size
    distinct = _distinct_bytes(list(modules.values()))
    return {
        "pte_bytes": pte,
        "distinct_weight_bytes": distinct,
        "pte_over_distinct": pte / distinct,
        "max_abs_diff": diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--real-size", action="store_true", help="also measure real-size NB201")
    args = parser.parse_args()
    from executorch.runtime import Runtime

    run = load_run(args.run)
    cfg = run.cfg
    data = load_dataset(
        cfg.dataset,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        limit_per_class=cfg.limit_per_class,
    )
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        t = time.perf_counter()
        bundle = export_bundle(args.run, tmp / "bundle", top=args.top, data=data)
        export_s = time.perf_counter() - t
        manifest = load_manifest(bundle).data
        train_x = to_tensor(data.train.images, data.mean, data.std)
        train_y = torch.tensor(data.train.labels)
        x = to_tensor(data.test.images[:1], data.mean, data.std)
        singles = {}
        for p in manifest["paths"]:
            module = calibrated_path_module(run, tuple(p["path"]), train_x, train_y)
            write_pte({"forward": module}, x, tmp / f"{p['id']}.pte")
            singles[p["id"]] = tmp / f"{p['id']}.pte"
        rt = Runtime.get()
        program = rt.load_program(str(bundle / "supernet.pte"))
        rows, per_path = [], []
        for p in manifest["paths"]:
            in_bundle = program.load_method(p["method"])
            alone = rt.load_program(str(singles[p["id"]])).load_method("forward")
            median_ms(in_bundle, x, 20)
            median_ms(alone, x, 20)
            a, b = [], []
            for _ in range(5):  # interleaved rounds
                a.append(median_ms(in_bundle, x, args.reps // 5))
                b.append(median_ms(alone, x, args.reps // 5))
            ms_bundle, ms_alone = statistics.median(a), statistics.median(b)
            rows.append([p["id"], ms_bundle, ms_alone, ms_bundle / ms_alone])
            per_path.append(
                {
                    "id": p["id"],
                    "bundle_ms": ms_bundle,
                    "alone_ms": ms_alone,
                    "ratio": ms_bundle / ms_alone,
                }
            )
        pte = (bundle / "supernet.pte").stat().st_size
        singles_sum = sum(f.stat().st_size for f in singles.values())
        weights = (bundle / "weights.bin").stat().st_size
        graphs = sum((bundle / p["onnx"]).stat().st_size for p in manifest["paths"])
    distinct = manifest["export"]["distinct_weight_bytes"]
    record = {
        "run": str(args.run),
        "paths": len(manifest["paths"]),
        "export_s": export_s,
        "pte_bytes": pte,
        "single_pte_bytes_sum": singles_sum,
        "distinct_weight_bytes": distinct,
        "pte_over_distinct": pte / distinct,
        "pte_over_singles": pte / singles_sum,
        "onnx_weights_bytes": weights,
        "onnx_weights_over_distinct": weights / distinct,
        "onnx_graph_bytes": graphs,
        "latency": per_path,
    }
    if args.real_size:
        record["real_size_nb201"] = real_size_ratio()
    out = write_record("export", record)
    print_table(
        f"Bundle size ({len(manifest['paths'])} paths, export {export_s:.1f} s)",
        ["file", "bytes", "vs distinct weights", "target"],
        [
            ["supernet.pte", pte, pte / distinct, "<= 1.05"],
            ["sum of single-path .pte", singles_sum, singles_sum / distinct, ""],
            ["ONNX weights.bin", weights, weights / distinct, "<= 1.01"],
            ["ONNX graphs (all)", graphs, graphs / distinct, ""],
            ["distinct weights", distinct, 1.0, ""],
        ],
    )
    if args.real_size:
        real = record["real_size_nb201"]
        print_table(
            "NB201 at real size (C=16, N=5), 5 uniform paths, untrained",
            ["supernet.pte bytes", "distinct weights", "ratio", "target", "max abs diff"],
            [
                [
                    real["pte_bytes"],
                    real["distinct_weight_bytes"],
                    real["pte_over_distinct"],
                    "<= 1.05",
                    real["max_abs_diff"],
                ]
            ],
        )
    print_table(
        "Latency per path, batch 1, ExecuTorch XNNPACK (median ms)",
        ["path", "in bundle", "alone", "ratio"],
        rows,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
