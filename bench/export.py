"""Bundle size and speed: one multi-method program against S single-path programs.

    python bench/export.py RUN [--top 5] [--reps 200] [--real-size]

Exports RUN's top paths as a bundle (timed), then each path alone as its own .pte, and reports
.pte size against the sum of the single-path programs and against the bytes of distinct weights
(target <= 1.05x), the ONNX weights file against distinct weights (target <= 1.01x), and each
method's latency in the bundle against the same path's own program (target ratio ~1.0), timed
interleaved with ExecuTorch's runtime at batch 1. `--real-size` also exports 5 seeded uniform
paths of NB201 at its real size (C=16, N=5; untrained weights, each path with its own BatchNorm
statistics) to measure the .pte against distinct weights where the weights are not tiny.

    python bench/export.py --real-size-only --space darts

The real-size part alone, for NB201 or DARTS (its search network, C=16, 8 cells: the paper
preset's size; 5 seeded uniform paths, untrained): .pte bytes against distinct weights (DARTS
target <= 1.10, issue 34), the constants the .pte stores, its graph overhead and the lowering
time; updates `real_size_<space>` of `export.json`, leaving the rest of the record as it was.
`--set channels=36 --set cells=20` measures another size of the space (DARTS' evaluation
network), recorded as `real_size_darts_channels36_cells20`.

    python bench/export.py RUN --quantize int8 [--top 5] [--reps 200] [--real-size-only]

Int8 bundles (issue 21), record `export_int8.json`: the same 5 real-size NB201 paths as int8
(calibrated on random images: the weights are untrained) and RUN's top paths exported twice, in
float32 and in int8 (calibrated on the run's held-out images): .pte bytes int8 / fp32 (target
<= 0.30 at real size), the constants the int8 .pte stores against the distinct int8 constants
of its paths (stored once: target <= 1.05) and the whole .pte against them (graph overhead),
per-path test top-1 int8 against fp32 (target: drop <= 1.0 point) and per-path latency int8 /
fp32 at batch 1, interleaved, ExecuTorch XNNPACK and ONNX Runtime (target <= 0.7).
`--real-size-only` measures the real-size paths alone and replaces their figures
(`real_size_nb201`) in the existing record, leaving RUN's bundle figures as they were.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import print_table, update_record, write_record
from prp.runtime.backends import load_program
from prp.runtime.bundle import PTE, WEIGHTS, load_manifest
from prp.trainer.datasets import load_dataset, to_tensor
from prp.trainer.device_profile.timing import time_calls
from prp.trainer.export import calibrated_path_module, export_bundle, load_run, write_pte


def median_ms(method, x, reps: int) -> float:
    """Median ms of `reps` calls of an ExecuTorch method on `x`."""
    return median_ms_fn(lambda: method.execute([x]), reps)


# The paper's size of each space (`--preset paper` builds the space at size "real"): NB201
# C=16, N=5; DARTS its CIFAR-10 search network, C=16, 8 cells.
REAL_SIZE = {"nb201": "C=16, N=5", "darts": "C=16, 8 cells (DARTS' search network)"}
# The target of .pte bytes over distinct weight bytes at that size (DARTS': issue 34).
TARGET = {"nb201": "<= 1.05", "darts": "<= 1.10"}


def real_size_ratio(
    paths: int = 5, seed: int = 0, space: str = "nb201", overrides: dict | None = None
) -> dict:
    """.pte bytes over distinct weight bytes for `paths` uniform paths of `space` at real size,
    with its settings `overrides` (untrained weights, each path with its own BatchNorm
    statistics)."""
    from prp.trainer.export import check_pte
    from prp.trainer.lowering import distinct_module_bytes as _distinct_bytes
    from prp.trainer.lowering import pte_named_data

    modules = _real_size_modules(paths, seed, space, overrides or {})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "real.pte"
        t = time.perf_counter()
        write_pte(modules, torch.randn(1, 3, 32, 32), out)
        lower_s = time.perf_counter() - t
        diff = max(check_pte(out, modules, torch.randn(3, 3, 32, 32)).values())
        pte = out.stat().st_size
        stored = sum(len(v) for v in pte_named_data(out).values())
    distinct = _distinct_bytes(list(modules.values()))
    return {
        "space": space,
        "size": ", ".join(f"{k}={v}" for k, v in (overrides or {}).items()) or REAL_SIZE[space],
        "paths": paths,
        "pte_bytes": pte,
        "distinct_weight_bytes": distinct,
        "pte_over_distinct": pte / distinct,
        "pte_stored_constant_bytes": stored,
        "stored_over_distinct": stored / distinct,
        "graph_overhead_bytes": pte - stored,
        "lower_s": lower_s,
        "max_abs_diff": diff,
    }


def _real_size_modules(
    paths: int, seed: int, space: str = "nb201", overrides: dict | None = None
) -> dict:
    import numpy as np
    from prp.trainer.export import path_module
    from prp.trainer.spaces import get_space
    from prp.trainer.supernet import Supernet

    torch.manual_seed(seed)
    supernet = Supernet(get_space(space, size="real", **(overrides or {}))).eval()
    rng = np.random.default_rng(seed)
    modules = {}
    for i in range(paths):
        path = supernet.sample_uniform(rng)
        supernet.recalibrate_bn(path, [torch.randn(16, 3, 32, 32) for _ in range(2)])
        modules[f"path_{i}"] = path_module(supernet, path)
    return modules


def real_size_main(space: str, overrides: dict[str, int]) -> None:
    """`--real-size-only --space S [--set K=V ...]`: refresh `real_size_<S>[_<K><V>...]` of
    `export.json` alone."""
    real = real_size_ratio(space=space, overrides=overrides)
    key = "_".join([f"real_size_{space}", *(f"{k}{v}" for k, v in overrides.items())])
    # The rest of the record is the full run's; this part carries its own machine and command.
    out = update_record("export", (key,), real)
    print_table(
        f"{space} at {real['size']}, {real['paths']} uniform paths, untrained",
        [".pte bytes", "distinct weights", "ratio", "target", "graph overhead B", "lower s"],
        [
            [real["pte_bytes"], real["distinct_weight_bytes"], real["pte_over_distinct"]]
            + [TARGET[space], real["graph_overhead_bytes"], real["lower_s"]]
        ],
    )
    print(f"wrote {out}")


def int8_sizes(fp32_pte: Path, int8_pte: Path, int8_paths: list) -> dict[str, float]:
    """Size figures of an int8 program against its fp32 twin and its distinct constants."""
    from prp.trainer.lowering import distinct_bytes, int8_weights, pte_named_data
    from prp.trainer.lowering import stored_constants as _stored

    stored = sum(len(v) for v in pte_named_data(int8_pte).values())
    distinct = distinct_bytes([t for q in int8_paths for t in _stored(q)])
    weights = [t for q in int8_paths for t in int8_weights(q.reference)]
    pte8, pte32 = int8_pte.stat().st_size, fp32_pte.stat().st_size
    return {
        "fp32_pte_bytes": pte32,
        "int8_pte_bytes": pte8,
        "int8_over_fp32": pte8 / pte32,
        "int8_distinct_constant_bytes": distinct,
        "int8_weight_bytes_sum_over_paths": sum(t.numel() for t in weights),
        "int8_distinct_weight_bytes": distinct_bytes(weights),
        "pte_stored_constant_bytes": stored,
        "stored_over_distinct": stored / distinct,
        "pte_over_distinct": pte8 / distinct,
        "graph_overhead_bytes": pte8 - stored,
        "fp32_graph_overhead_bytes": pte32 - sum(len(v) for v in pte_named_data(fp32_pte).values()),
    }


def real_size_int8(paths: int = 5, seed: int = 0) -> dict[str, float]:
    """Int8 against fp32 for `paths` uniform paths of real-size NB201 (sizes, agreement)."""
    from prp.trainer.export import check_pte
    from prp.trainer.lowering import quantize_path

    modules = _real_size_modules(paths, seed)
    example = torch.randn(1, 3, 32, 32)
    calib = [torch.randn(32, 3, 32, 32) for _ in range(4)]
    quantized = {k: quantize_path(m, example, calib) for k, m in modules.items()}
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.pte", Path(tmp) / "int8.pte"
        write_pte(modules, example, fp32)
        write_pte({k: q.program for k, q in quantized.items()}, example, int8)
        x = torch.randn(3, 3, 32, 32)
        diff = check_pte(int8, {k: q.reference for k, q in quantized.items()}, x)
        record = int8_sizes(fp32, int8, list(quantized.values()))
    with torch.no_grad():
        peak = max(float(q.reference(x).abs().max()) for q in quantized.values())
    return {**record, "max_abs_diff_vs_reference": max(diff.values()), "max_abs_logit": peak}


def median_ms_fn(fn, reps: int) -> float:
    """Median ms of `reps` timed calls of `fn` (`device_profile.timing.time_calls`)."""
    return time_calls(fn, warmup=0, repeats=reps).median_ms


def _latency(calls: dict, reps: int) -> dict[str, float]:
    """Median ms of each call, warmed up, over 5 interleaved rounds."""
    for fn in calls.values():
        median_ms_fn(fn, 20)
    timings: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(5):
        for k, fn in calls.items():
            timings[k].append(median_ms_fn(fn, max(reps // 5, 1)))
    return {k: statistics.median(v) for k, v in timings.items()}


def int8_real_size_main() -> None:
    """`--quantize int8 --real-size-only`: refresh `real_size_nb201` of `export_int8.json`."""
    real = real_size_int8()
    # The rest of the record is the full run's; this part carries its own machine and command.
    out = update_record("export_int8", ("real_size_nb201",), real)
    print_table(
        "Int8 .pte against fp32 at NB201's real size (5 paths)",
        ["fp32 .pte", "int8 .pte", "int8/fp32", "stored/distinct", "graph overhead B"],
        [
            [real[k] for k in ("fp32_pte_bytes", "int8_pte_bytes", "int8_over_fp32")]
            + [real["stored_over_distinct"], real["graph_overhead_bytes"]]
        ],
    )
    print(f"wrote {out}")


def int8_main(args: argparse.Namespace) -> None:
    """`--quantize int8`: the figures of issue 21 (module docstring)."""
    import onnxruntime as ort
    from prp.runtime.backends import onnx_session_options
    from prp.trainer.lowering import pte_named_data

    run = load_run(args.run)
    cfg = run.cfg
    data = load_dataset(
        cfg.dataset,
        val_fraction=cfg.val_fraction,
        seed=cfg.seed,
        limit_per_class=cfg.limit_per_class,
    )
    record: dict = {"run": str(args.run), "top": args.top}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        t = time.perf_counter()
        fp32 = export_bundle(args.run, tmp / "fp32", top=args.top, data=data)
        record["fp32_export_s"] = time.perf_counter() - t
        t = time.perf_counter()
        int8 = export_bundle(args.run, tmp / "int8", top=args.top, data=data, quantize="int8")
        record["int8_export_s"] = time.perf_counter() - t
        m32, m8 = load_manifest(fp32).data, load_manifest(int8).data
        stored = sum(len(v) for v in pte_named_data(int8 / PTE).values())
        stored32 = sum(len(v) for v in pte_named_data(fp32 / PTE).values())
        distinct = m8["export"]["int8_distinct_weight_bytes"]
        pte8 = (int8 / PTE).stat().st_size
        pte32 = (fp32 / PTE).stat().st_size
        record["sizes"] = {
            "fp32_pte_bytes": pte32,
            "int8_pte_bytes": pte8,
            "int8_over_fp32": pte8 / pte32,
            "fp32_distinct_weight_bytes": m32["export"]["distinct_weight_bytes"],
            "int8_distinct_constant_bytes": distinct,
            "pte_stored_constant_bytes": stored,
            "stored_over_distinct": stored / distinct,
            "pte_over_distinct": pte8 / distinct,
            "graph_overhead_bytes": pte8 - stored,
            "fp32_graph_overhead_bytes": pte32 - stored32,
            "onnx_fp32_weights_bytes": (fp32 / WEIGHTS).stat().st_size,
            "onnx_int8_weights_bytes": (int8 / WEIGHTS).stat().st_size,
        }
        x = to_tensor(data.test.images[:1], data.mean, data.std)
        p32 = load_program(fp32 / PTE)
        p8 = load_program(int8 / PTE)
        rows, per_path = [], []
        for a, b in zip(m32["paths"], m8["paths"], strict=True):
            assert a["key"] == b["key"]
            e32, e8 = p32.load_method(a["method"]), p8.load_method(b["method"])
            o32, o8 = (
                ort.InferenceSession(
                    str(bundle / p["onnx"]),
                    onnx_session_options(),
                    providers=["CPUExecutionProvider"],
                )
                for bundle, p in ((fp32, a), (int8, b))
            )
            f32 = {o32.get_inputs()[0].name: x.numpy()}
            f8 = {o8.get_inputs()[0].name: x.numpy()}
            ms = _latency(
                {
                    "et32": lambda m=e32: m.execute([x]),
                    "et8": lambda m=e8: m.execute([x]),
                    "ort32": lambda s=o32, f=f32: s.run(None, f),
                    "ort8": lambda s=o8, f=f8: s.run(None, f),
                },
                args.reps,
            )
            drop = b["fp32_test_accuracy"] - b["test_accuracy"]
            per_path.append(
                {
                    "id": b["id"],
                    "key": b["key"],
                    "fp32_test_accuracy": b["fp32_test_accuracy"],
                    "int8_test_accuracy": b["test_accuracy"],
                    "top1_drop_points": drop,
                    "executorch_fp32_ms": ms["et32"],
                    "executorch_int8_ms": ms["et8"],
                    "executorch_int8_over_fp32": ms["et8"] / ms["et32"],
                    "onnxruntime_fp32_ms": ms["ort32"],
                    "onnxruntime_int8_ms": ms["ort8"],
                    "onnxruntime_int8_over_fp32": ms["ort8"] / ms["ort32"],
                    "max_abs_diff_vs_reference": b["max_abs_diff"],
                }
            )
            rows.append(
                [
                    b["id"],
                    b["fp32_test_accuracy"],
                    b["test_accuracy"],
                    drop,
                    ms["et32"],
                    ms["et8"],
                    ms["et8"] / ms["et32"],
                    ms["ort8"] / ms["ort32"],
                ]
            )
        record["paths"] = per_path
        record["test_images"] = len(data.test.labels)
        record["calibration"] = m8["quantization"]["calibration"]
    record["real_size_nb201"] = real_size_int8()
    out = write_record("export_int8", record)
    real, sizes = record["real_size_nb201"], record["sizes"]
    print_table(
        "Int8 .pte against fp32 and against its distinct int8 constants",
        [
            "bundle",
            "fp32 .pte",
            "int8 .pte",
            "int8/fp32",
            "stored/distinct",
            ".pte/distinct",
            "graph overhead B",
        ],
        [
            ["NB201 real size, 5 paths"]
            + [real[k] for k in ("fp32_pte_bytes", "int8_pte_bytes", "int8_over_fp32")]
            + [real[k] for k in ("stored_over_distinct", "pte_over_distinct")]
            + [real["graph_overhead_bytes"]],
            [f"{args.run}, top {args.top}"]
            + [sizes[k] for k in ("fp32_pte_bytes", "int8_pte_bytes", "int8_over_fp32")]
            + [sizes[k] for k in ("stored_over_distinct", "pte_over_distinct")]
            + [sizes["graph_overhead_bytes"]],
        ],
    )
    print_table(
        f"Per path: test top-1 ({record['test_images']} images), batch-1 latency (median ms)",
        ["path", "fp32 %", "int8 %", "drop", "ET fp32", "ET int8", "ET int8/fp32", "ORT int8/fp32"],
        rows,
    )
    print(f"wrote {out}")


def _setting(text: str, parser: argparse.ArgumentParser) -> tuple[str, int]:
    key, _, value = text.partition("=")
    if not key or not value.isdigit():
        parser.error(f"--set {text!r}: write KEY=INT, e.g. channels=36")
    return key, int(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, nargs="?")
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--real-size", action="store_true", help="also measure real-size NB201")
    parser.add_argument("--quantize", choices=["int8"], help="measure int8 bundles (issue 21)")
    parser.add_argument(
        "--real-size-only",
        action="store_true",
        help="only the real-size part (updates its figures): NB201's int8 with --quantize int8, "
        "else --space's float32 .pte against its distinct weights",
    )
    parser.add_argument(
        "--space", choices=sorted(REAL_SIZE), default="nb201", help="space of --real-size-only"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=INT",
        help="with --real-size-only: a space setting other than real size's (channels=36)",
    )
    args = parser.parse_args()
    if args.quantize and args.real_size_only:
        int8_real_size_main()
        return
    if args.real_size_only:
        real_size_main(args.space, dict(_setting(s, parser) for s in args.set))
        return
    if args.run is None:
        parser.error("give RUN, or --real-size-only")
    if args.quantize:
        int8_main(args)
        return

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
        program = load_program(bundle / PTE)
        rows, per_path = [], []
        for p in manifest["paths"]:
            in_bundle = program.load_method(p["method"])
            alone = load_program(singles[p["id"]]).load_method("forward")
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
        pte = (bundle / PTE).stat().st_size
        singles_sum = sum(f.stat().st_size for f in singles.values())
        weights = (bundle / WEIGHTS).stat().st_size
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
