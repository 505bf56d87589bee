"""Fused DARTS supernets: the reference modules, parameters and state_dict keys of
`hls_tune.engine.nas.supernet` with a faster cell forward (docs/performance.md,
tests/engine/nas/test_fused.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine.nas.genotype import PRIMITIVES
from hls_tune.engine.nas.supernet import (
    BbnDartsSupernet,
    DartsSupernet,
    SearchCell,
    channel_shuffle,
)

_OP = {name: index for index, name in enumerate(PRIMITIVES)}
_CONV_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
_POOL_OPS = ("max_pool_3x3", "avg_pool_3x3")

# Hand-written depthwise backward on CPU for stride-1 kernels, per (kernel size, dilation):
# True = ours (input grad = forward conv with the flipped kernel; weight grad = aten's
# weight-only kernel, on the 2×2 phase split for dilation 2), False = aten's backward.
# Stride-2 kernels keep aten's backward (dilation 1: near forward speed; dilation 2 never
# reaches aten: see `FusedSearchCell._conv_candidate`). Decided by
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
    2×2 phase split of input and gradient (`_tile_polyphase`), where it is a dilation-1
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
            channels_last = _is_channels_last(x)
            layout = torch.channels_last if channels_last else torch.contiguous_format
            x, grad = x.contiguous(memory_format=layout), grad.contiguous(memory_format=layout)
            even = x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0 and padding % 2 == 0
            if dilation == 2 and even:
                x = _tile_polyphase(x, 1, channels_last)
                grad = _tile_polyphase(grad, 1, channels_last)
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


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.stride(1) == 1 and x.is_contiguous(memory_format=torch.channels_last)


def _tile(x: torch.Tensor, copies: int, channels_last: bool) -> torch.Tensor:
    """[x, x, …] along channels (copy-major), as a dense tensor in the requested layout."""
    n, c, h, w = x.shape
    if channels_last:
        nhwc = x.permute(0, 2, 3, 1).unsqueeze(3).expand(n, h, w, copies, c)
        return nhwc.reshape(n, h, w, copies * c).contiguous().permute(0, 3, 1, 2)
    return x.unsqueeze(1).expand(n, copies, c, h, w).reshape(n, copies * c, h, w).contiguous()


def _tile_polyphase(x: torch.Tensor, copies: int, channels_last: bool) -> torch.Tensor:
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


def _grouped_batch_norm(
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


def _shared_batch_norm(x: torch.Tensor, norms: Sequence[nn.BatchNorm2d]) -> torch.Tensor:
    """Training-mode non-affine BatchNorm of one tensor that every module in `norms` reads.

    In training mode the output depends on the batch only, so it is computed once; each
    module's running statistics still get their own update from the batch statistics.
    """
    out, mean, invstd = torch.native_batch_norm(x, None, None, None, None, True, 0.0, norms[0].eps)
    _update_running_stats(norms, x, mean, invstd, shared=True)
    return out


def _add_shared(total: torch.Tensor, alphas: torch.Tensor, shared: torch.Tensor) -> torch.Tensor:
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


def _per_channel(values: torch.Tensor, channels: int) -> torch.Tensor:
    """(E,) per-edge scalars → (E·channels,) per-channel vector, edge-major."""
    # contiguous(): for one edge the reshape is a stride-0 view, which aten's CPU batch-norm
    # kernels read as if it were dense (garbage gradients).
    return values[:, None].expand(values.shape[0], channels).reshape(-1).contiguous()


@dataclass(frozen=True)
class _Source:
    """One cell state and the mixed edges that read it (one per later node)."""

    state: int
    edges: tuple[int, ...]
    nodes: tuple[int, ...]


_PLANS: dict[int, tuple[_Source, ...]] = {}


def _sources(nodes: int) -> tuple[_Source, ...]:
    """The cell's states in order, each with the edges that read it (cached per size)."""
    if nodes in _PLANS:
        return _PLANS[nodes]
    offsets = [sum(2 + i for i in range(node)) for node in range(nodes)]
    plan = []
    for state in range(nodes + 1):  # the last node's state is read by no edge
        readers = tuple(range(max(0, state - 1), nodes))
        plan.append(_Source(state, tuple(offsets[n] + state for n in readers), readers))
    _PLANS[nodes] = tuple(plan)
    return _PLANS[nodes]


class FusedSearchCell(SearchCell):
    """`SearchCell` with a fused forward: identical modules, identical mathematics.

    The edges are evaluated per *source state* rather than per edge: every edge that reads
    state j is computed when j is ready, and its result is added to its node's running sum.
    Per source state:

    - one ReLU, shared by all conv candidates and factorized reduces of all its edges
      (the reference applies one ReLU per op: same values);
    - the E edges' depthwise convs of one candidate run as one depthwise conv over the
      ReLU'd state tiled E times, their pointwise convs as one grouped conv (groups = E),
      their BatchNorms as one batch-norm call (each module's running statistics updated
      from its own channels);
    - dilated candidates: stride 1 through `depthwise_conv2d`'s hand-written backward;
      stride 2 as an undilated stride-1 conv on the even-pixel phase, the only pixels a
      stride-2 dilation-2 kernel reads (aten's dilated depthwise backward is 10-60× its
      forward on CPU);
    - the softmaxed α of each (edge, candidate) is folded into the candidate's last
      BatchNorm as its per-channel weight (those BatchNorms have no affine parameters);
    - max-pool and avg-pool run once; in training mode their non-affine BatchNorm runs
      once too (equal inputs give equal batch statistics), each edge's BN module still
      getting its own running-stat update; in eval mode each edge uses its own stats;
    - the tensors every edge adds with its own weight (in training mode the two normalised
      pools, at stride 1 the skip connection) are mixed into all E edge sums by one matrix
      multiply-add (`_add_shared`), whose backward reads the gradient twice instead of
      writing and re-reading E-times-larger temporaries for every term;
    - `none` is never computed;
    - PC-DARTS (partial channels): the searched slice goes through the same fused path with
      op weights α·β, the bypassed channels (max-pooled on stride-2 edges, shared) are
      summed per node with weight β, and each node is channel-shuffled once
      (shuffle and concatenation are linear, so Σ_e β_e·shuffle([m_e, r]) =
      shuffle([Σ_e β_e·m_e, (Σ_e β_e)·r])).

    Instances are made by `FusedDartsSupernet` / `FusedBbnDartsSupernet`, which build the
    reference network and switch each cell's class to this one.
    """

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        edge_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args: the two cell inputs, softmaxed op weights (edges × ops), optional β."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        searched_sums: list[torch.Tensor | None] = [None] * self.nodes
        bypass_sums: list[torch.Tensor | None] = [None] * self.nodes
        for source in _sources(self.nodes):
            if source.state >= 2:
                node = source.state - 2
                states.append(self._node_state(searched_sums[node], bypass_sums[node]))
            searched, bypass = self._source_outputs(
                states[source.state], source, weights, edge_weights
            )
            # split, not indexing: its backward is one cat along channels (channels_last
            # kept), not E zero-filled copies.
            terms = searched.split(searched.shape[1] // len(source.nodes), dim=1)
            for k, (node, term) in enumerate(zip(source.nodes, terms, strict=True)):
                total = searched_sums[node]
                searched_sums[node] = term if total is None else total + term
                if bypass is not None:
                    total = bypass_sums[node]
                    bypass_sums[node] = bypass[k] if total is None else total + bypass[k]
        states.append(self._node_state(searched_sums[-1], bypass_sums[-1]))
        return torch.cat(states[2:], dim=1)

    def _node_state(
        self, searched: torch.Tensor | None, bypass: torch.Tensor | None
    ) -> torch.Tensor:
        """A node's state from its sums (PC-DARTS: [searched, bypassed], channel-shuffled)."""
        assert searched is not None
        if bypass is None:
            return searched
        groups = self.edges[0].partial_channels
        both = torch.cat([searched, bypass], dim=1)
        if not _is_channels_last(both):
            return channel_shuffle(both, groups)
        n, c, h, w = both.shape  # the same interleaving, done in NHWC to stay channels_last
        nhwc = both.permute(0, 2, 3, 1).reshape(n, h, w, groups, c // groups).transpose(3, 4)
        return nhwc.reshape(n, h, w, c).permute(0, 3, 1, 2)

    def _source_outputs(
        self,
        state: torch.Tensor,
        source: _Source,
        weights: torch.Tensor,
        edge_weights: torch.Tensor | None,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """All edges reading `state`: (N×(E·C')×H×W searched-part outputs, edge-major
        channels, and the bypass parts)."""
        edges = [self.edges[e] for e in source.edges]
        count, first = len(edges), edges[0]
        stride = 2 if self.reduction and source.state < 2 else 1
        channels_last = _is_channels_last(state)
        op_weights = torch.stack([weights[e] for e in source.edges])  # E × ops
        beta = None
        if edge_weights is not None:
            beta = torch.stack([edge_weights[e] for e in source.edges])
            op_weights = op_weights * beta[:, None]
        searched, bypass_terms = state, None
        if first.partial_channels > 1:
            searched = state[:, : first.op_channels]
            rest = state[:, first.op_channels :]
            if first.bypass is not None:
                rest = first.bypass(rest)
            if channels_last:
                searched = searched.contiguous(memory_format=torch.channels_last)
            bypass_terms = [rest if b is None else b * rest for b in _unbind_or_none(beta, count)]
        relu = F.relu(searched)
        inputs = _CandidateInputs(relu, count, channels_last)
        total = None
        for name in _CONV_OPS:
            out = self._conv_candidate(name, edges, inputs, op_weights[:, _OP[name]], stride)
            # In place: a batch-norm output is saved by no backward. Under autocast the sum
            # is kept in α's dtype (float32), as the reference's Σ α·op(x) is.
            total = out.to(op_weights.dtype) if total is None else total.add_(out)
        assert total is not None
        if stride == 2:
            skip = op_weights[:, _OP["skip_connect"]]
            total.add_(self._factorized_reduces(edges, relu, skip, channels_last))
        pools = {name: self._pool(name, searched, stride) for name in _POOL_OPS}
        # Tensors every edge adds with its own α, by candidate name.
        shared: dict[str, torch.Tensor] = {}
        if _pool_norms(edges, _POOL_OPS[0])[0].training:
            # Equal inputs give equal batch statistics: one non-affine BN per pool.
            for name, pool in pools.items():
                shared[name] = _shared_batch_norm(pool, _pool_norms(edges, name))
        else:  # eval: each edge normalises with its own running statistics
            for name, pool in pools.items():
                tiled = _tile(pool, count, channels_last)
                alpha = _per_channel(op_weights[:, _OP[name]], pool.shape[1])
                total.add_(_grouped_batch_norm(tiled, _pool_norms(edges, name), alpha))
        if stride == 1:
            shared["skip_connect"] = searched
        if shared:
            alphas = op_weights[:, [_OP[name] for name in shared]]
            layout = torch.channels_last if channels_last else torch.contiguous_format
            both = torch.cat(list(shared.values()), 1).contiguous(memory_format=layout)
            total = _add_shared(total, alphas, both)
        return total, bypass_terms

    def _conv_candidate(
        self,
        name: str,
        edges: Sequence[nn.Module],
        inputs: _CandidateInputs,
        alpha: torch.Tensor,
        stride: int,
    ) -> torch.Tensor:
        """One sep/dil candidate on all edges: N×(E·C)×H×W, already multiplied by α."""
        count = len(edges)
        ops = [edge.ops[_OP[name]] for edge in edges]
        dilated = name.startswith("dil")
        passes = [ops] if dilated else [[op[0] for op in ops], [op[1] for op in ops]]
        first_conv = passes[0][0][1]
        padding = first_conv.padding[0]
        conv_stride, dilation = stride, first_conv.dilation[0]
        if stride == 2 and dilation == 2 and padding % 2 == 0:
            # Outputs of a stride-2 dilation-2 conv sit on even pixels and read only even
            # pixels: it is a stride-1 undilated conv on the (0, 0) phase, 1/4 of the input
            # (aten's dilated depthwise backward is the slowest kernel on CPU).
            x, conv_stride, dilation, padding = inputs.even_phase(), 1, 1, padding // 2
        else:
            x = inputs.plain()
        for index, dil_convs in enumerate(passes):
            if index > 0:
                x = F.relu(x, inplace=True)  # a batch-norm output: saved by nobody
                conv_stride = 1
            weight = torch.cat([conv[1].weight for conv in dil_convs])
            x = depthwise_conv2d(x, weight, conv_stride, padding, dilation)
            x = F.conv2d(x, torch.cat([conv[2].weight for conv in dil_convs]), groups=count)
            last = index == len(passes) - 1
            scale = _per_channel(alpha, x.shape[1] // count) if last else None
            x = _grouped_batch_norm(x, [conv[3] for conv in dil_convs], scale)
        return x

    def _factorized_reduces(
        self,
        edges: Sequence[nn.Module],
        relu: torch.Tensor,
        alpha: torch.Tensor,
        channels_last: bool,
    ) -> torch.Tensor:
        """skip_connect on stride-2 edges (FactorizedReduce) for all edges, times α."""
        count = len(edges)
        reduces = [edge.ops[_OP["skip_connect"]] for edge in edges]
        half = reduces[0].conv_1.out_channels
        shifted = F.pad(relu[:, :, 1:, 1:], (0, 1, 0, 1))
        even = F.conv2d(relu, torch.cat([r.conv_1.weight for r in reduces]), stride=2)
        odd = F.conv2d(shifted, torch.cat([r.conv_2.weight for r in reduces]), stride=2)
        both = torch.cat([even.unflatten(1, (count, half)), odd.unflatten(1, (count, half))], 2)
        both = both.flatten(1, 2)
        if channels_last:
            both = both.contiguous(memory_format=torch.channels_last)
        return _grouped_batch_norm(both, [r.bn for r in reduces], _per_channel(alpha, 2 * half))

    @staticmethod
    def _pool(name: str, x: torch.Tensor, stride: int) -> torch.Tensor:
        """A pool candidate's pooling (before its BatchNorm), computed once for all edges."""
        if name == "max_pool_3x3":
            return F.max_pool2d(x, 3, stride, 1)
        return F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)


def _pool_norms(edges: Sequence[nn.Module], name: str) -> list[nn.BatchNorm2d]:
    """Each edge's BatchNorm after the pool candidate `name`."""
    return [edge.ops[_OP[name]][1] for edge in edges]


def _unbind_or_none(values: torch.Tensor | None, count: int) -> Sequence[torch.Tensor | None]:
    return [None] * count if values is None else values.unbind()


class _CandidateInputs:
    """The ReLU'd source state, tiled once per edge, in the forms the candidates need."""

    def __init__(self, relu: torch.Tensor, copies: int, channels_last: bool) -> None:
        self.relu, self.copies, self.channels_last = relu, copies, channels_last
        self._cache: dict[str, torch.Tensor] = {}

    def _get(self, form: str) -> torch.Tensor:
        if form not in self._cache:
            relu = self.relu if form == "plain" else self.relu[:, :, ::2, ::2]
            x = _tile(relu, self.copies, self.channels_last)
            self._cache[form] = x
        return self._cache[form]

    def plain(self) -> torch.Tensor:
        """N×(E·C)×H×W."""
        return self._get("plain")

    def even_phase(self) -> torch.Tensor:
        """The (0, 0) phase, N×(E·C)×⌈H/2⌉×⌈W/2⌉ (what a stride-2 dilation-2 conv reads)."""
        return self._get("even")


def _fuse_cells(model: nn.Module) -> None:
    for module in model.modules():
        if type(module) is SearchCell:
            module.__class__ = FusedSearchCell


class FusedDartsSupernet(DartsSupernet):
    """`DartsSupernet` with fused cells: same constructor, parameters and state_dict keys.

    Example:
        >>> reference = DartsSupernet(3, 10, channels=4, layers=3)
        >>> fused = FusedDartsSupernet(3, 10, channels=4, layers=3)
        >>> fused.load_state_dict(reference.state_dict())
        <All keys matched successfully>
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        _fuse_cells(self)


class FusedBbnDartsSupernet(BbnDartsSupernet):
    """`BbnDartsSupernet` with fused cells: same constructor, parameters and state_dict keys."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        _fuse_cells(self)


def compile_cells(model: nn.Module) -> None:
    """Compiles every search cell in place (`nn.Module.compile`): state_dict keys unchanged.

    Meant for CUDA; compiling the whole supernet on CPU did not finish in 15 minutes.
    """
    for module in model.modules():
        if isinstance(module, SearchCell):
            module.compile()
