"""`export_bundle`: a trained run to a checked bundle folder, nothing left half-written."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from prp.runtime.bundle import MANIFEST, load_manifest, sha256_file
from torch import Tensor, nn

from ..costs import price_supernet
from ..datasets import DataSplits, to_tensor
from ..errors import ExportError, PRPError
from ..lowering import (
    CALIBRATION_IMAGES,
    PTE,
    QUANTIZE_CHOICES,
    WEIGHT_NAMES_LONG,
    WEIGHT_NAMES_SHORT,
    Int8Path,
    check_onnx,
    check_pte,
    fold_unshared_affines,
    quantize_path,
    write_onnx,
    write_pte,
)
from ..profiling import PathTable, trace_ops
from ..runs import write_json
from ..search import PathMetrics
from .checks import CHECK_IMAGES, check_fp32, check_int8
from .folder import check_out, move_into_place, remove_export_folder, remove_stale_leftovers
from .ladder_tests import bundle_ladder_tests
from .manifest import (
    build_manifest,
    cost_sources,
    int8_energy,
    other_objective_cost,
    path_entries,
    priced_by_files,
)
from .modules import accuracy, calibrated_path_module
from .run import LoadedRun, choose_paths, load_run


def _kept_fp32(run: LoadedRun, chosen: Sequence[PathMetrics], names: Sequence[str]) -> set[str]:
    """Keys of the exported paths `names` (encoded paths) keeps in float32."""
    space = run.supernet.space
    keys = {m.key for m in chosen}
    kept = set()
    for name in names:
        try:
            key = space.encode(run.supernet.validate(space.decode(name)))
        except PRPError as e:
            raise ExportError(f"--keep-fp32 {name!r}: {e}") from None
        if key not in keys:
            raise ExportError(
                f"--keep-fp32 {name!r} is not one of the exported paths: {', '.join(sorted(keys))}"
            )
        kept.add(key)
    return kept


def export_bundle(
    run_dir: str | Path,
    out: str | Path,
    top: int = 5,
    paths: Sequence[str] | None = None,
    data: DataSplits | None = None,
    progress: Callable[[str], None] | None = None,
    quantize: str | None = None,
    keep_fp32: Sequence[str] = (),
    shorten_keys: bool = True,
    price_with: Sequence[str | Path] = (),
    low_memory: bool = False,
) -> Path:
    """Export run `run_dir` to bundle folder `out`; returns `out`. Nothing is left half-written.

    `quantize="int8"`: every path int8 (PT2E, `lowering.int8`) except those named in `keep_fp32`
    (encoded paths), which stay float32: a mixed-precision bundle. `shorten_keys=False` writes
    the `.pte` without the private key rewrite (`write_pte`), as it does when that fails.
    `price_with`: extra cost tables (`prp-profile` tables) that also price every path, named
    in the manifest's `cost_sources` beside the run's own. `low_memory`: see `write_pte`."""
    say = progress or (lambda msg: None)
    check_precision(quantize, keep_fp32)
    given_out = Path(out)
    out = prepare_out(Path(out), Path(run_dir), say)
    run = load_run(run_dir)
    chosen = choose_paths(run, top, paths)
    kept = _kept_fp32(run, chosen, keep_fp32)
    data = data or run.cfg.load_data(run.supernet.space.input_shape[-1])  # as the run trained
    x = ExportImages.of(data, run)
    trace = trace_ops(run.supernet)
    tables = cost_tables(run, trace)
    extra_tables = priced_by_files(run, price_with, trace)
    energy_int8, energy_int8_info = (
        int8_energy(run, tables["energy"], trace) if quantize else (None, None)
    )
    say(f"recalibrating BatchNorm and measuring {len(chosen)} paths")
    records, order, named = measure_paths(run, chosen, x)
    calibration = min(CALIBRATION_IMAGES, len(x.val_y))
    int8: dict[str, tuple[Int8Path, float]] = {}  # path id -> quantized path, its test accuracy
    if quantize is not None:
        int8 = quantize_paths(run, named, [records[k][0].key for k in order], kept, x, say)
    # What each backend runs and is checked against: an int8 path's PT2E reference module.
    reference = {i: int8[i][0].reference if i in int8 else m for i, m in named.items()}
    lowered = {i: int8[i][0].program if i in int8 else m for i, m in named.items()}

    tmp = fresh_tmp(out)
    try:
        fallback, onnx_info, diffs = lower_and_check(
            tmp, lowered, reference, int8, x.test_x, shorten_keys, say, low_memory
        )
        ids = list(named)
        entries = path_entries(
            records, order, ids, int8, trace, tables, onnx_info, diffs, quantize, energy_int8
        )
        sources = cost_sources(tables, extra_tables, entries)
        manifest = build_manifest(
            run,
            data,
            tables,
            entries,
            files={name: sha256_file(tmp / name) for name in sorted(os.listdir(tmp))},
            named=named,
            int8=int8,
            onnx_info=onnx_info,
            program=program_record(shorten_keys, fallback, low_memory),
            quantize=quantize,
            calibration=calibration,
            energy_int8_info=energy_int8_info,
            sources=sources,
            ladder_tests=bundle_ladder_tests(
                entries, reference, x.val_x, x.val_y, run.cfg.objective
            ),
        )
        write_json(tmp / MANIFEST, manifest)
        load_manifest(tmp)  # the contract holds before anything is in place
        move_into_place(tmp, out, Path(run_dir))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # ours: made above, under a name with our PID
        raise
    return given_out


@dataclass(frozen=True)
class ExportImages:
    """The run's splits as normalised tensors: training images recalibrate BatchNorm,
    validation images calibrate int8 and decide the ladder, test images measure accuracy."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor

    @classmethod
    def of(cls, data: DataSplits, run: LoadedRun) -> ExportImages:
        train_x = to_tensor(data.train.images, data.mean, data.std)
        if tuple(train_x.shape[1:]) != run.supernet.space.input_shape:
            # A fully convolutional path runs at any size, so a mismatch would pass every check
            # and leave calibration and test accuracy measured at the wrong resolution.
            raise ExportError(
                f"the data's images are {tuple(train_x.shape[1:])}, but run {run.run_dir} "
                f"trained at {run.supernet.space.input_shape}; pass data of the run's image size"
            )
        return cls(
            train_x,
            torch.tensor(data.train.labels),
            to_tensor(data.val.images, data.mean, data.std),
            torch.tensor(data.val.labels),
            to_tensor(data.test.images, data.mean, data.std),
            torch.tensor(data.test.labels),
        )


def cost_tables(run: LoadedRun, trace: Any) -> dict[str, tuple[PathTable, Any] | None]:
    """Each objective's table of the pruned supernet: the run's own cost model for its
    objective, the space's default model (where it has one) for the other."""
    main_model = run.cfg.build_cost_model()
    tables: dict[str, tuple[PathTable, Any] | None] = {
        run.cfg.objective: (price_supernet(run.supernet, main_model, trace), main_model)
    }
    other = "latency" if run.cfg.objective == "energy" else "energy"
    tables[other] = other_objective_cost(run, other)
    return tables


def measure_paths(
    run: LoadedRun, chosen: Sequence[PathMetrics], x: ExportImages
) -> tuple[list[tuple[PathMetrics, float, float]], list[int], dict[str, nn.Module]]:
    """Each chosen path recalibrated as a plain network: (metrics, estimated accuracy, test
    accuracy) per path, the order of the bundle (most accurate first, then cheapest) and the
    networks by path id (`path_0` ...)."""
    cfg = run.cfg
    records, modules = [], {}
    for metrics in chosen:
        module = calibrated_path_module(run, metrics.path, x.train_x, x.train_y)
        estimated = metrics.accuracy
        if np.isnan(estimated):
            estimated = accuracy(module, x.val_x[: cfg.eval_images], x.val_y[: cfg.eval_images])
        records.append((metrics, estimated, accuracy(module, x.test_x, x.test_y)))
        modules[metrics.key] = module
    order = sorted(range(len(records)), key=lambda k: (-records[k][1], records[k][0].cost))
    named = {f"path_{i}": modules[records[k][0].key] for i, k in enumerate(order)}
    fold_unshared_affines(list(named.values()))  # exact up to rounding: the checks hold it
    return records, order, named


def quantize_paths(
    run: LoadedRun,
    named: dict[str, nn.Module],
    keys: list[str],
    kept: set[str],
    x: ExportImages,
    say: Callable[[str], None],
) -> dict[str, tuple[Int8Path, float]]:
    """Every path of `named` (path id -> network; `keys` their encoded paths, in the same
    order) but those `kept` in float32, quantized to int8 on the first `CALIBRATION_IMAGES`
    validation images: path id -> the quantized path and its test accuracy."""
    calibration = min(CALIBRATION_IMAGES, len(x.val_y))
    if calibration == 0:
        raise ExportError(
            f"run {run.run_dir} has no validation images to calibrate int8 paths on; "
            f"train with --val-fraction above 0 or export without --quantize"
        )
    say(f"quantizing {len(named) - len(kept)} paths to int8 ({calibration} held-out images)")
    calib = [x.val_x[i : i + 32] for i in range(0, calibration, 32)]
    int8 = {}
    for (path_id, module), key in zip(named.items(), keys, strict=True):
        if key not in kept:
            q = quantize_path(module, x.test_x[:1], calib)
            int8[path_id] = (q, accuracy(q.reference, x.test_x, x.test_y))
    return int8


def fresh_tmp(out: Path) -> Path:
    """The empty folder beside `out` the bundle is written into, named with our PID."""
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if (tmp.exists() or tmp.is_symlink()) and not remove_export_folder(tmp):
        # Our PID, so no live exporter's: a killed one's, reused PID, but not only its files.
        raise ExportError(
            f"{tmp} exists and holds files prp-export does not write; move it away and export again"
        )
    tmp.mkdir(parents=True)
    return tmp


def program_record(shorten_keys: bool, fallback: str | None, low_memory: bool) -> dict[str, Any]:
    """The manifest's record of how the .pte was written: its constant names, shortened or not
    (and why not), and how a name derives from its tensor's bytes (`weight_names`; bundles
    without the field name their weights by a counter, `w0`, `w1`, ..., alike in every bundle);
    where its convolutions keep their indirection buffers (`--low-memory`: `transient`)."""
    short = shorten_keys and fallback is None
    return {
        "short_keys": short,
        "weight_names": WEIGHT_NAMES_SHORT if short else WEIGHT_NAMES_LONG,
        "indirection_buffers": "transient" if low_memory else "per node",
    } | ({"short_keys_fallback": fallback} if fallback else {})


def lower_and_check(
    tmp: Path,
    lowered: dict[str, Any],
    reference: dict[str, nn.Module],
    int8: dict[str, tuple[Int8Path, float]],
    test_x: Tensor,
    shorten_keys: bool,
    say: Callable[[str], None],
    low_memory: bool = False,
) -> tuple[str | None, dict[str, Any], dict[str, dict[str, float]]]:
    """The .pte and the ONNX graphs written into `tmp`, every method and graph checked against
    its reference module; returns the key-rewrite fallback (None when it worked), the ONNX
    record and the differences per backend."""
    example = test_x[:1].clone()
    say("lowering to ExecuTorch (XNNPACK)")
    fallback = write_pte(
        lowered, example, tmp / PTE, shorten_keys=shorten_keys, low_memory=low_memory
    )
    if fallback:
        say(f"warning: {fallback}")
    say("exporting ONNX graphs")
    onnx_info = write_onnx(reference, example, tmp)
    say("checking every method and graph against PyTorch")
    check_x = test_x[:CHECK_IMAGES]
    pte_diff = check_pte(tmp / PTE, reference, check_x)
    onnx_diff = check_onnx(tmp, onnx_info["graphs"], reference, check_x)
    if int8:
        check_int8(reference, int8, check_x, pte_diff, onnx_diff)
    check_fp32(int8, pte_diff, onnx_diff)
    return fallback, onnx_info, {"executorch": pte_diff, "onnx": onnx_diff}


def prepare_out(out: Path, run_dir: Path, say: Callable[[str], None]) -> Path:
    """`out` made absolute (`.` and `..` resolved: the temporary folder goes beside the real
    name), refused where replacing it would lose data, its parent cleared of killed exports'
    leftovers."""
    out = Path(os.path.abspath(out))
    check_out(out, run_dir)
    removed = remove_stale_leftovers(out.parent)
    if removed:
        say(f"removed leftovers of killed exports: {', '.join(removed)}")
    return out


def check_precision(quantize: str | None, keep_fp32: Sequence[str]) -> None:
    """Refuse a precision prp-export does not write, and float32 paths of a float32 bundle."""
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ExportError(
            f"--quantize {quantize!r} is not supported; choose {', '.join(QUANTIZE_CHOICES)}"
        )
    if keep_fp32 and quantize is None:
        raise ExportError("--keep-fp32 names float32 paths of an int8 bundle: add --quantize int8")
