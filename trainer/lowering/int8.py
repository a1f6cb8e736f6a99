"""Int8 paths that still share their weights: post-training static quantization with PyTorch 2
export (PT2E) and ExecuTorch's `XNNPACKQuantizer` (int8 activations per tensor, int8 weights per
output channel, symmetric), calibrated on held-out images.

Why the int8 weights stay shared. Every path has its own BatchNorm statistics, so its BN affine
y = a * conv(x) + b (a = gamma / sqrt(var + eps)) differs per path. Leaving the affine as an
op of its own would requantize every conv output twice and cost a node per BN; folding it into
the conv gives each path its own float weight a * W. Per-channel symmetric int8 quantization is
scale-equivariant, though: quant(a_c * W_c) = sign(a_c) * quant(W_c) with scale |a_c| * s_c, and
sign(a_c) = sign(gamma_c) is one for all paths (gamma is shared; only the statistics are per
path). So the shared W is first rounded to its int8 grid (W~ = s * q, the rounding int8 makes
anyway), then folded per path: the quantizer's observer sees a * W~, whose values lie on the
integers of the grid scaled by |a| * s, far from any rounding tie, and returns exactly
sign(gamma) * q for every path. The int8 bytes of a shared conv are identical across paths and
stored once; only the per-channel scales and the bias (a few bytes per channel) are per path.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .graphs import ChannelAffine, DepthwiseAffine, drop_zero_terms

INT8 = "int8"
FP32 = "float32"
PRECISIONS = (FP32, INT8)
QUANTIZE_CHOICES = (INT8,)
CALIBRATION_IMAGES = 128  # held-out (validation) images the activation observers see
WEIGHT_QMAX = 127  # symmetric: [-127, 127], as XNNPACK's per-channel weights
# The observers' default floor on a scale (2**-12) would clamp channels whose folded weights
# are all below 127 * 2**-12 and so make their int8 bytes depend on the path; a floor only an
# all-zero channel reaches keeps them exact.
SCALE_FLOOR = 2.0**-32


def round_to_int8_grid(w: Tensor) -> Tensor:
    """`w` rounded per output channel to the symmetric int8 grid that quantizing it gives:
    s * q with s = max|w_c| / 127 and q in [-127, 127] (computed in float64)."""
    w64 = w.detach().double()
    peak = w64.reshape(w64.shape[0], -1).abs().amax(dim=1)
    scale = (peak / WEIGHT_QMAX).clamp_min(SCALE_FLOOR)
    shape = (-1,) + (1,) * (w64.dim() - 1)
    q = torch.round(w64 / scale.reshape(shape)).clamp(-WEIGHT_QMAX, WEIGHT_QMAX)
    return (q * scale.reshape(shape)).to(w.dtype)


class FoldedConv(nn.Module):
    """A shared conv with one path's BN affine folded in, on the int8 grid of the shared
    weight (module docstring): weight = a * W~, bias = a * conv_bias + b."""

    weight: Tensor
    bias: Tensor

    def __init__(self, conv: nn.Conv2d, scale: Tensor, shift: Tensor) -> None:
        super().__init__()
        a = scale.reshape(-1)
        grid = round_to_int8_grid(conv.weight)
        self.register_buffer("weight", (grid * a.reshape(-1, 1, 1, 1)).contiguous())
        bias = shift.reshape(-1).clone()
        if conv.bias is not None:
            bias = bias + a * conv.bias.detach()
        self.register_buffer("bias", bias)
        self.stride, self.padding = conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


def fold_for_int8(module: nn.Module) -> nn.Module:
    """A copy of an exported path module (`graphs.path_module`) ready for quantization: every
    conv followed by its BN affine becomes a `FoldedConv`, every other BN affine the 1x1
    depthwise conv XNNPACK runs (`graphs.DepthwiseAffine`)."""
    twin = copy.deepcopy(module)

    def fold(m: nn.Module) -> None:
        names = list(m._modules)
        for i, name in enumerate(names):
            child = m._modules[name]
            after = m._modules[names[i + 1]] if i + 1 < len(names) else None
            if (
                isinstance(m, nn.Sequential)
                and isinstance(child, nn.Conv2d)
                and isinstance(after, ChannelAffine)
            ):
                m._modules[name] = FoldedConv(child, after.scale, after.shift)
                m._modules[names[i + 1]] = nn.Identity()
            elif isinstance(child, ChannelAffine):
                m._modules[name] = DepthwiseAffine(child)
            elif child is not None:
                fold(child)

    fold(twin)
    return twin.eval()


def xnnpack_quantizer() -> Any:
    """`XNNPACKQuantizer` with int8 per-tensor activations and per-channel symmetric weights,
    the weight observer's scale floor lowered to `SCALE_FLOOR`."""
    import dataclasses

    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.observer import PerChannelMinMaxObserver

    config = get_symmetric_quantization_config(is_per_channel=True)
    weight = dataclasses.replace(
        config.weight,
        observer_or_fake_quant_ctr=PerChannelMinMaxObserver.with_args(eps=SCALE_FLOOR),
    )
    return XNNPACKQuantizer().set_global(dataclasses.replace(config, weight=weight))


@dataclass
class Int8Path:
    """One path quantized: the PT2E reference module (PyTorch, q/dq arithmetic) and the
    program to lower (batch 1)."""

    reference: torch.fx.GraphModule
    program: Any  # torch.export.ExportedProgram of `reference` at batch 1


def quantize_path(module: nn.Module, example: Tensor, calibration: Iterable[Tensor]) -> Int8Path:
    """Quantize one exported path module (`graphs.path_module`) with PT2E for XNNPACK, its
    activation observers fed `calibration` batches."""
    from torch.export import Dim
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    folded = fold_for_int8(module)
    # A dynamic batch so that calibration and accuracy run in batches; lowered at batch 1.
    # Traced at batch 2: a traced batch of 1 would be specialized to 1.
    traced = torch.export.export(
        folded,
        (example[:1].expand(2, *example.shape[1:]).contiguous(),),
        dynamic_shapes={"x": {0: Dim("batch", min=1, max=4096)}},
    )
    prepared = prepare_pt2e(drop_zero_terms(traced).module(), xnnpack_quantizer())
    with torch.no_grad():
        for x in calibration:
            prepared(x)
    reference = _drop_unused_tensors(convert_pt2e(prepared))
    program = torch.export.export(reference, (example[:1],))
    return Int8Path(reference, program)


def _drop_unused_tensors(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """`module` without the parameters and buffers its graph no longer reads: the float weights
    `convert_pt2e` replaced by int8 ones would otherwise be exported with the program, and each
    path's folded float weights are its own (stored once per path, 4x the int8 bytes)."""
    used = {str(n.target) for n in module.graph.nodes if n.op == "get_attr"}
    for name, _ in [*module.named_parameters(), *module.named_buffers()]:
        if name in used:
            continue
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        owner._parameters.pop(attr, None)
        owner._buffers.pop(attr, None)
    return module


def constant_tensors(module: torch.fx.GraphModule) -> list[Tensor]:
    """The constant tensors a converted module's graph reads (int8 weights, scales, biases)."""
    out = []
    for node in module.graph.nodes:
        if node.op != "get_attr":
            continue
        value: Any = module
        for part in str(node.target).split("."):
            value = getattr(value, part)
        if isinstance(value, Tensor):
            out.append(value)
    return out


def int8_weights(module: torch.fx.GraphModule) -> list[Tensor]:
    """The int8 weight tensors (convs and linears) of a converted module."""
    return [t for t in constant_tensors(module) if t.dtype == torch.int8 and t.dim() >= 2]


def distinct_bytes(tensors: Sequence[Tensor]) -> int:
    """Bytes of the distinct tensors among `tensors` (equal bytes and dtype counted once)."""
    seen: dict[str, int] = {}
    for t in tensors:
        raw = t.detach().contiguous().numpy().tobytes()
        key = hashlib.sha256(str(t.dtype).encode() + raw).hexdigest()
        seen.setdefault(key, len(raw))
    return sum(seen.values())


def stored_constants(q: Int8Path) -> list[Tensor]:
    """The constants of an int8 path a backend stores: int8 weights and float scales and biases
    (the weights' zero points are all zero, symmetric, and XNNPACK stores none)."""
    return [t for t in constant_tensors(q.reference) if t.dtype in (torch.int8, torch.float32)]


def pte_named_data(path: Any) -> dict[str, bytes]:
    """The named constants a .pte stores (XNNPACK's weights, scales, biases), key to bytes: each
    is one segment of the file, however many methods read it."""
    from pathlib import Path

    from executorch.exir._serialize._program import _flatbuffer_to_program, _get_extended_header

    data = Path(path).read_bytes()
    header = _get_extended_header(data)
    if header is None or not header.is_valid():
        return {}
    program = _flatbuffer_to_program(data[: header.program_size])
    base = header.segment_base_offset
    out = {}
    for entry in program.named_data:
        segment = program.segments[entry.segment_index]
        out[entry.key] = data[base + segment.offset : base + segment.offset + segment.size]
    return out
