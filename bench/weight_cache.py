"""XNNPACK's weight cache (issue 32, point 5): memory a loaded bundle adds, native engine against
the Python ExecuTorch runtime.

    python bench/weight_cache.py BUNDLE [--with OTHER]... [--repeats 5] [--label NAME]

Needs `bash android_bridge/build.sh` first (the JNI engine, `android_bridge/build/native/`).
For the bundle's `supernet.pte`, the resident memory a fresh process adds by loading the program
and running every method once (median of `--repeats` processes), against the bundle's distinct
weight bytes:
- the Python runtime's `ExecuTorchBackend` (ExecuTorch's pip wheel; its Python runtime cannot
  switch the cache on), measured as `bench/runtime.py --memory` does;
- the JNI engine (`NativeEngine`, ExecuTorch's C++ runtime from the same wheel) with XNNPACK's
  weight cache on (its default) and off (`NativeEngine.setWeightCache(false)`), in a JVM with a
  fixed, pre-touched heap and no JIT, so that the JVM's own growth does not count.
With `--with OTHER` (bundles whose weights are named by content, manifest `export.weight_names`;
the engine opens no other kind beside a program): the JNI engine alone, BUNDLE and every OTHER
kept open together in one process, with the cache on and off, beside each loaded alone with the
cache on; the distinct weights are then the union of the programs' named data (a name is its
bytes' sha256 prefix, so equal names are equal bytes).
With one bundle, the JNI engine also with only the method last run loaded
(`NativeEngine.Residency.ACTIVE`, cache on): the memory with the last method loaded, its peak
(VmHWM), and how much longer a method's first run takes than its second (the switch's load).
Writes `weight_cache.<label>` of bench/results/weight_cache.json (other labels kept).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, print_table, update_record
from prp.runtime.bundle import PTE

BUILD = ROOT / "android_bridge" / "build"
JSON_JAR = Path("/usr/share/java/com.android.json.jar")
PROBE = Path(__file__).resolve().parent / "NativeMemoryProbe.java"
JVM = ["-Xint", "-Xms32m", "-Xmx32m", "-XX:+AlwaysPreTouch", "-XX:+UseSerialGC"]

PYTHON_PROBE = """
import gc, json, psutil, numpy as np
import prp.runtime, executorch.runtime, torch
from prp.runtime import Bundle
from prp.runtime.backends import ExecuTorchBackend

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024

proc = psutil.Process()
gc.collect()
rss0, anon0 = proc.memory_info().rss, anon()
m = ExecuTorchBackend(Bundle.load(BUNDLE))
x = np.zeros(SHAPE, dtype=np.float32)
for pid in m.methods:
    m.run(pid, x)
gc.collect()
print(json.dumps({"rss_mib": (proc.memory_info().rss - rss0) / 2**20,
                  "anon_mib": (anon() - anon0) / 2**20}))
"""


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure every run reports."""
    keys = [k for k, v in runs[0].items() if isinstance(v, float) and all(k in r for r in runs)]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def python_run(bundle: Path, shape: list[int]) -> dict[str, float]:
    code = PYTHON_PROBE.replace("BUNDLE", repr(str(bundle))).replace("SHAPE", repr(shape))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def native_run(
    classes: Path, ptes: list[Path], cache: bool, chw: list[int], residency: str = "all"
) -> dict[str, float]:
    """The probe loading every program of `ptes` in turn (`NativeEngine.Residency`), all kept
    open, each method run twice."""
    cp = f"{BUILD / 'prp-bridge.jar'}:{JSON_JAR}:{classes}"
    lib = BUILD / "native" / "libprp_native.so"
    args = [",".join(map(str, ptes)), "on" if cache else "off", *map(str, chw), residency]
    cmd = ["java", *JVM, f"-Dprp.native.lib={lib}", "-cp", cp, "NativeMemoryProbe", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def named_data_mib(bundles: list[Path]) -> float:
    """The distinct bytes of the bundles' programs: the union of their named data by name."""
    from prp.trainer.lowering import pte_named_data

    union: dict[str, int] = {}
    for bundle in bundles:
        union |= {k: len(v) for k, v in pte_named_data(bundle / PTE).items()}
    return sum(union.values()) / 2**20


def measure(
    bundle: Path, others: list[Path], shape: list[int], repeats: int
) -> dict[str, list[dict[str, float]]]:
    """Each configuration's runs, `repeats` of each, interleaved so that a drift of the machine
    hits all alike."""
    ptes = [b / PTE for b in (bundle, *others)]
    loaded: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        classes = Path(tmp)
        cp = f"{BUILD / 'prp-bridge.jar'}:{JSON_JAR}"
        subprocess.run(["javac", "-cp", cp, "-d", str(classes), str(PROBE)], check=True)
        for _ in range(repeats):
            runs: dict[str, dict[str, float]] = {}
            if not others:
                runs["python_executorch"] = python_run(bundle, shape)
            else:
                for pte in ptes:
                    runs[f"native_cache_on_alone_{pte.parent.name}"] = native_run(
                        classes, [pte], True, shape[1:]
                    )
            suffix = "_together" if others else ""
            for cache in (True, False):
                name = f"native_cache_{'on' if cache else 'off'}{suffix}"
                runs[name] = native_run(classes, ptes, cache, shape[1:])
            if not others:  # only the method last run loaded (NativeEngine.Residency.ACTIVE)
                active = native_run(classes, ptes, True, shape[1:], "active")
                runs["native_cache_on_active"] = active
            for name, run in runs.items():
                loaded.setdefault(name, []).append(run)
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--with", dest="others", type=Path, action="append", default=[])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--label", help="record entry (default: the bundle folder's name)")
    args = parser.parse_args()
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    shape = [int(v) for v in manifest["input"]["shape"]]
    for b in [args.bundle, *args.others] if args.others else []:
        if "weight_names" not in json.loads((b / "manifest.json").read_text())["export"]:
            parser.error(
                f"{b} names its weights by a counter (exported before content names); "
                "the engine opens it only alone: export it again to use --with"
            )
    if args.others:
        distinct = named_data_mib([args.bundle, *args.others])
    else:
        distinct = int(manifest["export"]["distinct_weight_bytes"]) / 2**20
    loaded = measure(args.bundle, args.others, shape, args.repeats)
    medians = {name: median_of(runs) for name, runs in loaded.items()}
    part = {
        "bundle": str(args.bundle),
        **({"with": [str(b) for b in args.others]} if args.others else {}),
        "paths": len(manifest["paths"]),
        "distinct_weight_mib": distinct,
        "distinct_weights": "union of the programs' named data" if args.others else "manifest",
        "repeats": args.repeats,
        "jvm": JVM,
        "median": medians,
        "rss_over_distinct_weights": {k: v["rss_mib"] / distinct for k, v in medians.items()},
        "runs": loaded,
    }
    label = args.label or args.bundle.resolve().name
    rows = [
        [
            name,
            f"{m['rss_mib']:.2f}",
            f"{m['anon_mib']:.2f}",
            f"{m['rss_mib'] / distinct:.2f}",
            f"{m['peak_mib']:.2f}" if "peak_mib" in m else "",
            f"{m['first_run_extra_ms']:.2f}" if "first_run_extra_ms" in m else "",
        ]
        for name, m in medians.items()
    ]
    print_table(
        f"{label}: RSS loaded bundles add, distinct weights {distinct:.2f} MiB",
        [
            "loaded as",
            "RSS MiB",
            "anonymous MiB",
            "RSS / distinct weights",
            "peak MiB",
            "first run's extra ms",
        ],
        rows,
    )
    print(f"wrote {update_record('weight_cache', (label,), part)}")


if __name__ == "__main__":
    main()
