"""Lowering: a supernet's paths as the programs the backends run. Export, the device profiler
and its profile kit all lower through here, so that what is measured is what ships.

Modules: `graphs` (each path as a plain network whose per-path BatchNorm statistics are
per-channel affines after the shared convs; the removal of NB201's multiply-by-zero terms),
`pte` (the ExecuTorch program, one XNNPACK-delegated method per path, and loading it back),
`onnx_graphs` (one ONNX graph per path, the weights stored once) and `int8` (post-training
int8 quantization whose weights stay shared across paths).
"""

from .graphs import (
    ChannelAffine,
    DepthwiseAffine,
    bn_as_affine,
    distinct_module_bytes,
    drop_zero_terms,
    fold_unshared_affines,
    for_xnnpack,
    live_program,
    live_tensors,
    path_module,
)
from .int8 import (
    CALIBRATION_IMAGES,
    FP32,
    INT8,
    PRECISIONS,
    QUANTIZE_CHOICES,
    Int8Path,
    constant_tensors,
    distinct_bytes,
    int8_weights,
    pte_named_data,
    quantize_path,
    stored_constants,
)
from .onnx_graphs import ONNX_WEIGHTS, check_onnx, write_onnx
from .pte import (
    PTE,
    PTE_SEGMENT_ALIGNMENT,
    WEIGHT_NAMES_LONG,
    WEIGHT_NAMES_SHORT,
    check_pte,
    load_program,
    method_differences,
    write_pte,
)

__all__ = [
    "CALIBRATION_IMAGES",
    "FP32",
    "INT8",
    "ONNX_WEIGHTS",
    "PRECISIONS",
    "PTE",
    "PTE_SEGMENT_ALIGNMENT",
    "QUANTIZE_CHOICES",
    "WEIGHT_NAMES_LONG",
    "WEIGHT_NAMES_SHORT",
    "ChannelAffine",
    "DepthwiseAffine",
    "Int8Path",
    "bn_as_affine",
    "check_onnx",
    "check_pte",
    "constant_tensors",
    "distinct_bytes",
    "distinct_module_bytes",
    "drop_zero_terms",
    "fold_unshared_affines",
    "for_xnnpack",
    "int8_weights",
    "live_program",
    "live_tensors",
    "load_program",
    "method_differences",
    "path_module",
    "pte_named_data",
    "quantize_path",
    "stored_constants",
    "write_onnx",
    "write_pte",
]
