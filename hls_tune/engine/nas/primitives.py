"""The eight DARTS candidate operations and the cell-input preprocessing layers."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from hls_tune.engine.nas.genotype import PRIMITIVES


class ReLUConvBN(nn.Sequential):
    """ReLU → conv k×k → BatchNorm; preprocesses a cell input (1×1) in the DARTS cell."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU → depthwise k×k (dilated) → pointwise 1×1 → BatchNorm."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                c_in,
                c_in,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=c_in,
                bias=False,
            ),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two DilConv passes with dilation 1; the stride applies to the first pass only."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool
    ) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel_size, 1, padding, 1, affine),
        )


class Identity(nn.Module):
    """skip_connect on a stride-1 edge."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The `none` operation: zero output of the edge's output shape."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halves the resolution: two stride-2 1×1 convs on offset inputs, concatenated, then BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count but got {c_out}.")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # The second conv sees the input shifted by one pixel; pad so odd sizes still line up.
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def pool_3x3(kind: str, stride: int) -> nn.Module:
    """3×3 max or average pooling with padding 1 (average ignores the padding)."""
    if kind == "max":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


OpFactory = Callable[[int, int, bool], nn.Module]

OPS: dict[str, OpFactory] = {
    "none": lambda c, stride, affine: Zero(stride),
    "max_pool_3x3": lambda c, stride, affine: pool_3x3("max", stride),
    "avg_pool_3x3": lambda c, stride, affine: pool_3x3("avg", stride),
    "skip_connect": lambda c, stride, affine: (
        Identity() if stride == 1 else FactorizedReduce(c, c, affine)
    ),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine),
}
assert tuple(OPS) == PRIMITIVES, "OPS must list the primitives in the genotype order"


def make_op(
    name: str, channels: int, stride: int, affine: bool, pool_bn: bool = False
) -> nn.Module:
    """Builds one candidate operation.

    Args:
        name: one of ``PRIMITIVES``.
        channels: input and output channels.
        stride: 1, or 2 on the edges of a reduction cell that read a cell input.
        affine: BatchNorm affine parameters (False inside the search supernet, as in DARTS).
        pool_bn: follow pooling with a non-affine BatchNorm, as the search cell does so that
            pooled outputs are on the scale of the other (normalised) candidates.
    """
    op = OPS[name](channels, stride, affine)
    if pool_bn and name.endswith("pool_3x3"):
        op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
    return op
