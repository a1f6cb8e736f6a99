"""Module and graph surgery before lowering: one path of the supernet as a plain network whose
per-path BatchNorm statistics are per-channel affines after the shared convs, in the form each
backend lowers best, and the removal of NB201's multiply-by-zero terms from exported programs."""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..spaces import Path as ArchPath
from ..supernet import Supernet


class ChannelAffine(nn.Module):
    """A BatchNorm in eval mode as y = x * scale + shift, per channel."""

    scale: Tensor
    shift: Tensor

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        assert bn.running_var is not None and bn.running_mean is not None
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias.detach() - bn.running_mean * scale
        self.register_buffer("scale", scale.reshape(1, -1, 1, 1).clone())
        self.register_buffer("shift", shift.reshape(1, -1, 1, 1).clone())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.shift


class DepthwiseAffine(nn.Module):
    """`ChannelAffine` as the 1x1 depthwise convolution it is (weight = scale, bias = shift), for
    XNNPACK: one static-weight op in its native NHWC layout. As x * scale + shift the per-path
    vectors reach the delegate as runtime inputs in NCHW, and XNNPACK wraps every BN in a
    transpose pair plus a multiply and an add (~4 graph nodes and values per BN, per method)."""

    weight: Tensor
    bias: Tensor

    def __init__(self, affine: ChannelAffine) -> None:
        super().__init__()
        c = affine.scale.numel()
        self.register_buffer("weight", affine.scale.reshape(c, 1, 1, 1).clone())
        self.register_buffer("bias", affine.shift.reshape(c).clone())
        self.channels = c

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.conv2d(x, self.weight, self.bias, groups=self.channels)


def _conv_affine_pairs(module: nn.Module) -> Iterator[tuple[nn.Module, str, str]]:
    """(container, conv name, affine name) for each `Conv2d` directly followed by a
    `ChannelAffine` in a Sequential of `module` (NB201's ReLU-Conv-BN, a DARTS 1x1 conv's BN)."""
    for seq in module.modules():
        if isinstance(seq, nn.Sequential):
            kids = list(seq._modules.items())
            for (conv_name, conv), (affine_name, affine) in zip(kids, kids[1:], strict=False):
                if isinstance(conv, nn.Conv2d) and isinstance(affine, ChannelAffine):
                    yield seq, conv_name, affine_name


def fold_unshared_affines(modules: Sequence[nn.Module]) -> int:
    """Fold, in place, each path's BatchNorm affine into the conv before it wherever no other
    conv of `modules` holds that conv's weight (by bytes): the path is then the only one to read
    it, so its folded copy costs no extra storage, and the program loses a per-channel op per
    such conv (a probe at NB201's real size, ExecuTorch, one thread: 6 % off a path with three
    such convs per cell, 25 % off one whose only conv per cell is such a 1x1). A conv several
    paths share keeps its weight unchanged and the affine after it. Returns how many it folded."""

    def key(layer: nn.Conv2d) -> str:
        return hashlib.sha256(layer.weight.detach().contiguous().numpy().tobytes()).hexdigest()

    counts: dict[str, int] = {}
    for m in modules:
        for layer in m.modules():
            if isinstance(layer, nn.Conv2d):
                counts[key(layer)] = counts.get(key(layer), 0) + 1
    folded = 0
    for m in modules:
        for seq, conv_name, affine_name in list(_conv_affine_pairs(m)):
            conv, affine = seq._modules[conv_name], seq._modules[affine_name]
            assert isinstance(conv, nn.Conv2d) and isinstance(affine, ChannelAffine)
            if counts[key(conv)] != 1:
                continue
            scale, shift = affine.scale.reshape(-1), affine.shift.reshape(-1)
            fused = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,  # type: ignore[arg-type]
                conv.stride,  # type: ignore[arg-type]
                conv.padding,  # type: ignore[arg-type]
                conv.dilation,  # type: ignore[arg-type]
                conv.groups,
                bias=True,
                padding_mode=conv.padding_mode,
            ).eval()
            with torch.no_grad():
                fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
                bias = shift if conv.bias is None else conv.bias * scale + shift
                fused.bias.copy_(bias)  # type: ignore[union-attr]
            seq._modules[conv_name] = fused
            seq._modules[affine_name] = nn.Identity()
            folded += 1
    return folded


def for_xnnpack(module: nn.Module) -> nn.Module:
    """`module` with every `ChannelAffine` as a `DepthwiseAffine`; all other leaves (the shared
    convs) are the same objects, the containers above them shallow copies."""
    if isinstance(module, ChannelAffine):
        return DepthwiseAffine(module)
    if not module._modules:
        return module
    twin = copy.copy(module)
    twin._modules = {
        name: None if child is None else for_xnnpack(child)
        for name, child in module._modules.items()
    }
    return twin


def _is_times_zero(node: Any) -> bool:
    """`node` is aten.mul(x, 0) with a literal zero (NB201's `none` op, `Zero`)."""
    return (
        node.op == "call_function"
        and node.target in (torch.ops.aten.mul.Tensor, torch.ops.aten.mul.Scalar)
        and len(node.args) == 2
        and isinstance(node.args[1], (int, float))
        and node.args[1] == 0
    )


def drop_zero_terms(program: Any) -> Any:
    """Rewrite `y + x * 0` as `y` in an exported program, where y already has the sum's shape
    and dtype (each `none` edge of an NB201 cell is such a term). Exact for finite x: adding a
    zero changes no value. XNNPACK would run every such term as a multiply between two
    transposes (its scalar operand is NCHW) plus an add, ~4 nodes and values per edge.

    Where both terms are zeros (a node whose edges are all `none`), the first is kept: it is
    the earliest node's, the cell input's in a cell, which runs anyway, whereas keeping the
    later one would keep the ops that compute it running only to be multiplied by zero. So the
    program runs exactly the ops whose results reach the output (`SearchSpace.live_slots`)."""
    graph = program.graph
    changed = False
    for add in list(graph.nodes):
        if add.op != "call_function" or add.target != torch.ops.aten.add.Tensor:
            continue
        if len(add.args) != 2 or add.kwargs or any(u.op == "output" for u in add.users):
            continue
        for i in (1, 0):  # drop the second term first: of two zeros, the first stays
            zero, other = add.args[i], add.args[1 - i]
            if not (hasattr(zero, "op") and hasattr(other, "op") and _is_times_zero(zero)):
                continue
            out, kept = add.meta.get("val"), other.meta.get("val")
            if out is None or kept is None:
                continue
            if tuple(out.shape) != tuple(kept.shape) or out.dtype != kept.dtype:
                continue
            add.replace_all_uses_with(other)
            graph.erase_node(add)
            if not zero.users:
                graph.erase_node(zero)
            changed = True
            break
    if changed:
        graph.eliminate_dead_code()
        program.graph_module.recompile()
    return program


def bn_as_affine(module: nn.Module) -> None:
    """Replace, in place, every BatchNorm2d under `module` by its eval-mode `ChannelAffine`."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, ChannelAffine(child))
        else:
            bn_as_affine(child)


def path_module(supernet: Supernet, path: ArchPath) -> nn.Module:
    """One path as a plain eval-mode network, BN as per-channel affine (statistics as they are
    now in the supernet: recalibrate for the path first)."""
    net = supernet.standalone(path).eval()
    bn_as_affine(net)
    return net.eval()


def live_program(module: nn.Module, example: Tensor) -> Any:
    """`module` exported with a dynamic batch and its multiply-by-zero terms dropped
    (`drop_zero_terms`): the ops whose results reach the output, as the bundle's programs run
    them. `example` is one input (any batch); it is exported at batch 2, as a batch of 1 would
    be specialised to 1."""
    from torch.export import Dim

    x = example[:1].expand(2, *example.shape[1:]).contiguous()
    batch = Dim("batch", min=1, max=4096)
    return drop_zero_terms(torch.export.export(module, (x,), dynamic_shapes=({0: batch},)))


def live_tensors(module: nn.Module, example: Tensor) -> list[Tensor]:
    """The parameters, buffers and constants the module's live program reads: not the weights
    of an NB201 edge whose result never reaches the output, which the module still holds."""
    program = live_program(module, example)
    sig = program.graph_signature
    names = sig.inputs_to_parameters | sig.inputs_to_buffers | sig.inputs_to_lifted_tensor_constants
    tensors = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.users and node.name in names:
            fqn = names[node.name]
            tensors.append(program.state_dict.get(fqn, program.constants.get(fqn)))
    return [t for t in tensors if t is not None]


def distinct_module_bytes(modules: Sequence[nn.Module], example: Tensor | None = None) -> int:
    """Bytes of the distinct parameters and buffers of `modules` (equal bytes counted once):
    what a file storing each shared weight once holds. With `example` (one input), only those
    each module's live program reads (`live_tensors`), as the bundle's files store them."""
    seen: dict[str, int] = {}
    for m in modules:
        held = (
            itertools.chain(m.parameters(), m.buffers())
            if example is None
            else live_tensors(m, example)
        )
        for t in held:
            raw = t.detach().contiguous().numpy().tobytes()
            seen.setdefault(hashlib.sha256(raw).hexdigest(), len(raw))
    return sum(seen.values())
