"""Inference backends behind one interface: ExecuTorch (the .pte) and ONNX Runtime (the graphs).

Both load every path once at start-up, so a switch costs nothing but a dictionary lookup. The
ExecuTorch backend needs torch (its Python runtime takes torch tensors); the ONNX Runtime one
needs only numpy and onnxruntime.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .bundle import PTE, WEIGHTS, Bundle, BundleError
from .quiet import library_output


class Backend(Protocol):
    name: str

    def run(self, path_id: str, x: np.ndarray) -> np.ndarray:
        """Logits [N, classes] of path `path_id` for float32 NCHW input `x`."""
        ...


class SharedWeights:
    """OrtValues over a read-only memory map of the bundle's weights file, one per tensor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map: np.memmap | None = None
        self._values: dict[tuple[int, str, tuple[int, ...]], Any] = {}

    def value(self, tensor: dict[str, Any]) -> Any:
        import onnxruntime as ort

        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
        shape = tuple(int(d) for d in tensor["shape"])
        key = (int(tensor["offset"]), str(tensor["dtype"]), shape)
        if key not in self._values:
            dtype = np.dtype(tensor["dtype"])
            count = int(tensor["length"]) // dtype.itemsize
            array = np.frombuffer(self._map, dtype=dtype, count=count, offset=key[0])
            self._values[key] = ort.OrtValue.ortvalue_from_numpy(array.reshape(shape))
        return self._values[key]


def onnx_session_options() -> Any:
    """`onnxruntime.SessionOptions` that work in this process. The ONNX Runtime backend sets ONNX
    Runtime's global thread pool, which is process-wide: from then on every session, ours or the
    host app's, must use it (`use_per_session_threads = False`) or ONNX Runtime refuses to create
    it. Make other sessions in a process that uses the runtime with these options."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if OnnxRuntimeBackend._pool_ready:
        options.use_per_session_threads = False
    return options


class OnnxRuntimeBackend:
    """One InferenceSession per path, created once, all on one shared thread pool (with a pool
    per session, the first call after a switch ran about 2x slower here).

    Weights in memory: by default ONNX Runtime optimises each path's graph for this CPU (BN
    folded into the conv weights, convs re-laid out in its NCHWc blocks), so every session holds
    its own rewritten copy of its path's weights; `weights.bin` shares them on disk only. With
    `share_weights=True` every session reads its weights in place from one read-only memory map
    of `weights.bin` (`SessionOptions.add_initializer`): a tensor several paths use is in memory
    once, in the page cache. ONNX Runtime must then not rewrite them, so its graph optimisations
    are off: at NB201's real size that saved 3.7 MiB of 28 and made calls 10-18x slower here
    (`bench/runtime.py --memory`), so it is for hosts short of memory, not the default.
    """

    name = "onnxruntime"
    _pool_lock = threading.Lock()
    _pool_ready = False

    def __init__(self, bundle: Bundle, threads: int = 0, share_weights: bool = False) -> None:
        import onnxruntime as ort

        with OnnxRuntimeBackend._pool_lock:
            if not OnnxRuntimeBackend._pool_ready:
                ort.set_global_thread_pool_sizes(threads, 1)
                OnnxRuntimeBackend._pool_ready = True
        self.sessions = {}
        self.share_weights = share_weights
        # Read only for graphs with initializers, and then the manifest must list (and loading
        # has checked) weights.bin: validate_manifest refuses a bundle that does not.
        self._shared = SharedWeights(bundle.directory / WEIGHTS)
        for p in bundle.paths:
            options = onnx_session_options()
            if share_weights:
                # At any optimisation level ONNX Runtime builds the fused conv weights from the
                # graph's own copy in weights.bin and silently ignores these overrides for them
                # (measured: changing an overridden conv weight changed no output).
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
                for t in p.get("onnx_initializers", []):
                    options.add_initializer(t["name"], self._shared.value(t))
            graph = str(bundle.file(p["onnx"]))  # listed in files, checked, inside the bundle
            try:
                session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
            except Exception as e:  # noqa: BLE001 - ORT raises its own exception types
                raise BundleError(f"ONNX Runtime cannot load {p['onnx']}: {e}") from None
            self.sessions[p["id"]] = (session, session.get_inputs()[0].name)

    def run(self, path_id: str, x: np.ndarray) -> np.ndarray:
        session, input_name = self.sessions[path_id]
        return np.asarray(session.run(None, {input_name: x})[0])


def load_program(pte: Path) -> Any:
    """The ExecuTorch program at `pte`, loaded by ExecuTorch's Python runtime with its console
    output sent to the runtime's log (unless a command's `third_party_log` block takes it): the
    one loader the runtime, the trainer's export checks and profiler, and the bench call."""
    with library_output():
        from executorch.runtime import Runtime

        try:
            return Runtime.get().load_program(str(pte))
        except Exception as e:  # noqa: BLE001 - the pybindings raise plain RuntimeError
            raise BundleError(f"ExecuTorch cannot load {pte}: {e}") from None


class ExecuTorchBackend:
    """The bundle's one program, every method loaded once; each method runs one image at a time
    (the program is exported at batch 1) and is guarded by its own lock (a Method is not
    re-entrant).

    The .pte stores a weight the methods share once, but XNNPACK packs each method's weights
    into buffers of its own as the method loads: in memory a shared weight is there once per
    method that uses it. ExecuTorch's XNNPACK weight cache would share them: the pip wheel's
    XNNPACK backend has it, off unless the backend option `weight_cache_enabled` is set, and
    1.5.1's Python runtime has no call to set it (the Android bridge's JNI engine sets it).
    """

    name = "executorch"

    def __init__(self, bundle: Bundle) -> None:
        # Importing ExecuTorch (with torch installed it pulls in torchao, which cannot load its
        # CUDA kernels on a CPU build) and the first call of a method (XNNPACK's cpuinfo probes)
        # print to the process's stderr: an app embedding the runtime would see it on its
        # console. All of it happens here, once, into the runtime's log instead.
        with library_output():
            pte = bundle.file(PTE)
            program = load_program(pte)
            try:
                self.methods = {p["id"]: program.load_method(p["method"]) for p in bundle.paths}
            except Exception as e:  # noqa: BLE001 - the pybindings raise plain RuntimeError
                raise BundleError(f"ExecuTorch cannot load a method of {pte}: {e}") from None
            self.locks = {pid: threading.Lock() for pid in self.methods}
            self._program = program
            # One call sets XNNPACK up for the process; the other methods print nothing more.
            shape = bundle.data["input"]["shape"]
            self.run(next(iter(self.methods)), np.zeros([1, *shape[1:]], dtype=np.float32))

    def run(self, path_id: str, x: np.ndarray) -> np.ndarray:
        import torch

        method = self.methods[path_id]
        out = []
        with self.locks[path_id]:
            for row in x:
                out.append(method.execute([torch.from_numpy(row[None].copy())])[0].numpy())
        return np.concatenate(out)


BACKENDS = ("auto", "executorch", "onnxruntime")


def available(name: str) -> bool:
    module = {"executorch": "executorch", "onnxruntime": "onnxruntime"}[name]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def make_backend(bundle: Bundle, name: str = "auto") -> Backend:
    """`auto`: ExecuTorch where it is installed, else ONNX Runtime."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; backends are: {', '.join(BACKENDS)}")
    if name == "auto":
        if available("executorch"):
            try:
                return ExecuTorchBackend(bundle)
            except ImportError:  # executorch present but unusable here (no torch, say)
                pass
        name = "onnxruntime"
    if not available(name):
        raise BundleError(f"backend {name!r} is not installed; pip install {name}")
    return ExecuTorchBackend(bundle) if name == "executorch" else OnnxRuntimeBackend(bundle)
