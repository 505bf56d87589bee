"""Fused DARTS supernets: the reference modules and parameters, a faster cell forward.

Same parameters, buffers and state_dict keys as `hls_tune.nas.supernet`; only the cell's
edge computation is reorganised (see docs/performance.md and tests/test_fused.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.nas.genotype import PRIMITIVES
from hls_tune.nas.supernet import BbnDartsSupernet, DartsSupernet, SearchCell, channel_shuffle

_OP = {name: index for index, name in enumerate(PRIMITIVES)}
_CONV_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")

# Hand-written depthwise backward on CPU, per (kernel, dilation, stride): True = ours
# (input grad = forward conv with the flipped kernel, weight grad = aten's weight-only
# backward), False = aten's native backward. Decided by `benchmarks/bench_search.py
# --depthwise` (channels_last, batch 32, C=8 at 32×32 and C=16 at 16×16, 2-core CPU, torch
# 2.14); the measured table is in docs/performance.md. CUDA always uses the native backward.
CUSTOM_DEPTHWISE_BACKWARD: dict[tuple[int, int, int], bool] = {
    (3, 1, 1): True,
    (5, 1, 1): True,
    (3, 2, 1): True,
    (5, 2, 1): True,
    (3, 1, 2): False,
    (5, 1, 2): False,
    (3, 2, 2): False,
    (5, 2, 2): False,
}


class _DepthwiseConv2d(torch.autograd.Function):
    """Depthwise conv whose input gradient is a forward conv with the flipped kernel.

    aten's CPU depthwise backward runs 5–30× the cost of the forward (worst for 5×5 and
    dilated kernels); the adjoint of a stride-1 "same" depthwise conv is the same conv with
    the kernel rotated by 180°, which runs at forward speed. The weight gradient stays aten's
    (weight-only) kernel, the fastest of the alternatives measured.
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
        return F.conv2d(x, weight, None, 1, padding, dilation, x.shape[1])

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        padding, dilation, groups = ctx.padding, ctx.dilation, x.shape[1]
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            reach = dilation * (weight.shape[-1] - 1)
            grad_x = F.conv2d(
                grad, weight.flip(-1, -2), None, 1, reach - padding, dilation, groups
            )
        if ctx.needs_input_grad[1]:
            grad_weight = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [padding, padding], [dilation, dilation],
                False, [0, 0], groups, [False, True, False],
            )[1]
        return grad_x, grad_weight, None, None


def depthwise_conv2d(
    x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int
) -> torch.Tensor:
    """Depthwise conv (groups = channels) with the faster backward where it was measured to win.

    Uses the hand-written backward on CPU, outside autocast, for the kernels marked True in
    `CUSTOM_DEPTHWISE_BACKWARD`; aten's conv otherwise. Both give the same values.

    Args:
        x: N×C×H×W input.
        weight: C×1×k×k depthwise kernel.
        stride: 1 or 2.
        padding: zero padding on each side.
        dilation: kernel dilation.
    """
    key = (weight.shape[-1], dilation, stride)
    if (
        x.device.type == "cpu"
        and CUSTOM_DEPTHWISE_BACKWARD.get(key, False)
        and not torch.is_autocast_enabled("cpu")
        and torch.is_grad_enabled()
    ):
        return _DepthwiseConv2d.apply(x, weight, padding, dilation)
    return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.stride(1) == 1 and x.is_contiguous(memory_format=torch.channels_last)


def _tile_channels(x: torch.Tensor, copies: int) -> torch.Tensor:
    """[x, x, …] along channels (copy-major), keeping x's memory format."""
    if copies == 1:
        return x
    n, c, h, w = x.shape
    if _is_channels_last(x):
        tiled = x.permute(0, 2, 3, 1).unsqueeze(3).expand(n, h, w, copies, c)
        return tiled.reshape(n, h, w, copies * c).permute(0, 3, 1, 2)
    return x.unsqueeze(1).expand(n, copies, c, h, w).reshape(n, copies * c, h, w)


def _bn_factor(bn: nn.BatchNorm2d) -> float:
    """Counts one batch on `bn` and returns its running-average factor (nn.BatchNorm logic)."""
    assert bn.num_batches_tracked is not None
    bn.num_batches_tracked.add_(1)
    if bn.momentum is None:
        return 1.0 / float(bn.num_batches_tracked)
    return bn.momentum


def _grouped_batch_norm(
    x: torch.Tensor, norms: Sequence[nn.BatchNorm2d], weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Applies BatchNorm k to channel block k of `x` (one kernel for all blocks).

    Each module keeps its own running statistics: they are concatenated for the call and
    the updated values are written back, so every module sees exactly the update it would
    see on its own block. `weight` (optional) multiplies each channel (used to fold the
    softmaxed α of an edge into its last BatchNorm, which has no affine parameters).
    """
    first = norms[0]
    training = first.training or first.running_mean is None
    factor = 0.0
    if first.training:
        factor = _bn_factor(first)
        for norm in norms[1:]:
            _bn_factor(norm)
    if len(norms) == 1:
        return F.batch_norm(
            x, first.running_mean, first.running_var, weight, None, training, factor, first.eps
        )
    running_mean = torch.cat([norm.running_mean for norm in norms])
    running_var = torch.cat([norm.running_var for norm in norms])
    out = F.batch_norm(x, running_mean, running_var, weight, None, training, factor, first.eps)
    if first.training:
        with torch.no_grad():
            for norm, mean, var in zip(
                norms, running_mean.chunk(len(norms)), running_var.chunk(len(norms)), strict=True
            ):
                norm.running_mean.copy_(mean)
                norm.running_var.copy_(var)
    return out


def _shared_batch_norm(x: torch.Tensor, norms: Sequence[nn.BatchNorm2d]) -> torch.Tensor:
    """Training-mode non-affine BatchNorm of one tensor that every module in `norms` reads.

    In training mode the output depends on the batch only, so it is computed once; each
    module's running statistics still get their own update from the batch statistics.
    """
    first = norms[0]
    out = F.batch_norm(
        x, first.running_mean, first.running_var, None, None, True, _bn_factor(first), first.eps
    )
    if len(norms) > 1:
        with torch.no_grad():
            var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=1)
            for norm in norms[1:]:
                factor = _bn_factor(norm)
                norm.running_mean.mul_(1.0 - factor).add_(mean, alpha=factor)
                norm.running_var.mul_(1.0 - factor).add_(var, alpha=factor)
    return out


def _per_channel(values: torch.Tensor, channels: int) -> torch.Tensor:
    """(E,) per-edge scalars → (E·channels,) per-channel vector, edge-major."""
    return values.repeat_interleave(channels)


@dataclass(frozen=True)
class _Source:
    """One cell state and the mixed edges that read it (one per later node)."""

    state: int
    edges: tuple[int, ...]
    nodes: tuple[int, ...]


def _sources(nodes: int) -> tuple[_Source, ...]:
    offsets = [sum(2 + i for i in range(node)) for node in range(nodes)]
    plan = []
    for state in range(nodes + 1):  # the last node's state is read by no edge
        readers = tuple(range(max(0, state - 1), nodes))
        plan.append(_Source(state, tuple(offsets[n] + state for n in readers), readers))
    return tuple(plan)


class FusedSearchCell(SearchCell):
    """`SearchCell` with a fused forward: identical modules, identical mathematics.

    The edges are evaluated per *source state* rather than per edge: every edge that reads
    state j is computed when j is ready, and its result is added to its node's running sum.
    Per source state:

    - one ReLU, shared by all conv candidates and factorized reduces of all its edges
      (the reference applies one ReLU per op: same values);
    - the E edges' depthwise convs of one candidate run as one depthwise conv over the
      ReLU'd state tiled E times, their pointwise convs as one grouped conv (groups = E),
      their BatchNorms as one batch-norm call (running stats written back per module);
    - the softmaxed α of each (edge, candidate) is folded into the candidate's last
      BatchNorm as its per-channel weight (those BatchNorms have no affine parameters);
    - max-pool and avg-pool run once; in training mode their non-affine BatchNorm runs
      once too (equal inputs give equal batch statistics), each edge's BN module still
      getting its own running-stat update; in eval mode each edge uses its own stats;
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
            searched, bypass = self._source_outputs(states[source.state], source, weights,
                                                    edge_weights)
            for k, node in enumerate(source.nodes):
                term = searched[:, k]
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
        assert searched is not None
        if bypass is None:
            return searched
        return channel_shuffle(torch.cat([searched, bypass], dim=1), self.edges[0].partial_channels)

    def _source_outputs(
        self,
        state: torch.Tensor,
        source: _Source,
        weights: torch.Tensor,
        edge_weights: torch.Tensor | None,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """All edges reading `state`: (N×E×C'×H×W searched-part outputs, bypass parts)."""
        edges = [self.edges[e] for e in source.edges]
        count, first = len(edges), edges[0]
        stride = 2 if self.reduction and source.state < 2 else 1
        op_weights = torch.stack([weights[e] for e in source.edges])  # E × ops
        bypass_terms = None
        if first.partial_channels > 1:
            channels_last = _is_channels_last(state)
            rest = state[:, first.op_channels :]
            searched = state[:, : first.op_channels]
            if first.bypass is not None:
                rest = first.bypass(rest)
            if channels_last:
                searched = searched.contiguous(memory_format=torch.channels_last)
            beta = (
                torch.stack([edge_weights[e] for e in source.edges])
                if edge_weights is not None
                else torch.ones(count, device=state.device, dtype=weights.dtype)
            )
            op_weights = op_weights * beta[:, None]
            bypass_terms = [b * rest for b in beta.unbind()]
        elif edge_weights is not None:  # β without partial channels: scale whole edges
            beta = torch.stack([edge_weights[e] for e in source.edges])
            op_weights = op_weights * beta[:, None]
            searched = state
        else:
            searched = state
        channels = searched.shape[1]
        relu = F.relu(searched)
        tiled = _tile_channels(relu, count)
        total = None
        for name in _CONV_OPS:
            out = self._conv_candidate(name, edges, tiled, op_weights[:, _OP[name]], stride)
            total = out if total is None else total + out
        if stride == 2:
            total = total + self._factorized_reduces(edges, relu, op_weights[:, _OP["skip_connect"]])
        assert total is not None
        out = total.unflatten(1, (count, channels))
        out = self._add_pooled(out, edges, searched, op_weights, stride)
        if stride == 1:
            skip = op_weights[:, _OP["skip_connect"]].view(1, count, 1, 1, 1)
            out = torch.addcmul(out, searched.unsqueeze(1), skip)
        return out, bypass_terms

    def _conv_candidate(
        self,
        name: str,
        edges: Sequence[nn.Module],
        tiled: torch.Tensor,
        alpha: torch.Tensor,
        stride: int,
    ) -> torch.Tensor:
        """One sep/dil candidate on all edges: N×(E·C)×H×W, already multiplied by α."""
        count = len(edges)
        ops = [edge.ops[_OP[name]] for edge in edges]
        passes = [ops] if name.startswith("dil") else [[op[0] for op in ops], [op[1] for op in ops]]
        x = tiled
        for index, dil_convs in enumerate(passes):
            if index > 0:
                x = F.relu(x)
            depthwise = dil_convs[0][1]
            x = depthwise_conv2d(
                x,
                torch.cat([conv[1].weight for conv in dil_convs]),
                depthwise.stride[0],
                depthwise.padding[0],
                depthwise.dilation[0],
            )
            x = F.conv2d(x, torch.cat([conv[2].weight for conv in dil_convs]), groups=count)
            last = index == len(passes) - 1
            channels = x.shape[1] // count
            x = _grouped_batch_norm(
                x, [conv[3] for conv in dil_convs], _per_channel(alpha, channels) if last else None
            )
        return x

    def _factorized_reduces(
        self, edges: Sequence[nn.Module], relu: torch.Tensor, alpha: torch.Tensor
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
        if _is_channels_last(relu):
            both = both.contiguous(memory_format=torch.channels_last)
        return _grouped_batch_norm(both, [r.bn for r in reduces], _per_channel(alpha, 2 * half))

    def _add_pooled(
        self,
        out: torch.Tensor,
        edges: Sequence[nn.Module],
        searched: torch.Tensor,
        op_weights: torch.Tensor,
        stride: int,
    ) -> torch.Tensor:
        """Adds Σ_pool α·BN(pool(x)) to the N×E×C×H×W edge outputs (pools computed once)."""
        count, channels = out.shape[1], out.shape[2]
        pooled = {
            "max_pool_3x3": F.max_pool2d(searched, 3, stride, 1),
            "avg_pool_3x3": F.avg_pool2d(searched, 3, stride, 1, count_include_pad=False),
        }
        for name, pool in pooled.items():
            norms = [edge.ops[_OP[name]][1] for edge in edges]
            alpha = op_weights[:, _OP[name]]
            if norms[0].training:
                normalised = _shared_batch_norm(pool, norms)
                out = torch.addcmul(out, normalised.unsqueeze(1), alpha.view(1, count, 1, 1, 1))
            else:  # eval: each edge normalises with its own running statistics
                tiled = _tile_channels(pool, count)
                normalised = _grouped_batch_norm(tiled, norms, _per_channel(alpha, channels))
                out = out + normalised.unflatten(1, (count, channels))
        return out


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


AMP_MODES = ("auto", "bf16", "off")


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for an `amp` setting: auto = bf16 on CUDA and off elsewhere.

    Args:
        amp: ``auto``, ``bf16`` or ``off``.
        device: the device the search runs on.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)} but got {amp!r}.")
    if amp == "bf16" or (amp == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """`torch.autocast` on `device` with `dtype`; does nothing when `dtype` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


def compile_cells(model: nn.Module) -> None:
    """Compiles every search cell in place (`nn.Module.compile`): state_dict keys unchanged.

    Meant for CUDA; compiling the whole supernet on CPU did not finish in 15 minutes.
    """
    for module in model.modules():
        if isinstance(module, SearchCell):
            module.compile()
