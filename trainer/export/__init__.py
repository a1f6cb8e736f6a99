"""Export a trained run as a bundle: the pruned supernet's top-s paths as one ExecuTorch program
(one method per path) and ONNX graphs sharing one weights file, plus `manifest.json`.

BatchNorm: every path has its own BN statistics (recalibrated for that path), so folding BN into
the convolutions would give every path its own copy of every conv weight. Instead each BN becomes
a per-channel scale and shift (x * scale + shift) after the shared, unchanged conv weight: the
convs are stored once for all paths and only these small vectors are per path. In the .pte each
such affine is a 1x1 depthwise convolution (weight = scale, bias = shift: the same arithmetic),
which XNNPACK runs as one op in its NHWC layout with the vectors as static constants.

.pte size beyond the distinct weights is one XNNPACK graph per method (its nodes, values and
constant references) plus the program's tables; `write_pte` keeps it small by not letting the
graphs grow avoidable nodes (`DepthwiseAffine`, `_drop_zero_terms`), by short constant names
(`_shorten_named_keys`) and by a 64-byte segment alignment.

Every method and graph is checked against PyTorch before the bundle is moved into place.

Modules, one concern each: `run` (loading a trained run, choosing the paths), `modules` (each
path as a plain network, BN as affines), `pte` (the ExecuTorch program and its key rewrite),
`onnx_graphs` (ONNX graphs sharing one weights file), `checks` (every method against PyTorch),
`manifest` (costs, tables, provenance), `folder` (the bundle folder, safely) and `exporter`
(`export_bundle`, which runs them in order).
"""

from .checks import CHECK_IMAGES, INT8_TOLERANCE, TOLERANCE
from .errors import ExportError
from .exporter import export_bundle
from .folder import EXPORT_LOG
from .manifest import _distinct_bytes, _stored, default_policies
from .modules import (
    ChannelAffine,
    DepthwiseAffine,
    _drop_zero_terms,
    _for_xnnpack,
    _replace_bn,
    calibrated_path_module,
    path_module,
)
from .onnx_graphs import ONNX_WEIGHTS, check_onnx, write_onnx
from .pte import PTE, PTE_SEGMENT_ALIGNMENT, check_pte, write_pte
from .run import LoadedRun, choose_paths, load_run

__all__ = [
    "CHECK_IMAGES",
    "EXPORT_LOG",
    "INT8_TOLERANCE",
    "ONNX_WEIGHTS",
    "PTE",
    "PTE_SEGMENT_ALIGNMENT",
    "TOLERANCE",
    "ChannelAffine",
    "DepthwiseAffine",
    "ExportError",
    "LoadedRun",
    "_distinct_bytes",
    "_drop_zero_terms",
    "_for_xnnpack",
    "_replace_bn",
    "_stored",
    "calibrated_path_module",
    "check_onnx",
    "check_pte",
    "choose_paths",
    "default_policies",
    "export_bundle",
    "load_run",
    "path_module",
    "write_onnx",
    "write_pte",
]
