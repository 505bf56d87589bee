"""DARTS search supernets: the mixed edge, the search cell, a plain and a BBN supernet.

This is the straightforward per-op implementation (each edge a list of eight modules,
output Σ_o softmax(α)_o · o(x)); it is the reference the faster paths are checked against.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine.nas.derive import derive_genotype
from hls_tune.engine.nas.genotype import PRIMITIVES, Genotype
from hls_tune.engine.nas.primitives import FactorizedReduce, ReLUConvBN, make_op

BACKBONE_GROUPS = ("backbone_normal", "backbone_reduce")
HEAD_GROUPS = ("head_conventional", "head_rebalancing")


def num_edges(nodes: int) -> int:
    """Edges of a cell with `nodes` intermediate nodes: 2 + 3 + … + (nodes + 1)."""
    return sum(2 + i for i in range(nodes))


def reduction_layers(layers: int) -> frozenset[int]:
    """Indices of the reduction cells in a network of `layers` cells (L//3 and 2L//3)."""
    return frozenset({layers // 3, 2 * layers // 3})


def darts_stem(in_channels: int, out_channels: int) -> nn.Sequential:
    """DARTS' CIFAR stem: a 3×3 conv to `out_channels` (3C) and a BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
    )


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleaves the channels of `groups` equal groups (PC-DARTS)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def node_normalised_edge_weights(betas: torch.Tensor, nodes: int) -> torch.Tensor:
    """Softmax of the PC-DARTS edge weights β over each node's incoming edges."""
    parts, offset = [], 0
    for i in range(nodes):
        parts.append(F.softmax(betas[offset : offset + i + 2], dim=-1))
        offset += i + 2
    return torch.cat(parts)


class MixedOp(nn.Module):
    """One edge: Σ_o w_o · o(x) over the candidates; `none` is zero and never computed.

    With partial channels K > 1 (PC-DARTS) only the first C/K channels go through the
    candidates; the rest bypass them (max-pooled on stride-2 edges) and the result is
    channel-shuffled.
    """

    def __init__(self, channels: int, stride: int, partial_channels: int = 1) -> None:
        super().__init__()
        self.partial_channels = partial_channels
        self.op_channels = channels // partial_channels
        self.ops = nn.ModuleList(
            make_op(name, self.op_channels, stride, affine=False, pool_bn=True)
            for name in PRIMITIVES
        )
        self.bypass = nn.MaxPool2d(2, 2) if partial_channels > 1 and stride == 2 else None

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        searched = x if self.partial_channels == 1 else x[:, : self.op_channels]
        out = sum(
            w * op(searched)
            for w, op, name in zip(weights, self.ops, PRIMITIVES, strict=True)
            if name != "none"
        )
        if self.partial_channels == 1:
            return out
        rest = x[:, self.op_channels :]
        if self.bypass is not None:
            rest = self.bypass(rest)
        return channel_shuffle(torch.cat([out, rest], dim=1), self.partial_channels)


class SearchCell(nn.Module):
    """A DARTS cell: two preprocessed inputs, `nodes` intermediate nodes, mixed edges."""

    def __init__(
        self,
        nodes: int,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        partial_channels: int = 1,
    ) -> None:
        super().__init__()
        self.nodes = nodes
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, channels, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(channels, 2 if reduction and j < 2 else 1, partial_channels)
            for i in range(nodes)
            for j in range(2 + i)
        )

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        edge_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args: the two cell inputs, softmaxed op weights (edges × ops), optional β."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.nodes):
            terms = []
            for j, h in enumerate(states):
                out = self.edges[offset + j](h, weights[offset + j])
                if edge_weights is not None:
                    out = edge_weights[offset + j] * out
                terms.append(out)
            offset += len(states)
            states.append(sum(terms))
        return torch.cat(states[2:], dim=1)


class _ArchitectureMixin(nn.Module):
    """α bookkeeping shared by both supernets: groups, softmaxes, derivation."""

    nodes: int
    partial_channels: int
    group_names: tuple[str, ...]

    def _init_architecture(self, groups: tuple[str, ...]) -> None:
        self.group_names = groups
        edges = num_edges(self.nodes)
        self.alphas = nn.ParameterDict(
            {g: nn.Parameter(1e-3 * torch.randn(edges, len(PRIMITIVES))) for g in groups}
        )
        # PC-DARTS edge weights β: only present with partial channels.
        self.betas = nn.ParameterDict(
            {g: nn.Parameter(1e-3 * torch.randn(edges)) for g in groups}
            if self.partial_channels > 1
            else {}
        )

    def alpha_groups(self) -> dict[str, list[nn.Parameter]]:
        """Architecture parameters per α group (α and, with PC-DARTS, β of that group)."""
        groups = {g: [self.alphas[g]] for g in self.group_names}
        for g in self.betas:
            groups[g].append(self.betas[g])
        return groups

    def architecture_parameters(self) -> list[nn.Parameter]:
        """Every architecture parameter, in group order."""
        return [p for params in self.alpha_groups().values() for p in params]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an architecture parameter."""
        arch = {id(p) for p in self.architecture_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def _cell_weights(self, group: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        weights = F.softmax(self.alphas[group], dim=-1)
        if group in self.betas:
            return weights, node_normalised_edge_weights(self.betas[group], self.nodes)
        return weights, None

    def alpha_probabilities(self) -> dict[str, torch.Tensor]:
        """Softmaxed op weights per group (detached, edges × ops)."""
        return {g: F.softmax(self.alphas[g].detach(), dim=-1) for g in self.group_names}

    def genotype(self) -> Genotype:
        """Derives the discrete genotype from the current architecture parameters."""
        alphas = {g: self.alphas[g].detach().float().cpu() for g in self.group_names}
        edge_weights = None
        if self.betas:
            edge_weights = {
                g: node_normalised_edge_weights(self.betas[g].detach().float().cpu(), self.nodes)
                for g in self.group_names
            }
        return derive_genotype(alphas, nodes=self.nodes, edge_weights=edge_weights)


class SearchBackbone(nn.Module):
    """Stem (conv 3×3 to 3C + BN) and `layers` search cells; returns the last two states."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        layers: int,
        nodes: int,
        partial_channels: int,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        c_curr = stem_multiplier * channels
        self.stem = darts_stem(in_channels, c_curr)
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, channels
        reductions = reduction_layers(layers)
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            self.cells.append(
                SearchCell(
                    nodes, c_prev_prev, c_prev, c_curr, reduction, reduction_prev, partial_channels
                )
            )
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, nodes * c_curr
        self.out_channels = (c_prev_prev, c_prev)
        self.cell_channels = c_curr
        self.last_is_reduction = reduction_prev

    def forward(
        self,
        x: torch.Tensor,
        normal: tuple[torch.Tensor, torch.Tensor | None],
        reduce: tuple[torch.Tensor, torch.Tensor | None],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            weights, edge_weights = reduce if cell.reduction else normal
            s0, s1 = s1, cell(s0, s1, weights, edge_weights)
        return s0, s1


class HeadStage(nn.Module):
    """A BBN branch's own last stage: searched normal cells, global pooling, a linear layer."""

    def __init__(
        self,
        cells: int,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction_prev: bool,
        nodes: int,
        num_classes: int,
        partial_channels: int,
    ) -> None:
        super().__init__()
        self.cells = nn.ModuleList()
        for _ in range(cells):
            self.cells.append(
                SearchCell(
                    nodes, c_prev_prev, c_prev, channels, False, reduction_prev, partial_channels
                )
            )
            reduction_prev = False
            c_prev_prev, c_prev = c_prev, nodes * channels
        self.classifier = nn.Linear(c_prev, num_classes)

    def features(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        edge_weights: torch.Tensor | None,
    ) -> torch.Tensor:
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights, edge_weights)
        return F.adaptive_avg_pool2d(s1, 1).flatten(1)


class DartsSupernet(_ArchitectureMixin):
    """Plain DARTS supernet: backbone, global pooling, one linear classifier."""

    is_bbn = False

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: int = 16,
        layers: int = 8,
        nodes: int = 4,
        partial_channels: int = 1,
    ) -> None:
        super().__init__()
        self.nodes = nodes
        self.partial_channels = partial_channels
        self.backbone = SearchBackbone(in_channels, channels, layers, nodes, partial_channels)
        self.classifier = nn.Linear(self.backbone.out_channels[1], num_classes)
        self._init_architecture(BACKBONE_GROUPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised images."""
        _, s1 = self.backbone(
            x, self._cell_weights("backbone_normal"), self._cell_weights("backbone_reduce")
        )
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


class BbnDartsSupernet(_ArchitectureMixin):
    """BBN-DARTS supernet: a searched backbone shared by two branches, each with its own
    searched head stage and classifier (conventional and re-balancing).

    Training logits mix the branches: z = μ·W_cᵀf_c + (1−μ)·W_rᵀf_r (SPEC §2). As in BBN's
    code, each branch's batch goes through the shared backbone in its own pass, so the
    backbone's BatchNorm batch statistics are per branch; with ``joint_batch`` both batches
    go through in one concatenated pass (statistics of the union; one pass is cheaper).
    """

    is_bbn = True

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: int = 16,
        layers: int = 8,
        nodes: int = 4,
        partial_channels: int = 1,
        head_cells: int = 1,
        joint_batch: bool = False,
    ) -> None:
        super().__init__()
        self.joint_batch = joint_batch
        self.nodes = nodes
        self.partial_channels = partial_channels
        self.backbone = SearchBackbone(in_channels, channels, layers, nodes, partial_channels)
        c_pp, c_p = self.backbone.out_channels
        head_args = (
            head_cells,
            c_pp,
            c_p,
            self.backbone.cell_channels,
            self.backbone.last_is_reduction,
            nodes,
            num_classes,
            partial_channels,
        )
        self.head_conventional = HeadStage(*head_args)
        self.head_rebalancing = HeadStage(*head_args)
        self._init_architecture(BACKBONE_GROUPS + HEAD_GROUPS)

    def branch_logits(
        self, x_conventional: torch.Tensor, x_rebalancing: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each branch's un-mixed logits W_cᵀf_c and W_rᵀf_r (one backbone pass per branch,
        or one joint pass with ``joint_batch``)."""
        normal = self._cell_weights("backbone_normal")
        reduce = self._cell_weights("backbone_reduce")
        if self.joint_batch:
            n = x_conventional.shape[0]
            s0, s1 = self.backbone(torch.cat([x_conventional, x_rebalancing]), normal, reduce)
            conventional, rebalancing = (s0[:n], s1[:n]), (s0[n:], s1[n:])
        else:
            conventional = self.backbone(x_conventional, normal, reduce)
            rebalancing = self.backbone(x_rebalancing, normal, reduce)
        f_c = self.head_conventional.features(
            *conventional, *self._cell_weights("head_conventional")
        )
        f_r = self.head_rebalancing.features(*rebalancing, *self._cell_weights("head_rebalancing"))
        return self.head_conventional.classifier(f_c), self.head_rebalancing.classifier(f_r)

    def mixed_logits(
        self, x_conventional: torch.Tensor, x_rebalancing: torch.Tensor, mixing_ratio: float
    ) -> torch.Tensor:
        """Training logits z = μ·W_cᵀf_c + (1−μ)·W_rᵀf_r."""
        z_c, z_r = self.branch_logits(x_conventional, x_rebalancing)
        return mixing_ratio * z_c + (1.0 - mixing_ratio) * z_r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Test-time logits: both branches see the same images, μ = 0.5."""
        s0, s1 = self.backbone(
            x, self._cell_weights("backbone_normal"), self._cell_weights("backbone_reduce")
        )
        f_c = self.head_conventional.features(s0, s1, *self._cell_weights("head_conventional"))
        f_r = self.head_rebalancing.features(s0, s1, *self._cell_weights("head_rebalancing"))
        return 0.5 * self.head_conventional.classifier(f_c) + 0.5 * (
            self.head_rebalancing.classifier(f_r)
        )


Supernet = DartsSupernet | BbnDartsSupernet
