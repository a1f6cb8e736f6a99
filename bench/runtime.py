"""Runtime costs: AdaptiveModel overhead, switch time, first call after a switch, memory.

    python bench/runtime.py [BUNDLE] [--reps 300]

- per-path latency through AdaptiveModel.predict against the bare backend call (target <= 3 %)
- time of a switch (a policy decision that changes path)
- first call after a switch against steady state (target <= 1.05x)
- RSS of the loaded bundle against the S paths loaded as S separate single-path programs / models
  (each measured in a fresh subprocess)
Both backends, ExecuTorch and ONNX Runtime, side by side; batch 1.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, write_record  # noqa: E402
from prp.runtime import AdaptiveModel, PushedBattery  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def median_us(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def rss_of(code: str) -> float:
    """MiB of resident memory a fresh interpreter adds by running `code`."""
    probe = textwrap.dedent(f"""
        import gc, json, psutil, numpy as np
        import prp.runtime, onnxruntime
        try:
            import executorch.runtime, torch
        except ImportError:
            pass
        proc = psutil.Process()
        gc.collect()
        before = proc.memory_info().rss
        {code}
        gc.collect()
        print(json.dumps((proc.memory_info().rss - before) / 2**20))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def single_path_bundles(bundle: Path, tmp: Path) -> list[Path]:
    """S one-path ONNX models with their own weights (the no-sharing baseline)."""
    import onnx

    manifest = json.loads((bundle / "manifest.json").read_text())
    out = []
    for p in manifest["paths"]:
        model = onnx.load(str(bundle / p["onnx"]))  # pulls its tensors out of weights.bin
        f = tmp / f"{p['id']}.onnx"
        onnx.save_model(model, str(f))
        out.append(f)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", nargs="?", type=Path, default=ROOT / "exported" / "default")
    parser.add_argument("--reps", type=int, default=300)
    args = parser.parse_args()
    x = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    rows, records = [], {}
    for backend in ("executorch", "onnxruntime"):
        battery = PushedBattery(100)
        model = AdaptiveModel(args.bundle, battery=battery, backend=backend)
        prepared = model.prepare(x)
        per_path = []
        for pid in model.bundle.ids:
            model.switch_to(pid)
            model.predict(x)
            bare, full = [], []
            run_bare = functools.partial(model.backend.run, pid, prepared)
            run_full = functools.partial(model.predict, prepared)
            for _ in range(5):  # interleaved rounds
                bare.append(median_us(run_bare, args.reps // 5))
                full.append(median_us(run_full, args.reps // 5))
            b, f = statistics.median(bare), statistics.median(full)
            per_path.append({"path": pid, "bare_us": b, "adaptive_us": f, "overhead": f / b - 1})
            rows.append([backend, pid, b, f, 100 * (f / b - 1)])
        model.follow_policy()
        # Switch cost and the first call after it, alternating between the two extreme paths.
        ids = model.bundle.ids
        switch_us, first_us, steady_us = [], [], []
        for k in range(100):
            target = ids[-1] if k % 2 == 0 else ids[0]
            t = time.perf_counter()
            model.switch_to(target)
            switch_us.append((time.perf_counter() - t) * 1e6)
            t = time.perf_counter()
            model.predict(prepared)
            first_us.append((time.perf_counter() - t) * 1e6)
            t = time.perf_counter()
            model.predict(prepared)
            steady_us.append((time.perf_counter() - t) * 1e6)
        records[backend] = {
            "per_path": per_path,
            "switch_us": statistics.median(switch_us),
            "first_call_after_switch_us": statistics.median(first_us),
            "steady_us": statistics.median(steady_us),
            "first_over_steady": statistics.median(first_us) / statistics.median(steady_us),
        }

    # The work AdaptiveModel adds to a call, measured on its own: the same predict with a
    # backend that does nothing (end-to-end ratios at 0.1-0.4 ms drown in timer noise here).
    class NullBackend:
        name = "null"

        def __init__(self, classes: int) -> None:
            self.out = np.zeros((1, classes), dtype=np.float32)

        def run(self, path_id: str, xb: np.ndarray) -> np.ndarray:
            return self.out

    null = NullBackend(10)
    model = AdaptiveModel(args.bundle, battery=PushedBattery(100), backend=null)
    prepared = model.prepare(x)
    added_us = statistics.median(
        median_us(functools.partial(model.predict, prepared), 2000) for _ in range(5)
    ) - median_us(functools.partial(null.run, "path_0", prepared), 2000)
    for rec in records.values():
        bare = statistics.median(p["bare_us"] for p in rec["per_path"])
        rec["added_us_per_call"] = added_us
        rec["added_over_bare"] = added_us / bare
    b = str(args.bundle)
    with tempfile.TemporaryDirectory() as tmp:
        singles = single_path_bundles(args.bundle, Path(tmp))
        one_bundle = {
            "executorch": rss_of(
                f"m = prp.runtime.AdaptiveModel({b!r}, "
                f"battery=prp.runtime.PushedBattery(50), backend='executorch')"
            ),
            "onnxruntime": rss_of(
                f"m = prp.runtime.AdaptiveModel({b!r}, "
                f"battery=prp.runtime.PushedBattery(50), backend='onnxruntime')"
            ),
        }
        files = [str(f) for f in singles]
        separate = rss_of(
            f"s = [onnxruntime.InferenceSession(f, providers=['CPUExecutionProvider']) "
            f"for f in {files!r}]"
        )
    memory = {
        "bundle_executorch_mib": one_bundle["executorch"],
        "bundle_onnxruntime_mib": one_bundle["onnxruntime"],
        "separate_onnx_models_mib": separate,
    }
    out = write_record("runtime", {"bundle": b, "backends": records, "memory": memory})
    print_table(
        "Latency per path, batch 1 (median us)",
        ["backend", "path", "bare backend", "AdaptiveModel", "overhead %"],
        rows,
    )
    print_table(
        "Work AdaptiveModel adds per call (policy check, input check, lock)",
        ["backend", "added us", "median bare call us", "overhead % (<= 3)"],
        [
            [
                k,
                v["added_us_per_call"],
                statistics.median(p["bare_us"] for p in v["per_path"]),
                100 * v["added_over_bare"],
            ]
            for k, v in records.items()
        ],
    )
    print_table(
        "Switching",
        ["backend", "switch us", "first call us", "steady us", "first/steady (<= 1.05)"],
        [
            [
                k,
                v["switch_us"],
                v["first_call_after_switch_us"],
                v["steady_us"],
                v["first_over_steady"],
            ]
            for k, v in records.items()
        ],
    )
    print_table(
        "Memory added by loading (RSS, MiB)",
        ["what", "MiB"],
        [
            ["bundle, ExecuTorch backend", memory["bundle_executorch_mib"]],
            ["bundle, ONNX Runtime backend (shared weights)", memory["bundle_onnxruntime_mib"]],
            ["S separate ONNX models", memory["separate_onnx_models_mib"]],
        ],
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
