"""Export a trained run as a bundle: the pruned supernet's top-s paths as one ExecuTorch program
(one method per path) and ONNX graphs sharing one weights file, plus `manifest.json`.

BatchNorm: every path has its own BN statistics (recalibrated for that path), so folding BN into
the convolutions would give every path its own copy of every conv weight. Instead each BN becomes
a per-channel scale and shift (x * scale + shift) after the shared, unchanged conv weight: the
convs are stored once for all paths and only these small vectors are per path. In the .pte each
such affine is a 1x1 depthwise convolution (weight = scale, bias = shift: the same arithmetic),
which XNNPACK runs as one op in its NHWC layout with the vectors as static constants. A conv
that only one exported path reads takes its BN folded in (`fold_unshared_affines`): no copy to
store, one op less.

.pte size beyond the distinct weights is one XNNPACK graph per method (its nodes, values and
constant references) plus the program's tables; `write_pte` keeps it small by not letting the
graphs grow avoidable nodes (`DepthwiseAffine`, `drop_zero_terms`), by short constant names
and by a 64-byte segment alignment (the lowering itself lives in `prp.trainer.lowering`).

Every method and graph is checked against PyTorch before the bundle is moved into place.

Modules, one concern each: `run` (loading a trained run, choosing the paths), `modules` (each
path recalibrated as a plain network, its accuracy), `checks` (every method against PyTorch),
`manifest` (costs, tables, provenance), `folder` (the bundle folder, safely) and `exporter`
(`export_bundle`, which runs them in order). The ExecuTorch program, the ONNX graphs and int8
come from `prp.trainer.lowering`; the names below that it defines are importable from here too.
"""

from ..errors import ExportError
from ..lowering import (
    ONNX_WEIGHTS,
    PTE,
    PTE_SEGMENT_ALIGNMENT,
    ChannelAffine,
    DepthwiseAffine,
    check_onnx,
    check_pte,
    path_module,
    write_onnx,
    write_pte,
)
from .checks import CHECK_IMAGES, INT8_TOLERANCE, TOLERANCE
from .exporter import export_bundle
from .folder import EXPORT_LOG
from .manifest import default_policies
from .modules import calibrated_path_module
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
