"""ProxylessNAS mobile: a 21-layer MBConv chain, 6 or 7 ops per layer, in the paper's skeleton.

Skeleton (Cai et al., ICLR 2019): 3x3 stride-2 conv stem to 32 channels; a fixed MBConv
(expansion 1, kernel 3) to 16; six stages of searchable MBConv layers at 24, 40, 80, 96, 192 and
320 channels; a 1x1 conv to 1280, global average pooling and a linear classifier.

Each searchable layer picks an MBConv with kernel 3, 5 or 7 and expansion 3 or 6; every layer but
the first of a stage may also be skipped (identity), since its input and output shapes match.
Signatures are the keys of ProxylessNAS' Pixel 1 latency table (`data/proxylessnas_mobile.yaml`),
which covers the real size (224 px, width 1.0, 1000 classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import SPACES, ChoiceBlock, Priced, SearchSpace, Shape, Slot

# Searchable MBConv variants, as (kernel, expansion), in op order.
MB_CHOICES = ((3, 3), (3, 6), (5, 3), (5, 6), (7, 3), (7, 6))
MB_OPS = tuple(f"mb_k{k}_e{e}" for k, e in MB_CHOICES)
SKIP = "skip"

STEM_CHANNELS = 32
FIRST_BLOCK_CHANNELS = 16
STAGE_CHANNELS = (24, 40, 80, 96, 192, 320)
STAGE_BLOCKS = (4, 4, 4, 4, 4, 1)
STAGE_STRIDES = (2, 2, 2, 1, 2, 1)
HEAD_CHANNELS = 1280


def _hwc(shape: Shape) -> str:
    """An NCHW shape as the latency table writes it: `HxWxC`."""
    return f"{shape[2]}x{shape[3]}x{shape[1]}"


def scale_channels(channels: int, width_mult: float, divisor: int = 4, minimum: int = 8) -> int:
    """`channels x width_mult` rounded to the nearest multiple of `divisor`, at least `minimum`."""
    return max(minimum, int(channels * width_mult / divisor + 0.5) * divisor)


def layer_plan(width_mult: float = 1.0) -> list[tuple[int, int, int]]:
    """(in channels, out channels, stride) of each of the 21 searchable layers."""
    plan = []
    c_in = scale_channels(FIRST_BLOCK_CHANNELS, width_mult)
    for c, n, s in zip(STAGE_CHANNELS, STAGE_BLOCKS, STAGE_STRIDES, strict=True):
        c_out = scale_channels(c, width_mult)
        for b in range(n):
            plan.append((c_in, c_out, s if b == 0 else 1))
            c_in = c_out
    return plan


class ConvBNReLU6(nn.Sequential, Priced):
    """Conv + BN + ReLU6 of the fixed skeleton: the stem (`Conv`) and the head conv (`Conv_1`)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, lut_name: str) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU6(inplace=True),
        )
        self.lut_name = lut_name

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"{self.lut_name}-input:{_hwc(in_shape)}-output:{_hwc(out_shape)}"


class MBConv(nn.Module, Priced):
    """Inverted residual: 1x1 expand (absent at expansion 1), kxk depthwise, 1x1 project."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expand: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.expand_ratio, self.stride = kernel, expand, stride
        self.residual = stride == 1 and c_in == c_out
        mid = c_in * expand
        self.expand: nn.Module | None = None
        if expand != 1:
            self.expand = nn.Sequential(
                nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(inplace=True)
            )
        self.depthwise = nn.Sequential(
            nn.Conv2d(mid, mid, kernel, stride, padding=kernel // 2, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU6(inplace=True),
        )
        self.project = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return (
            f"expanded_conv-input:{_hwc(in_shape)}-output:{_hwc(out_shape)}"
            f"-expand:{self.expand_ratio}-kernel:{self.kernel}-stride:{self.stride}"
            f"-idskip:{int(self.residual)}"
        )


class Skip(nn.Identity, Priced):
    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return None


class Classifier(nn.Module, Priced):
    """Global average pooling and the linear classifier (`Logits` in the latency table)."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(torch.flatten(self.pool(x), 1))

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"Logits-input:{_hwc(in_shape)}-output:{out_shape[1]}"


def slot_ops(c_in: int, c_out: int, stride: int) -> tuple[str, ...]:
    """A layer's ops: every MBConv variant, plus skip where the shapes let an identity stand."""
    return MB_OPS + (SKIP,) if stride == 1 and c_in == c_out else MB_OPS


def make_op(name: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    if name == SKIP:
        if stride != 1 or c_in != c_out:
            raise ValueError(
                f"skip needs stride 1 and c_in == c_out, got {c_in}->{c_out} /{stride}"
            )
        return Skip()
    if name in MB_OPS:
        kernel, expand = MB_CHOICES[MB_OPS.index(name)]
        return MBConv(c_in, c_out, kernel, expand, stride)
    raise ValueError(f"unknown ProxylessNAS op {name!r}; ops are: {', '.join(MB_OPS + (SKIP,))}")


class ProxylessNetwork(nn.Module):
    def __init__(self, width_mult: float, num_classes: int) -> None:
        super().__init__()
        c_stem = scale_channels(STEM_CHANNELS, width_mult)
        c_first = scale_channels(FIRST_BLOCK_CHANNELS, width_mult)
        self.stem = ConvBNReLU6(3, c_stem, 3, 2, "Conv")
        self.first = MBConv(c_stem, c_first, kernel=3, expand=1, stride=1)
        plan = layer_plan(width_mult)
        self.layers = nn.Sequential(
            *(
                ChoiceBlock(i, [make_op(op, c_in, c_out, s) for op in slot_ops(c_in, c_out, s)])
                for i, (c_in, c_out, s) in enumerate(plan)
            )
        )
        c_last = plan[-1][1]
        c_head = scale_channels(HEAD_CHANNELS, width_mult)
        self.head = ConvBNReLU6(c_last, c_head, 1, 1, "Conv_1")
        self.classifier = Classifier(c_head, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.head(self.layers(self.first(self.stem(x)))))


@dataclass(frozen=True)
class ProxylessSpace(SearchSpace):
    input_size: int = 224
    width_mult: float = 1.0
    num_classes: int = 1000
    size: str = "real"
    name: str = "proxyless"

    @property
    def slots(self) -> tuple[Slot, ...]:  # type: ignore[override]
        names = [f"stage{s + 1}.block{b + 1}" for s, n in enumerate(STAGE_BLOCKS) for b in range(n)]
        return tuple(
            Slot(name, slot_ops(c_in, c_out, stride))
            for name, (c_in, c_out, stride) in zip(names, layer_plan(self.width_mult), strict=True)
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (3, self.input_size, self.input_size)

    def build(self) -> nn.Module:
        return ProxylessNetwork(self.width_mult, self.num_classes)


@SPACES.register(
    "proxyless", "ProxylessNAS mobile chain (21 layers x 6-7 MBConv/skip ops), ImageNet"
)
def proxyless(size: str = "real", **overrides: object) -> ProxylessSpace:
    base: dict[str, object] = (
        {"input_size": 224, "width_mult": 1.0, "num_classes": 1000}
        if size == "real"
        else {"input_size": 32, "width_mult": 0.25, "num_classes": 10}
    )
    base.update(overrides)
    return ProxylessSpace(size=size, **base)  # type: ignore[arg-type]
