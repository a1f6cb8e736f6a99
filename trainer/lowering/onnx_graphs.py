"""The ONNX graphs: one per path, every distinct initializer stored once in `weights.bin`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from prp.runtime.backends import onnx_session_options
from prp.runtime.bundle import WEIGHTS as ONNX_WEIGHTS
from torch import Tensor, nn

from .graphs import live_program


def _float_types() -> set[int]:
    import onnx

    return {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}


def write_onnx(modules: dict[str, nn.Module], example: Tensor, out_dir: Path) -> dict[str, Any]:
    """One ONNX graph per path (dynamic batch); every distinct initializer is stored once in
    `weights.bin` and each graph points at it by offset and length. An int8 path comes as its
    PT2E-quantized module and becomes a QDQ graph (int8 weights, DequantizeLinear per channel)
    with the quantization parameters the ExecuTorch method has."""
    import onnx
    from onnx import numpy_helper
    from onnx.external_data_helper import set_external_data

    _FLOAT_TYPES = _float_types()  # noqa: N806
    _INT8_TYPES = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}  # noqa: N806
    stored: dict[str, tuple[int, int]] = {}
    tensors: dict[str, list[dict[str, Any]]] = {}
    graphs = {}
    with (out_dir / ONNX_WEIGHTS).open("wb") as f:
        for name, m in modules.items():
            # Exported without its multiply-by-zero terms, as the .pte is: ONNX Runtime keeps
            # `x * 0` (not exact for inf and NaN), so a graph of the module as it is would run
            # and store every op of an NB201 edge whose result never reaches the output.
            program = torch.onnx.export(
                live_program(m, example), dynamo=True, optimize=True, verbose=False
            )
            assert program is not None
            proto = program.model_proto
            for init in proto.graph.initializer:
                int8_weight = init.data_type in _INT8_TYPES and len(init.dims) >= 2
                if init.data_type not in _FLOAT_TYPES and not int8_weight:
                    continue  # shape-like int tensors and zero points stay inline for ORT
                raw = numpy_helper.to_array(init).tobytes()
                key = hashlib.sha256(init.data_type.to_bytes(4, "little") + raw).hexdigest()
                if key not in stored:
                    # int8 weights leave float tensors after them unaligned; pad to 4 (never
                    # needed between float32 tensors, so an fp32 bundle is unchanged).
                    f.write(b"\0" * (-f.tell() % 4))
                    stored[key] = (f.tell(), len(raw))
                    f.write(raw)
                offset, length = stored[key]
                array = numpy_helper.to_array(init)
                tensors.setdefault(name, []).append(
                    {
                        "name": init.name,
                        "offset": offset,
                        "length": length,
                        "dtype": str(array.dtype),
                        "shape": list(array.shape),
                    }
                )
                for field in ("float_data", "int32_data", "int64_data", "double_data"):
                    init.ClearField(field)  # type: ignore[arg-type]
                init.raw_data = raw  # set_external_data wants raw_data, then it goes
                set_external_data(init, location=ONNX_WEIGHTS, offset=offset, length=length)
                init.data_location = onnx.TensorProto.EXTERNAL
                init.ClearField("raw_data")
            for node in proto.graph.node:  # exporter's per-node provenance: ~75% of the bytes
                del node.metadata_props[:]
            graph_file = f"{name}.onnx"
            onnx.save_model(proto, str(out_dir / graph_file))
            graphs[name] = graph_file
    return {"graphs": graphs, "distinct_tensors": len(stored), "tensors": tensors}


def check_onnx(
    out_dir: Path, graphs: dict[str, str], modules: dict[str, nn.Module], inputs: Tensor
) -> dict[str, float]:
    """Max abs difference of every ONNX graph from PyTorch, run by ONNX Runtime."""
    import onnxruntime as ort

    diffs = {}
    with torch.no_grad():
        for name, m in modules.items():
            session = ort.InferenceSession(
                str(out_dir / graphs[name]),
                onnx_session_options(),
                providers=["CPUExecutionProvider"],
            )
            feed = {session.get_inputs()[0].name: inputs.numpy()}
            out = session.run(None, feed)[0]
            diffs[name] = float(np.abs(out - m(inputs).numpy()).max())
    return diffs
