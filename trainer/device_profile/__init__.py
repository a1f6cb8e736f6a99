"""`prp-profile`: measure a search space's per-op cost table on this device, and check it.

Once-for-All and HW-NAS-Bench ship latency tables for a few devices; this builds one for the
device at hand. Every distinct op signature the trainer's op tracing produces (`trace_ops`, the
keys the `lut` cost model looks up) is lowered as its own small program, the same way
`prp-export` lowers paths (ExecuTorch with XNNPACK, or ONNX for ONNX Runtime), and timed with
warm-up and repetitions. The table is in the format `--cost-model lut` reads.

What a sum of op programs gets wrong, and what is done about it: each op program pays once
what a whole path pays once for all its ops: one call (runtime entry, input and output handling)
and XNNPACK's NCHW <-> NHWC layout conversions at its input and output. The call is measured on a
program that computes almost nothing; the conversions, per 4-D shape, as one identity 1x1
depthwise conv program minus the conv itself (two such convs minus one) minus the call. Each op
loses the call and half the conversions of its input and output shapes; the call and the network
input's conversion are added once to a fixed op every path has (`method` in the table). Not
modelled: the additions joining an NB201 cell's edges, and ops the exported program drops because
their result never reaches the output (an additive table prices them; `--validate` reports the
figures both ways, `live_ops_only` for the sum over the ops the program still runs).

Energy: with a readable Linux RAPL counter (`/sys/class/powercap`) the package energy per call
is measured too and written as a second table beside the first (`<out stem>.energy.json`, mJ);
without one the table says so and holds latency only.

Modules, one concern each: `base` (format, backends, `ProfileError`), `programs` (op signatures
and the programs that compute them, lowered for a backend), `timing` (timed calls, RAPL energy),
`table` (reading a table, assembling its ops), `measuring` (`profile_space`), `validation`
(`--validate`: whole paths against the table's sums), `kit` (`--kit`: the programs a phone
times itself) and `cli` (`prp-profile`). Every program is lowered by `prp.trainer.lowering`, as
prp-export lowers a bundle.
"""

from .base import (
    BACKENDS,
    MIN_VALIDATION_PATHS,
    PROFILE_FORMAT,
    PROFILE_VERSION,
    RAPL_MIN_S,
    RAPL_ROOT,
    ProfileError,
    ProgressFn,
)
from .cli import check_space_option, profile, profile_app
from .kit import KIT_MANIFEST, KIT_PROGRAM, write_kit
from .measuring import profile_space
from .programs import (
    CALL_OVERHEAD_SHAPE,
    CallOverhead,
    OpProgram,
    check_backend,
    identity_convs,
    layout_shapes,
    lower,
    op_programs,
    program_module,
    set_threads,
    shape_key,
)
from .table import (
    assemble_table,
    backend_versions,
    conversion_costs,
    energy_path,
    fold_target,
    log_path,
    partial_path,
    read_profile,
    space_json,
)
from .timing import RaplCounter, Timing, measure, time_calls
from .validation import live_sum, sample_paths, space_of, validate_table, validation_figures

__all__ = [
    "BACKENDS",
    "CALL_OVERHEAD_SHAPE",
    "MIN_VALIDATION_PATHS",
    "OpProgram",
    "PROFILE_FORMAT",
    "PROFILE_VERSION",
    "ProfileError",
    "ProgressFn",
    "RAPL_MIN_S",
    "RAPL_ROOT",
    "RaplCounter",
    "Timing",
    "CallOverhead",
    "check_space_option",
    "fold_target",
    "identity_convs",
    "shape_key",
    "space_json",
    "backend_versions",
    "KIT_MANIFEST",
    "KIT_PROGRAM",
    "write_kit",
    "assemble_table",
    "check_backend",
    "conversion_costs",
    "energy_path",
    "layout_shapes",
    "live_sum",
    "log_path",
    "lower",
    "measure",
    "op_programs",
    "partial_path",
    "profile",
    "profile_app",
    "profile_space",
    "program_module",
    "read_profile",
    "sample_paths",
    "set_threads",
    "space_of",
    "time_calls",
    "validate_table",
    "validation_figures",
]
