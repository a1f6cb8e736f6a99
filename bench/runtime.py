"""Runtime costs: AdaptiveModel overhead, switch time, first call after a switch, memory.

    python bench/runtime.py [BUNDLE] [--reps 300]
    python bench/runtime.py BUNDLE --memory [--repeats 5] [--label NAME]

- per-path latency through AdaptiveModel.predict against the bare backend call (target <= 3 %)
- time of a switch (a policy decision that changes path)
- first call after a switch against steady state (target <= 1.05x)
- RSS of the loaded bundle against the S paths loaded as S separate single-path programs / models
  (each measured in a fresh subprocess)
Both backends, ExecuTorch and ONNX Runtime, side by side; batch 1.

`--memory` measures only whether shared weights are in memory once (issue 18, item 8) and adds
the figures to `memory.<label>` of the record, keeping its other entries: for each way of loading
the bundle (ExecuTorch; ONNX Runtime as shipped; ONNX Runtime with `share_weights=True`; the S
paths as S separate ONNX models) the resident memory a fresh interpreter adds by loading it and
running every path once, median of `--repeats` interpreters, against the bundle's distinct weight
bytes and the sum of its paths' weight bytes; the bytes of weights each ONNX Runtime session
holds after its graph optimisations; and, per path, what a second instance of the same
ExecuTorch method adds (XNNPACK packing that method's weights again, or not).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import RESULTS, machine, print_table, update_record, write_record
from prp.runtime import AdaptiveModel, PushedBattery
from prp.trainer.device_profile.timing import time_calls

ROOT = Path(__file__).resolve().parents[1]


def median_us(fn, reps: int) -> float:
    """Median microseconds of `reps` timed calls of `fn` (`device_profile.timing.time_calls`)."""
    return time_calls(fn, warmup=0, repeats=reps).median_ms * 1e3


def rss_of(code: str) -> float:
    """MiB of resident memory a fresh interpreter adds by running `code`."""
    return float(memory_of(code)["rss_mib"])


_PROBE = """
import gc, json, psutil, numpy as np
import prp.runtime, onnxruntime
try:
    import executorch.runtime, torch
except ImportError:
    pass
from prp.runtime import Bundle
from prp.runtime.backends import ExecuTorchBackend, OnnxRuntimeBackend

def anon_bytes():
    # RSS = anonymous (the process's own allocations) + file-backed pages (code, memory maps
    # of bundle files, shared with the page cache). Weight copies a runtime makes are anonymous.
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024

x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
proc = psutil.Process()
result = {}
gc.collect()
rss0, anon0 = proc.memory_info().rss, anon_bytes()
{code}
gc.collect()
result["rss_mib"] = (proc.memory_info().rss - rss0) / 2**20
result["anon_mib"] = (anon_bytes() - anon0) / 2**20
print(json.dumps(result))
"""


def memory_of(code: str) -> dict[str, Any]:
    """What a fresh interpreter adds to its resident memory by running `code` (MiB: `rss_mib`,
    `anon_mib`), plus whatever `code` puts in the dict `result`. The interpreter has numpy,
    psutil, the runtime, ONNX Runtime and (where installed) ExecuTorch and torch imported before
    the first reading, and a float32 image `x`."""
    probe = _PROBE.replace("{code}", textwrap.dedent(code).strip())
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")},
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory probe failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def weight_bytes(manifest: dict[str, Any]) -> dict[str, int]:
    """Bytes of the distinct weight tensors of the bundle (each once) and their sum over paths
    (a tensor once per path that uses it), from the manifest's ONNX tensor table."""
    distinct: dict[int, int] = {}
    per_path = 0
    for p in manifest["paths"]:
        for t in p["onnx_initializers"]:
            distinct[int(t["offset"])] = int(t["length"])
            per_path += int(t["length"])
    return {"distinct_bytes": sum(distinct.values()), "sum_over_paths_bytes": per_path}


def onnxruntime_session_weights(bundle: Path, manifest: dict[str, Any]) -> dict[str, int]:
    """Bytes of weights the S ONNX Runtime sessions hold after ONNX Runtime's default graph
    optimisations (read back from the optimised graphs it writes), and how many of them are
    still the bundle's tensors (external data in weights.bin) rather than rewritten copies."""
    import onnx
    import onnxruntime as ort
    from onnx import helper
    from prp.runtime.backends import onnx_session_options

    total = unchanged = 0
    with tempfile.TemporaryDirectory() as tmp:
        for p in manifest["paths"]:
            options = onnx_session_options()
            options.optimized_model_filepath = str(Path(tmp) / p["onnx"])
            options.log_severity_level = 3  # its NCHWc "hardware-specific" notice
            ort.InferenceSession(
                str(bundle / p["onnx"]), options, providers=["CPUExecutionProvider"]
            )
            graph = onnx.load(options.optimized_model_filepath, load_external_data=False).graph
            for init in graph.initializer:
                itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
                n = int(np.prod(init.dims, dtype=np.int64)) * itemsize
                total += n
                if init.data_location == onnx.TensorProto.EXTERNAL:
                    unchanged += n
    return {"onnxruntime_sessions_bytes": total, "onnxruntime_sessions_from_weights_bin": unchanged}


def _median_runs(code: str, repeats: int) -> dict[str, Any]:
    runs = [memory_of(code) for _ in range(repeats)]
    out: dict[str, Any] = {
        key: statistics.median(r[key] for r in runs) for key in ("rss_mib", "anon_mib")
    }
    out["rss_mib_runs"] = [round(r["rss_mib"], 3) for r in runs]
    out["anon_mib_runs"] = [round(r["anon_mib"], 3) for r in runs]
    return out


def share_weights_latency(bundle: Path, reps: int = 100) -> dict[str, dict[str, float]]:
    """Median batch-1 call of each path, ONNX Runtime as shipped against `share_weights=True`,
    timed in interleaved rounds in one process so that the machine's load hits both alike."""
    from prp.runtime import Bundle
    from prp.runtime.backends import OnnxRuntimeBackend

    loaded = Bundle.load(bundle)
    default = OnnxRuntimeBackend(loaded)
    shared = OnnxRuntimeBackend(loaded, share_weights=True)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    out = {}
    for pid in loaded.ids:
        d, s = [], []
        for _ in range(5):
            d.append(median_us(functools.partial(default.run, pid, x), reps // 5))
            s.append(median_us(functools.partial(shared.run, pid, x), reps // 5))
        a, b = statistics.median(d), statistics.median(s)
        out[pid] = {"default_us": a, "share_weights_us": b, "share_over_default": b / a}
    return out


def measure_memory(bundle: Path, repeats: int) -> dict[str, Any]:
    """Memory of the loaded bundle on both backends against its weight bytes (see the module
    docstring); every figure a median over `repeats` fresh interpreters."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    b = str(bundle)
    # Each path runs once: runtimes allocate some buffers at the first call, not at loading.
    run_all = "for pid in m.sessions: m.run(pid, x)"
    loads = {
        "executorch": f"""
            m = ExecuTorchBackend(Bundle.load({b!r}))
            for pid in m.methods: m.run(pid, x)
        """,
        "onnxruntime": f"""
            m = OnnxRuntimeBackend(Bundle.load({b!r}))
            {run_all}
        """,
        "onnxruntime_share_weights": f"""
            m = OnnxRuntimeBackend(Bundle.load({b!r}), share_weights=True)
            {run_all}
        """,
    }
    # First: it sets ONNX Runtime's global thread pool in this process, as the backend does.
    latency = share_weights_latency(bundle)
    record: dict[str, Any] = {
        "bundle": b,
        "paths": len(manifest["paths"]),
        "repeats": repeats,
        "machine": machine(),
        "weights": {
            **weight_bytes(manifest),
            **onnxruntime_session_weights(bundle, manifest),
        },
        "loaded": {},
        "onnxruntime_call_us": latency,
    }
    for name, code in loads.items():
        record["loaded"][name] = _median_runs(code, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        files = [str(f) for f in single_path_bundles(bundle, Path(tmp))]
        separate = f"""
            ort = onnxruntime
            ort.set_global_thread_pool_sizes(0, 1)  # one pool, as the backend has
            options = ort.SessionOptions()
            options.use_per_session_threads = False
            s = [ort.InferenceSession(f, options, providers=['CPUExecutionProvider'])
                 for f in {files!r}]
            for t in s: t.run(None, {{t.get_inputs()[0].name: x}})
        """
        record["loaded"]["separate_onnx_models"] = _median_runs(separate, repeats)
    # A second instance of one method holds exactly the weights of the first: what it adds is
    # what XNNPACK allocates per method beyond weights that are already in memory. Through the
    # pybindings' program: executorch.runtime.Program hands out one cached Method per name.
    record["executorch_second_method_instance"] = []
    pte = str(bundle / "supernet.pte")
    for p in manifest["paths"]:
        code = f"""
            from executorch.extension.pybindings import portable_lib
            program = portable_lib._load_program({pte!r})
            first = program.load_method({p["method"]!r})
            first([torch.from_numpy(x)])
            gc.collect()
            rss0, anon0 = proc.memory_info().rss, anon_bytes()
            second = program.load_method({p["method"]!r})
            second([torch.from_numpy(x)])
        """
        weights = sum(int(t["length"]) for t in p["onnx_initializers"])
        runs = _median_runs(code, repeats)
        record["executorch_second_method_instance"].append(
            {"path": p["id"], "weights_mib": weights / 2**20, "anon_mib": runs["anon_mib"]}
        )
    return record


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
    parser.add_argument("bundle", nargs="?", type=Path, default=ROOT / "exported" / "smoke")
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument(
        "--memory", action="store_true", help="measure memory only (into memory.<label>)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="fresh interpreters per figure")
    parser.add_argument("--label", help="name of the memory entry (default: the bundle folder)")
    args = parser.parse_args()
    if args.memory:
        memory_main(args.bundle, args.repeats, args.label or args.bundle.resolve().name)
        return
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
        **_previous_record().get("memory", {}),  # entries written by --memory stay
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


def _previous_record() -> dict[str, Any]:
    path = RESULTS / "runtime.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def memory_main(bundle: Path, repeats: int, label: str) -> None:
    """`--memory`: measure, add `memory.<label>` to the record (the rest unchanged), print."""
    if not (bundle / "manifest.json").is_file():
        raise SystemExit(f"error: {bundle} is not a bundle (no manifest.json); export one first")
    mem = measure_memory(bundle, repeats)
    path = update_record("runtime", ("memory", label), mem)  # stamped with its own provenance
    w = mem["weights"]
    mib = 2**20
    print_table(
        f"Weights of {bundle} ({mem['paths']} paths), MiB",
        ["what", "MiB"],
        [
            ["distinct weights (each tensor once)", w["distinct_bytes"] / mib],
            ["sum over paths (a tensor once per path)", w["sum_over_paths_bytes"] / mib],
            [
                "held by the ONNX Runtime sessions (optimised)",
                w["onnxruntime_sessions_bytes"] / mib,
            ],
            [
                "  of which still the bundle's tensors",
                w["onnxruntime_sessions_from_weights_bin"] / mib,
            ],
        ],
    )
    print_table(
        f"Memory added by loading and running every path once (median of {repeats}), MiB",
        ["loaded as", "RSS", "anonymous (the process's own)"],
        [[name, v["rss_mib"], v["anon_mib"]] for name, v in mem["loaded"].items()],
    )
    print_table(
        "ONNX Runtime call, batch 1, median us (interleaved rounds)",
        ["path", "as shipped", "share_weights=True", "ratio"],
        [
            [pid, v["default_us"], v["share_weights_us"], v["share_over_default"]]
            for pid, v in mem["onnxruntime_call_us"].items()
        ],
    )
    print_table(
        "A second instance of an ExecuTorch method (same weights), MiB",
        ["path", "its weights", "anonymous memory it adds"],
        [
            [r["path"], r["weights_mib"], r["anon_mib"]]
            for r in mem["executorch_second_method_instance"]
        ],
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
