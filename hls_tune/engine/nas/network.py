"""Discrete networks from a genotype: the DARTS evaluation network and its BBN variant.

`GenotypeNetwork` is DARTS' ``NetworkCIFAR``: a stem, L cells (reductions at L//3 and
2L//3) whose edges are the genotype's ops with affine BatchNorm, drop-path, an auxiliary
head after cell 2L//3, global pooling and a linear classifier. `BbnGenotypeNetwork` shares
that backbone between two branches, each with its own head stage of searched cells
(`head_conventional` / `head_rebalancing`, or the normal cell for a plain genotype) and its
own classifier (SPEC §2). `count_parameters` and `count_multiply_adds` give the sizes
reported next to accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine.nas.genotype import Edge, Genotype
from hls_tune.engine.nas.primitives import FactorizedReduce, Identity, ReLUConvBN, make_op
from hls_tune.engine.nas.supernet import darts_stem, reduction_layers

# The DARTS auxiliary head pools 5×5 with stride 3 and then convolves 2×2: it needs at
# least 8×8 feature maps at cell 2L//3 (CIFAR's 32×32 inputs give exactly 8×8 there).
AUXILIARY_MIN_SIZE = 8


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zeroes whole samples of a branch with probability `drop_prob`, rescaling the rest.

    Args:
        x: a batch N×C×H×W.
        drop_prob: probability of dropping each sample's path, in [0, 1).
    """
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class GenotypeCell(nn.Module):
    """A discrete DARTS cell: two preprocessed inputs, two ops per node, concat of nodes.

    Args:
        edges: the cell's ``(op, input_index)`` pairs, two per node.
        concat: states concatenated into the output (2 .. nodes + 1).
        c_prev_prev: channels of the cell input from two cells back.
        c_prev: channels of the cell input from the previous cell.
        channels: channels of every node.
        reduction: halve the resolution (stride 2 on edges from the cell inputs).
        reduction_prev: the previous cell halved the resolution (input 0 is reduced too).
    """

    def __init__(
        self,
        edges: Sequence[Edge],
        concat: Sequence[int],
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, channels, affine=True)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=True)
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0, affine=True)
        self.inputs = tuple(index for _, index in edges)
        self.concat = tuple(concat)
        self.ops = nn.ModuleList(
            make_op(name, channels, 2 if reduction and index < 2 else 1, affine=True)
            for name, index in edges
        )
        self.out_channels = len(self.concat) * channels

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        """The cell output; `drop_prob` > 0 applies drop-path (training only) to every
        edge that is not an identity."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self.ops) // 2):
            total = None
            for k in (2 * node, 2 * node + 1):
                op = self.ops[k]
                h = op(states[self.inputs[k]])
                if self.training and drop_prob > 0.0 and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS' auxiliary classifier on 8×8-or-larger feature maps (adaptive pooling makes
    it accept sizes above 8 too)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Auxiliary logits."""
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def _feature_size(image_size: int, halvings: int) -> int:
    # Every reduction (stride-2 op with "same" padding, or a factorized reduce) gives ⌈s/2⌉.
    for _ in range(halvings):
        image_size = (image_size + 1) // 2
    return image_size


class _Backbone(nn.Module):
    """Stem (conv 3×3 to 3C + BN) and L discrete cells; the auxiliary head, when present,
    reads the output of cell 2L//3."""

    def __init__(
        self,
        genotype: Genotype,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: int,
        layers: int,
        auxiliary: bool,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        c_curr = stem_multiplier * channels
        self.stem = darts_stem(in_channels, c_curr)
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, channels
        reductions = reduction_layers(layers)
        self.cells = nn.ModuleList()
        reduction_prev = False
        self.auxiliary_at = 2 * layers // 3
        aux_channels = None
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            edges, concat = (
                (genotype.reduce, genotype.reduce_concat)
                if reduction
                else (genotype.normal, genotype.normal_concat)
            )
            cell = GenotypeCell(
                edges, concat, c_prev_prev, c_prev, c_curr, reduction, reduction_prev
            )
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.out_channels
            if i == self.auxiliary_at:
                aux_channels = c_prev
        self.out_channels = (c_prev_prev, c_prev)
        self.cell_channels = c_curr
        self.last_is_reduction = reduction_prev
        halvings = sum(1 for r in reductions if r <= self.auxiliary_at)
        self.auxiliary_size = _feature_size(image_size, halvings)
        self.auxiliary_head = (
            AuxiliaryHead(aux_channels, num_classes)
            if auxiliary and aux_channels is not None and self.auxiliary_size >= AUXILIARY_MIN_SIZE
            else None
        )

    def forward(
        self, x: torch.Tensor, drop_prob: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(s0, s1) after the last cell and the auxiliary logits (training only, else None)."""
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, drop_prob)
            if i == self.auxiliary_at and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        return s0, s1, aux


class GenotypeNetwork(nn.Module):
    """The DARTS evaluation network of a genotype's normal and reduction cells.

    The auxiliary head is built only when `auxiliary` is set and the feature maps at cell
    2L//3 are at least `AUXILIARY_MIN_SIZE` (8) pixels wide: 32×32 CIFAR images give 8×8
    there, 8×8 digits give 2×2 and get no auxiliary head (`has_auxiliary` says which).

    Args:
        genotype: the cells; only `normal` and `reduce` are used.
        in_channels: image channels.
        num_classes: number of classes.
        image_size: input height (decides whether the auxiliary head fits).
        channels: C, channels of the first cells (DARTS: 36).
        layers: L, number of cells (DARTS: 20).
        auxiliary: build the auxiliary head where it fits.

    Example:
        >>> from hls_tune.engine.nas.genotype import builtin_genotype
        >>> net = GenotypeNetwork(builtin_genotype("darts_v2"), 3, 10, 32, channels=8, layers=5)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    is_bbn = False

    def __init__(
        self,
        genotype: Genotype,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: int = 36,
        layers: int = 20,
        auxiliary: bool = True,
    ) -> None:
        super().__init__()
        self.genotype = genotype
        self.drop_path_prob = 0.0
        self.backbone = _Backbone(
            genotype, in_channels, num_classes, image_size, channels, layers, auxiliary
        )
        self.classifier = nn.Linear(self.backbone.out_channels[1], num_classes)

    @property
    def has_auxiliary(self) -> bool:
        """Whether the auxiliary head exists."""
        return self.backbone.auxiliary_head is not None

    def forward_with_auxiliary(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and, in training mode with an auxiliary head, the auxiliary logits."""
        _, s1, aux = self.backbone(x, self.drop_path_prob)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1)), aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of normalised images."""
        return self.forward_with_auxiliary(x)[0]


class _HeadStage(nn.Module):
    """One BBN branch's own stage: discrete normal-type cells, pooling, a classifier."""

    def __init__(
        self,
        edges: Sequence[Edge],
        concat: Sequence[int],
        cells: int,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction_prev: bool,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.cells = nn.ModuleList()
        for _ in range(cells):
            cell = GenotypeCell(edges, concat, c_prev_prev, c_prev, channels, False, reduction_prev)
            self.cells.append(cell)
            reduction_prev = False
            c_prev_prev, c_prev = c_prev, cell.out_channels
        self.classifier = nn.Linear(c_prev, num_classes)

    def features(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        """The branch's pooled feature vector f."""
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, drop_prob)
        return F.adaptive_avg_pool2d(s1, 1).flatten(1)


def head_cells_of(
    genotype: Genotype,
) -> tuple[tuple[Sequence[Edge], Sequence[int]], tuple[Sequence[Edge], Sequence[int]]]:
    """The (edges, concat) of the conventional and the re-balancing head: the genotype's
    head cells, or its normal cell for both when it has none."""
    if (
        genotype.head_conventional is None
        or genotype.head_rebalancing is None
        or genotype.head_conventional_concat is None
        or genotype.head_rebalancing_concat is None
    ):
        return (genotype.normal, genotype.normal_concat), (genotype.normal, genotype.normal_concat)
    return (
        (genotype.head_conventional, genotype.head_conventional_concat),
        (genotype.head_rebalancing, genotype.head_rebalancing_concat),
    )


class BbnGenotypeNetwork(nn.Module):
    """A BBN network of discrete cells: a shared backbone and two branch head stages.

    The conventional head is built from `genotype.head_conventional` and the re-balancing
    head from `genotype.head_rebalancing`; a plain genotype (no heads) uses its normal cell
    for both. Training logits mix the branches, z = μ·W_cᵀf_c + (1−μ)·W_rᵀf_r; at test time
    both branches see the same images and μ = 0.5 (SPEC §2). As in BBN's code (and the
    search supernet), each branch's batch goes through the shared backbone in its own pass,
    so BatchNorm batch statistics are per branch; with ``joint_batch`` both batches go
    through in one concatenated pass. The backbone and the auxiliary head follow
    `GenotypeNetwork`.

    Args:
        genotype: backbone cells and, optionally, the two head cells.
        in_channels: image channels.
        num_classes: number of classes.
        image_size: input height (decides whether the auxiliary head fits).
        channels: C of the first cells.
        layers: L, cells of the shared backbone (reductions at L//3 and 2L//3).
        head_cells: cells in each branch's head stage.
        auxiliary: build the auxiliary head where it fits.
        joint_batch: one backbone pass over both branches' batches (statistics of the
            union; cheaper) instead of one pass per branch.
    """

    is_bbn = True

    def __init__(
        self,
        genotype: Genotype,
        in_channels: int,
        num_classes: int,
        image_size: int,
        channels: int = 36,
        layers: int = 20,
        head_cells: int = 1,
        auxiliary: bool = True,
        joint_batch: bool = False,
    ) -> None:
        super().__init__()
        self.genotype = genotype
        self.joint_batch = joint_batch
        self.drop_path_prob = 0.0
        self.backbone = _Backbone(
            genotype, in_channels, num_classes, image_size, channels, layers, auxiliary
        )
        c_pp, c_p = self.backbone.out_channels
        conventional, rebalancing = head_cells_of(genotype)
        common = (
            head_cells,
            c_pp,
            c_p,
            self.backbone.cell_channels,
            self.backbone.last_is_reduction,
            num_classes,
        )
        self.head_conventional = _HeadStage(*conventional, *common)
        self.head_rebalancing = _HeadStage(*rebalancing, *common)

    @property
    def has_auxiliary(self) -> bool:
        """Whether the auxiliary head exists."""
        return self.backbone.auxiliary_head is not None

    def branch_logits(
        self, x_conventional: torch.Tensor, x_rebalancing: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """W_cᵀf_c, W_rᵀf_r (one backbone pass per branch, or one joint pass with
        ``joint_batch``) and the auxiliary logits of both batches (conventional rows first;
        None without the head)."""
        n = x_conventional.shape[0]
        drop = self.drop_path_prob
        if self.joint_batch:
            s0, s1, aux = self.backbone(torch.cat([x_conventional, x_rebalancing]), drop)
            conventional, rebalancing = (s0[:n], s1[:n]), (s0[n:], s1[n:])
        else:
            *conventional, aux_c = self.backbone(x_conventional, drop)
            *rebalancing, aux_r = self.backbone(x_rebalancing, drop)
            aux = None if aux_c is None else torch.cat([aux_c, aux_r])
        f_c = self.head_conventional.features(*conventional, drop)
        f_r = self.head_rebalancing.features(*rebalancing, drop)
        return self.head_conventional.classifier(f_c), self.head_rebalancing.classifier(f_r), aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Test-time logits: both branches see the same images, μ = 0.5."""
        s0, s1, _ = self.backbone(x, self.drop_path_prob)
        f_c = self.head_conventional.features(s0, s1, self.drop_path_prob)
        f_r = self.head_rebalancing.features(s0, s1, self.drop_path_prob)
        return 0.5 * self.head_conventional.classifier(f_c) + 0.5 * (
            self.head_rebalancing.classifier(f_r)
        )


Network = GenotypeNetwork | BbnGenotypeNetwork


def count_parameters(model: nn.Module) -> int:
    """Parameters of the test-time network: the auxiliary head is left out, as DARTS does."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary_head" not in name)


def count_multiply_adds(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of one test-time forward pass on one image (the "FLOPs" NAS papers
    report, e.g. DARTS' 574M on ImageNet), counted by torch's `FlopCounterMode`.

    FlopCounterMode counts convolutions and matrix products (2 FLOPs per multiply-add);
    BatchNorm, pooling, additions and activations are not counted, as in the papers.

    Args:
        model: the network; it is run in eval mode and restored to its previous mode.
        input_shape: (channels, height, width) of one image.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    parameter = next(model.parameters())
    x = torch.zeros(1, *input_shape, device=parameter.device, dtype=parameter.dtype)
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
