"""The batched operations the fused cell is assembled from: one call for the same op on
the E edges that read one state.

BatchNorm over E channel blocks with each module's own running statistics
(`grouped_batch_norm`), one non-affine BatchNorm of a tensor every edge reads
(`shared_batch_norm`), the α-weighted sum of shared tensors as one GEMM (`add_shared`),
and per-edge scalars spread over channels (`per_channel`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["add_shared", "grouped_batch_norm", "per_channel", "shared_batch_norm"]


def _update_running_stats(
    norms: Sequence[nn.BatchNorm2d],
    x: torch.Tensor,
    mean: torch.Tensor,
    invstd: torch.Tensor,
    shared: bool,
) -> None:
    """Each module's running-stat update from the batch statistics of its channels.

    `mean`/`invstd` are what `torch.native_batch_norm` saved (biased variance inside
    invstd); the running variance takes the unbiased one and the factor is the momentum
    (1/batches seen when momentum is None), as in `nn.BatchNorm2d`. `shared`: every module
    normalised the same channels (a shared pooled tensor).
    """
    if norms[0].running_mean is None:
        return
    with torch.no_grad():
        torch._foreach_add_([norm.num_batches_tracked for norm in norms], 1)
        count = x.numel() // x.shape[1]
        dtype = norms[0].running_mean.dtype  # bf16 input without weight: bf16 statistics
        mean, invstd = mean.to(dtype), invstd.to(dtype)
        var = invstd.pow(-2).sub_(norms[0].eps).mul_(count / max(count - 1, 1))
        parts = len(norms)
        means = [mean] * parts if shared else list(mean.chunk(parts))
        variances = [var] * parts if shared else list(var.chunk(parts))
        momentum = norms[0].momentum
        if momentum is not None and all(norm.momentum == momentum for norm in norms):
            torch._foreach_lerp_([norm.running_mean for norm in norms], means, momentum)
            torch._foreach_lerp_([norm.running_var for norm in norms], variances, momentum)
            return
        for norm, m, v in zip(norms, means, variances, strict=True):
            factor = norm.momentum or 1.0 / float(norm.num_batches_tracked)
            norm.running_mean.lerp_(m, factor)
            norm.running_var.lerp_(v, factor)


def grouped_batch_norm(
    x: torch.Tensor, norms: Sequence[nn.BatchNorm2d], weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Applies BatchNorm k to channel block k of `x` (one kernel for all blocks).

    Each module keeps its own running statistics: in training mode they are updated from
    the batch statistics of their block (see `_update_running_stats`), in eval mode they
    are concatenated for the call. `weight` (optional) multiplies each channel (used to fold
    the softmaxed α of an edge into its last BatchNorm, which has no affine parameters).
    """
    first = norms[0]
    if first.training or first.running_mean is None:
        out, mean, invstd = torch.native_batch_norm(
            x, weight, None, None, None, True, 0.0, first.eps
        )
        if first.training:
            _update_running_stats(norms, x, mean, invstd, shared=False)
        return out
    running_mean = torch.cat([norm.running_mean for norm in norms])
    running_var = torch.cat([norm.running_var for norm in norms])
    return F.batch_norm(x, running_mean, running_var, weight, None, False, 0.0, first.eps)


def shared_batch_norm(x: torch.Tensor, norms: Sequence[nn.BatchNorm2d]) -> torch.Tensor:
    """Training-mode non-affine BatchNorm of one tensor that every module in `norms` reads.

    In training mode the output depends on the batch only, so it is computed once; each
    module's running statistics still get their own update from the batch statistics.
    """
    out, mean, invstd = torch.native_batch_norm(x, None, None, None, None, True, 0.0, norms[0].eps)
    _update_running_stats(norms, x, mean, invstd, shared=True)
    return out


def add_shared(total: torch.Tensor, alphas: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
    """total + Σ_k shared_k ⊗ α[:, k], as one matrix multiply-add.

    `total`: the N×(E·C)×H×W sum of the edges' own candidates (edge-major channels);
    `shared`: N×(K·C)×H×W, K tensors every edge of the source state adds with its own
    weight α[e, k] (the pooled-and-normalised states and, at stride 1, the skip
    connection). With pixels as rows (channels_last, P = N·H·W) this is
    total + S·(αᵀ ⊗ I_C): one GEMM that reads S and total once, where K broadcast
    multiply-adds each make a pass over the E-times-larger sum; its backward is two GEMMs
    that read the gradient once each, where autograd's backward of the broadcasts writes
    and re-reads two E-times-larger temporaries per term. Kept in float32 under autocast,
    as the reference's Σ α·op(x) is.
    """
    n, width, h, w = total.shape
    channels = width // alphas.shape[0]
    dtype = torch.promote_types(total.dtype, torch.float32)
    with torch.autocast(total.device.type, enabled=False):
        eye = torch.eye(channels, dtype=dtype, device=alphas.device)
        # αᵀ ⊗ I_C, row k·C + c, column e·C + c' (torch.kron fails on a K×1 operand)
        mixing = alphas.t().to(dtype)[:, None, :, None] * eye[None, :, None, :]
        mixing = mixing.reshape(shared.shape[1], width)
        rows = total.to(dtype).permute(0, 2, 3, 1).reshape(-1, width)
        terms = shared.to(dtype).permute(0, 2, 3, 1).reshape(-1, shared.shape[1])
        mixed = torch.addmm(rows, terms, mixing)
    return mixed.view(n, h, w, width).permute(0, 3, 1, 2)


def per_channel(values: torch.Tensor, channels: int) -> torch.Tensor:
    """(E,) per-edge scalars → (E·channels,) per-channel vector, edge-major."""
    # contiguous(): for one edge the reshape is a stride-0 view, which aten's CPU batch-norm
    # kernels read as if it were dense (garbage gradients).
    return values[:, None].expand(values.shape[0], channels).reshape(-1).contiguous()
