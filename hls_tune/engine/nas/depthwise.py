"""Depthwise convolution with a hand-written CPU backward, and the channel-layout helpers
that it and the fused cell share.

`depthwise_conv2d` is the fused cell's depthwise conv: aten's everywhere except the
stride-1 "same" CPU kernels that `CUSTOM_DEPTHWISE_BACKWARD` marks, which go through
`_DepthwiseConv2d` (input gradient as a flipped-kernel conv, weight gradient on the 2×2
phase split for dilation 2). `is_channels_last`, `tile` and `tile_polyphase` reshape
N×C×H×W tensors while keeping their memory layout.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = [
    "CUSTOM_DEPTHWISE_BACKWARD",
    "_DepthwiseConv2d",
    "depthwise_conv2d",
    "is_channels_last",
    "tile",
    "tile_polyphase",
]

# Hand-written depthwise backward on CPU for stride-1 kernels, per (kernel size, dilation):
# True = ours (input grad = forward conv with the flipped kernel; weight grad = aten's
# weight-only kernel, on the 2×2 phase split for dilation 2), False = aten's backward.
# Stride-2 kernels keep aten's backward (dilation 1: near forward speed; dilation 2 never
# reaches aten: see `fused.FusedSearchCell._conv_candidate`). Decided by
# `python benchmarks/bench_search.py --depthwise` (channels_last, 2-core CPU, torch 2.14);
# the measured table is in docs/performance.md. CUDA always uses aten's backward.
CUSTOM_DEPTHWISE_BACKWARD: dict[tuple[int, int], bool] = {
    (3, 1): False,  # ours 0.78-0.93× aten's (α + weight step), aten's is fine in channels_last
    (5, 1): False,  # ours 0.77-0.97×
    (3, 2): True,  # ours 1.6-3.3× faster
    (5, 2): True,  # ours 2.1-3.7× faster
}


def _will_be_used(ctx: torch.autograd.function.FunctionCtx, index: int) -> bool:
    """Whether this backward pass needs input `index`'s gradient.

    `ctx.needs_input_grad` only says whether the input requires grad; the α step asks for α
    gradients alone, and aten's own conv backward skips the weight gradient then, so we
    ask the engine whether the input's grad_fn will run (leaves: assume yes).
    """
    if not ctx.needs_input_grad[index]:
        return False
    node = ctx.nodes[index]
    will_execute = getattr(torch._C, "_will_engine_execute_node", None)  # private API
    return node is None or will_execute is None or bool(will_execute(node))


class _DepthwiseConv2d(torch.autograd.Function):
    """Stride-1 "same" depthwise conv with a hand-written CPU backward.

    aten's CPU backward of a dilated depthwise conv runs 10-60× its forward (channels_last,
    torch 2.14). Input gradient: the adjoint of a stride-1 "same" depthwise conv is the
    same conv with the kernel rotated by 180°, which runs at forward speed. Weight
    gradient: aten's weight-only kernel, for dilation 2 (even padding, even sizes) on the
    2×2 phase split of input and gradient (`tile_polyphase`), where it is a dilation-1
    problem. Which kernels use it: `CUSTOM_DEPTHWISE_BACKWARD`.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        padding: int,
        dilation: int,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation = padding, dilation
        ctx.nodes = (x.grad_fn, weight.grad_fn)
        return F.conv2d(x, weight, None, 1, padding, dilation, x.shape[1])

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        padding, dilation, groups = ctx.padding, ctx.dilation, x.shape[1]
        grad_x = grad_weight = None
        if _will_be_used(ctx, 0):
            reach = dilation * (weight.shape[-1] - 1)
            flipped = weight.flip(-1, -2)
            grad_x = F.conv2d(grad, flipped, None, 1, reach - padding, dilation, groups)
        if _will_be_used(ctx, 1):
            # aten's kernel, called directly, wants both tensors dense in one layout.
            channels_last = is_channels_last(x)
            layout = torch.channels_last if channels_last else torch.contiguous_format
            x, grad = x.contiguous(memory_format=layout), grad.contiguous(memory_format=layout)
            even = x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0 and padding % 2 == 0
            if dilation == 2 and even:
                x = tile_polyphase(x, 1, channels_last)
                grad = tile_polyphase(grad, 1, channels_last)
                padding, dilation = padding // 2, 1
            grad_weight = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [padding, padding], [dilation, dilation],
                False, [0, 0], groups, [False, True, False],
            )[1]  # fmt: skip
        return grad_x, grad_weight, None, None


def depthwise_conv2d(
    x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int
) -> torch.Tensor:
    """Depthwise conv (groups = channels) with the faster backward where it was measured to win.

    The hand-written backward is used on CPU, outside autocast, for stride-1 "same" kernels
    marked True in `CUSTOM_DEPTHWISE_BACKWARD`; aten's conv otherwise. Both give the same
    values.

    Args:
        x: N×C×H×W input.
        weight: C×1×k×k depthwise kernel.
        stride: 1 or 2.
        padding: zero padding on each side.
        dilation: kernel dilation.
    """
    kernel = weight.shape[-1]
    if (
        stride == 1
        and 2 * padding == dilation * (kernel - 1)
        and x.device.type == "cpu"
        and CUSTOM_DEPTHWISE_BACKWARD.get((kernel, dilation), False)
        and torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
    ):
        return _DepthwiseConv2d.apply(x, weight, padding, dilation)
    return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether a 4-d tensor is dense in the channels_last (NHWC) layout."""
    return x.dim() == 4 and x.stride(1) == 1 and x.is_contiguous(memory_format=torch.channels_last)


def tile(x: torch.Tensor, copies: int, channels_last: bool) -> torch.Tensor:
    """[x, x, …] along channels (copy-major), as a dense tensor in the requested layout."""
    n, c, h, w = x.shape
    if channels_last:
        nhwc = x.permute(0, 2, 3, 1).unsqueeze(3).expand(n, h, w, copies, c)
        return nhwc.reshape(n, h, w, copies * c).contiguous().permute(0, 3, 1, 2)
    return x.unsqueeze(1).expand(n, copies, c, h, w).reshape(n, copies * c, h, w).contiguous()


def tile_polyphase(x: torch.Tensor, copies: int, channels_last: bool) -> torch.Tensor:
    """x tiled `copies` times along channels, its four 2×2 phases moved into the batch.

    Image n's pixel (2i + a, 2j + b) becomes pixel (i, j) of batch item 4n + 2a + b. A
    dilation-2 conv with even padding 2q is then a dilation-1 conv with padding q on this
    tensor (each phase only ever meets its own phase), so aten's dilated depthwise weight
    gradient, the slowest CPU kernel measured, is avoided. Needs even H and W.
    """
    n, c, h, w = x.shape
    if channels_last:
        phases = x.permute(0, 2, 3, 1).reshape(n, h // 2, 2, w // 2, 2, 1, c)
        phases = phases.permute(0, 2, 4, 1, 3, 5, 6).expand(n, 2, 2, h // 2, w // 2, copies, c)
        phases = phases.reshape(4 * n, h // 2, w // 2, copies * c).contiguous()
        return phases.permute(0, 3, 1, 2)
    phases = x.reshape(n, 1, c, h // 2, 2, w // 2, 2).permute(0, 4, 6, 1, 2, 3, 5)
    phases = phases.expand(n, 2, 2, copies, c, h // 2, w // 2)
    return phases.reshape(4 * n, copies * c, h // 2, w // 2).contiguous()
