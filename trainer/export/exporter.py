"""`export_bundle`: a trained run to a checked bundle folder, nothing left half-written."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from prp.runtime.bundle import MANIFEST, load_manifest, sha256_file

from ..costs import price_supernet
from ..datasets import DataSplits, to_tensor
from ..errors import ExportError, PRPError
from ..lowering import (
    CALIBRATION_IMAGES,
    PTE,
    QUANTIZE_CHOICES,
    Int8Path,
    check_onnx,
    check_pte,
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
from .manifest import build_manifest, int8_energy, other_objective_cost, path_entries
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
) -> Path:
    """Export run `run_dir` to bundle folder `out`; returns `out`. Nothing is left half-written.

    `quantize="int8"`: every path int8 (PT2E, `quantize.py`) except those named in `keep_fp32`
    (encoded paths), which stay float32: a mixed-precision bundle. `shorten_keys=False` writes
    the `.pte` without the private key rewrite (`write_pte`), as it does when that fails."""
    say = progress or (lambda msg: None)
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ExportError(
            f"--quantize {quantize!r} is not supported; choose {', '.join(QUANTIZE_CHOICES)}"
        )
    if keep_fp32 and quantize is None:
        raise ExportError("--keep-fp32 names float32 paths of an int8 bundle: add --quantize int8")
    given_out = Path(out)
    out = Path(os.path.abspath(out))  # `.` and `..` resolved: tmp goes beside the real name
    check_out(out, Path(run_dir))
    removed = remove_stale_leftovers(out.parent)
    if removed:
        say(f"removed leftovers of killed exports: {', '.join(removed)}")
    run = load_run(run_dir)
    chosen = choose_paths(run, top, paths)
    kept = _kept_fp32(run, chosen, keep_fp32)
    cfg = run.cfg
    data = data or cfg.load_data(run.supernet.space.input_shape[-1])  # as the run trained
    train_x = to_tensor(data.train.images, data.mean, data.std)
    if tuple(train_x.shape[1:]) != run.supernet.space.input_shape:
        # A fully convolutional path runs at any size, so a mismatch would pass every check
        # and leave calibration and test accuracy measured at the wrong resolution.
        raise ExportError(
            f"the data's images are {tuple(train_x.shape[1:])}, but run {run_dir} trained at "
            f"{run.supernet.space.input_shape}; pass data of the run's image size"
        )
    train_y = torch.tensor(data.train.labels)
    val_x = to_tensor(data.val.images, data.mean, data.std)
    val_y = torch.tensor(data.val.labels)
    test_x = to_tensor(data.test.images, data.mean, data.std)
    test_y = torch.tensor(data.test.labels)
    supernet = run.supernet
    trace = trace_ops(supernet)
    main_model = cfg.build_cost_model()
    tables: dict[str, tuple[PathTable, Any] | None] = {
        cfg.objective: (price_supernet(supernet, main_model, trace), main_model)
    }
    other = "latency" if cfg.objective == "energy" else "energy"
    tables[other] = other_objective_cost(run, other)
    energy_int8, energy_int8_info = (
        int8_energy(run, tables["energy"], trace) if quantize else (None, None)
    )

    say(f"recalibrating BatchNorm and measuring {len(chosen)} paths")
    records, modules = [], {}
    for metrics in chosen:
        module = calibrated_path_module(run, metrics.path, train_x, train_y)
        estimated = metrics.accuracy
        if np.isnan(estimated):
            estimated = accuracy(module, val_x[: cfg.eval_images], val_y[: cfg.eval_images])
        records.append((metrics, estimated, accuracy(module, test_x, test_y)))
        modules[metrics.key] = module
    order = sorted(range(len(records)), key=lambda k: (-records[k][1], records[k][0].cost))
    ids = [f"path_{i}" for i in range(len(order))]
    named = {ids[i]: modules[records[k][0].key] for i, k in enumerate(order)}
    int8: dict[str, tuple[Int8Path, float]] = {}  # path id -> quantized path, its test accuracy
    calibration = min(CALIBRATION_IMAGES, len(val_y))
    if quantize is not None:
        if calibration == 0:
            raise ExportError(
                f"run {run.run_dir} has no validation images to calibrate int8 paths on; "
                f"train with --val-fraction above 0 or export without --quantize"
            )
        say(f"quantizing {len(chosen) - len(kept)} paths to int8 ({calibration} held-out images)")
        calib = [val_x[i : i + 32] for i in range(0, calibration, 32)]
        for i, k in enumerate(order):
            if records[k][0].key not in kept:
                q = quantize_path(named[ids[i]], test_x[:1], calib)
                int8[ids[i]] = (q, accuracy(q.reference, test_x, test_y))
    # What each backend runs and is checked against: an int8 path's PT2E reference module.
    reference = {i: int8[i][0].reference if i in int8 else m for i, m in named.items()}
    lowered = {i: int8[i][0].program if i in int8 else m for i, m in named.items()}

    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if (tmp.exists() or tmp.is_symlink()) and not remove_export_folder(tmp):
        # Our PID, so no live exporter's: a killed one's, reused PID, but not only its files.
        raise ExportError(
            f"{tmp} exists and holds files prp-export does not write; move it away and export again"
        )
    tmp.mkdir(parents=True)
    try:
        example = test_x[:1].clone()
        say("lowering to ExecuTorch (XNNPACK)")
        fallback = write_pte(lowered, example, tmp / PTE, shorten_keys=shorten_keys)
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
        entries = path_entries(
            records,
            order,
            ids,
            int8,
            trace,
            tables,
            onnx_info,
            {"executorch": pte_diff, "onnx": onnx_diff},
            quantize,
            energy_int8,
        )
        manifest = build_manifest(
            run,
            data,
            tables,
            entries,
            files={name: sha256_file(tmp / name) for name in sorted(os.listdir(tmp))},
            named=named,
            int8=int8,
            onnx_info=onnx_info,
            short_keys={"short_keys": shorten_keys and fallback is None}
            | ({"short_keys_fallback": fallback} if fallback else {}),
            quantize=quantize,
            calibration=calibration,
            energy_int8_info=energy_int8_info,
            ladder_tests=bundle_ladder_tests(entries, reference, val_x, val_y, cfg.objective),
        )
        write_json(tmp / MANIFEST, manifest)
        load_manifest(tmp)  # the contract holds before anything is in place
        move_into_place(tmp, out, Path(run_dir))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # ours: made above, under a name with our PID
        raise
    return given_out
