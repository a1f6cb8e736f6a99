"""What every export checks before the bundle is moved into place: each method and graph against
PyTorch (float32 paths) or against its PT2E reference (int8 paths)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..errors import ExportError
from ..lowering import Int8Path

CHECK_IMAGES = 8
TOLERANCE = 1e-3  # max abs logit difference allowed between PyTorch and an exported path
# An int8 method against its PT2E reference module: XNNPACK and ONNX Runtime requantize with
# their own integer rounding, and one-step differences add up over the layers (measured on the
# default run's paths: up to ~5 % of the largest logit, ONNX Runtime twice XNNPACK's); allowed:
# this fraction of the reference's largest logit magnitude on the check images.
INT8_TOLERANCE = 0.1


def check_int8(
    reference: Mapping[str, nn.Module],
    int8: Mapping[str, tuple[Int8Path, float]],
    inputs: Tensor,
    pte_diff: dict[str, float],
    onnx_diff: dict[str, float],
) -> None:
    """Every int8 method and graph within `INT8_TOLERANCE` of its PT2E reference."""
    for i in int8:
        with torch.no_grad():
            peak = float(reference[i](inputs).abs().max())
        allowed = INT8_TOLERANCE * max(peak, 1e-6)
        if not (pte_diff[i] <= allowed and onnx_diff[i] <= allowed):
            raise ExportError(
                f"int8 path {i} differs from its PT2E reference by "
                f"{max(pte_diff[i], onnx_diff[i]):.3g} (> {allowed:.3g}, {INT8_TOLERANCE:.0%} "
                f"of its largest logit); ExecuTorch "
                f"{pte_diff[i]:.3g}, ONNX {onnx_diff[i]:.3g}"
            )


def check_fp32(
    int8: Mapping[str, tuple[Int8Path, float]],
    pte_diff: dict[str, float],
    onnx_diff: dict[str, float],
) -> None:
    """Every float32 method and graph within `TOLERANCE` of PyTorch."""
    worst = max([*(d for i, d in pte_diff.items() if i not in int8)], default=0.0)
    worst = max([worst, *(d for i, d in onnx_diff.items() if i not in int8)])
    if not worst <= TOLERANCE:
        raise ExportError(
            f"an exported path differs from PyTorch by {worst:.3g} (> {TOLERANCE}); "
            f"ExecuTorch: {pte_diff}, ONNX: {onnx_diff}"
        )
