"""Fused DARTS supernets: the reference modules, parameters and state_dict keys of
`hls_tune.engine.nas.supernet` with a faster cell forward (docs/performance.md,
tests/engine/nas/test_fused.py).

This module holds the fused cell (`FusedSearchCell`), the supernets that use it and
`compile_cells`; the cell is assembled from the batched operations of `fused_kernels` and
the depthwise conv of `depthwise`, whose names tests and benchmarks import from here are
re-exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine.nas.depthwise import (
    CUSTOM_DEPTHWISE_BACKWARD,
    _DepthwiseConv2d,
    depthwise_conv2d,
    is_channels_last,
    tile,
    tile_polyphase,
)
from hls_tune.engine.nas.fused_kernels import (
    add_shared,
    grouped_batch_norm,
    per_channel,
    shared_batch_norm,
)
from hls_tune.engine.nas.genotype import PRIMITIVES
from hls_tune.engine.nas.supernet import (
    BbnDartsSupernet,
    DartsSupernet,
    SearchCell,
    channel_shuffle,
)

__all__ = [
    "CUSTOM_DEPTHWISE_BACKWARD",
    "FusedBbnDartsSupernet",
    "FusedDartsSupernet",
    "FusedSearchCell",
    "_DepthwiseConv2d",
    "compile_cells",
    "depthwise_conv2d",
]

# The phase split under its name from before `depthwise` (tests use it).
_tile_polyphase = tile_polyphase

_OP = {name: index for index, name in enumerate(PRIMITIVES)}
_CONV_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
_POOL_OPS = ("max_pool_3x3", "avg_pool_3x3")


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
      multiply-add (`add_shared`), whose backward reads the gradient twice instead of
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
        if not is_channels_last(both):
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
        channels_last = is_channels_last(state)
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
                shared[name] = shared_batch_norm(pool, _pool_norms(edges, name))
        else:  # eval: each edge normalises with its own running statistics
            for name, pool in pools.items():
                tiled = tile(pool, count, channels_last)
                alpha = per_channel(op_weights[:, _OP[name]], pool.shape[1])
                total.add_(grouped_batch_norm(tiled, _pool_norms(edges, name), alpha))
        if stride == 1:
            shared["skip_connect"] = searched
        if shared:
            alphas = op_weights[:, [_OP[name] for name in shared]]
            layout = torch.channels_last if channels_last else torch.contiguous_format
            both = torch.cat(list(shared.values()), 1).contiguous(memory_format=layout)
            total = add_shared(total, alphas, both)
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
            scale = per_channel(alpha, x.shape[1] // count) if last else None
            x = grouped_batch_norm(x, [conv[3] for conv in dil_convs], scale)
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
        return grouped_batch_norm(both, [r.bn for r in reduces], per_channel(alpha, 2 * half))

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
            x = tile(relu, self.copies, self.channels_last)
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
