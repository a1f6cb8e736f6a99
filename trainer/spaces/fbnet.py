"""FBNet space as HW-NAS-Bench defines it for 32x32 inputs (Li et al., ICLR 2021).

22 searchable layers, each one of 8 ConvBlocks (expansion {1,3,6} x kernel {3,5}, grouped 1x1
convs for exp1 with 2 groups) or skip. Channel and stride plan of HW-NAS-Bench's CIFAR
macro-architecture, so every op's signature is a key of its per-op table:
stem ConvNorm 3->16; layers at 16, 24x4, 32x4, 64x4, 112x4, 184x4, 352 channels (stride 2 at the
first 32, 64 and 184 layer); head ConvNorm 1x1 -> 1504, 4x4 average pool, FC.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import SPACES, ChoiceBlock, Priced, SearchSpace, Shape, Slot

# (expansion, kernel, groups), in HW-NAS-Bench's order of operations.
BLOCKS = ((1, 3, 1), (1, 3, 2), (3, 3, 1), (6, 3, 1), (1, 5, 1), (1, 5, 2), (3, 5, 1), (6, 5, 1))
OPS = tuple(f"k{k}_e{e}" + ("_g2" if g == 2 else "") for e, k, g in BLOCKS) + ("skip",)
# (out channels, number of layers, stride of the first layer) per stage, for 32x32 inputs.
STAGES = ((16, 1, 1), (24, 4, 1), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 4, 2), (352, 1, 1))
HEAD_CHANNELS = 1504


def _hw(shape: Shape) -> str:
    return f"H{shape[2]}_W{shape[3]}"


class ConvBlock(nn.Module, Priced):
    """1x1 (grouped) expand, channel shuffle, kxk depthwise with stride, 1x1 (grouped) project."""

    def __init__(
        self, c_in: int, c_out: int, expansion: int, kernel: int, stride: int, groups: int
    ) -> None:
        super().__init__()
        mid = c_in * expansion
        self.expansion, self.kernel, self.stride, self.groups = expansion, kernel, stride, groups
        self.expand = nn.Sequential(
            nn.Conv2d(c_in, mid, 1, groups=groups, bias=False), nn.BatchNorm2d(mid), nn.ReLU()
        )
        self.shuffle = nn.ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = nn.Sequential(
            nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(),
        )
        self.project = nn.Sequential(
            nn.Conv2d(mid, c_out, 1, groups=groups, bias=False), nn.BatchNorm2d(c_out)
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.depthwise(self.shuffle(self.expand(x))))
        return y + x if self.residual else y

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return (
            f"ConvBlock_{_hw(in_shape)}_Cin{in_shape[1]}_Cout{out_shape[1]}_exp{self.expansion}"
            f"_kernel{self.kernel}_stride{self.stride}_group{self.groups}"
        )


class Skip(nn.Module, Priced):
    """Identity where shapes allow, else a 1x1 conv + BN with the layer's stride."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.op: nn.Module = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"Skip_{_hw(in_shape)}_Cin{in_shape[1]}_Cout{out_shape[1]}_stride{self.stride}"


class ConvNorm(nn.Sequential, Priced):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )
        self.kernel, self.stride = kernel, stride

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return (
            f"ConvNorm_{_hw(in_shape)}_Cin{in_shape[1]}_Cout{out_shape[1]}_kernel{self.kernel}"
            f"_stride{self.stride}_group1"
        )


class AvgPool(nn.Module, Priced):
    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.pool = nn.AvgPool2d(kernel)

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(self.pool(x), 1)

    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        c = in_shape[1]
        return f"AvgP_{_hw(in_shape)}_Cin{c}_Cout{c}_kernel{self.kernel}_stride1"


class FC(nn.Linear, Priced):
    def signature(self, in_shape: Shape, out_shape: Shape) -> str | None:
        return f"FC_Cin{in_shape[1]}_Cout{out_shape[1]}"


def layer_plan(width_mult: float) -> list[tuple[int, int, int]]:
    """(in channels, out channels, stride) of each of the 22 searchable layers."""

    def scale(c: int) -> int:
        return c if width_mult == 1.0 else max(8, int(round(c * width_mult / 4)) * 4)

    plan = []
    c_in = scale(16)
    for c_out, n, stride in STAGES:
        for i in range(n):
            plan.append((c_in, scale(c_out), stride if i == 0 else 1))
            c_in = scale(c_out)
    return plan


class FBNetNetwork(nn.Module):
    def __init__(self, width_mult: float, input_size: int, num_classes: int) -> None:
        super().__init__()
        plan = layer_plan(width_mult)
        self.stem = ConvNorm(3, plan[0][0], 3)
        self.layers = nn.Sequential(
            *(
                ChoiceBlock(
                    slot,
                    [ConvBlock(c_in, c_out, e, k, s, g) for e, k, g in BLOCKS]
                    + [Skip(c_in, c_out, s)],
                )
                for slot, (c_in, c_out, s) in enumerate(plan)
            )
        )
        head = HEAD_CHANNELS if width_mult == 1.0 else max(16, int(HEAD_CHANNELS * width_mult))
        self.head = ConvNorm(plan[-1][1], head, 1)
        final = input_size // 8  # three stride-2 layers
        self.pool = AvgPool(final)
        self.fc = FC(head, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.head(self.layers(self.stem(x)))))


@dataclass(frozen=True)
class FBNetSpace(SearchSpace):
    width_mult: float = 1.0
    input_size: int = 32
    num_classes: int = 10
    size: str = "real"
    name: str = "fbnet"

    @property
    def slots(self) -> tuple[Slot, ...]:  # type: ignore[override]
        return tuple(
            Slot(f"layer{i}_{c_in}to{c_out}_s{s}", OPS)
            for i, (c_in, c_out, s) in enumerate(layer_plan(self.width_mult))
        )

    @property
    def input_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (3, self.input_size, self.input_size)

    def build(self) -> nn.Module:
        if self.input_size % 8:
            raise ValueError(f"fbnet input_size must be a multiple of 8, got {self.input_size}")
        return FBNetNetwork(self.width_mult, self.input_size, self.num_classes)


@SPACES.register("fbnet", "HW-NAS-Bench FBNet space for 32 px inputs (22 layers x 9 ops)")
def fbnet(size: str = "real", **overrides: object) -> FBNetSpace:
    base: dict[str, object] = {"width_mult": 1.0} if size == "real" else {"width_mult": 0.25}
    base.update(overrides)
    return FBNetSpace(size=size, **base)  # type: ignore[arg-type]
