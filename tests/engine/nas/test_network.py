"""hls_tune/engine/nas/network.py: the discrete networks, their size and BBN heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hls_tune.engine.nas.genotype import Genotype, builtin_genotype
from hls_tune.engine.nas.network import (
    BbnGenotypeNetwork,
    GenotypeNetwork,
    count_multiply_adds,
    count_parameters,
)
from hls_tune.engine.nas.primitives import DilConv, SepConv
from tests.support.genotypes import BBN_GENOTYPE


def test_the_darts_v2_evaluation_network_has_the_published_size_and_an_auxiliary_head():
    net = GenotypeNetwork(builtin_genotype("darts_v2"), 3, 10, image_size=32)
    assert net.has_auxiliary
    assert count_parameters(net) == pytest.approx(3.3e6, rel=0.03)  # SPEC §1: 3.3 M
    small = GenotypeNetwork(builtin_genotype("darts_v2"), 1, 10, image_size=8, channels=4, layers=3)
    assert not small.has_auxiliary  # 8×8 digits are 2×2 at cell 2L//3: too small


def test_multiply_adds_count_convolutions_and_linear_layers():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(32, 3))
    assert count_multiply_adds(model, (1, 4, 4)) == 1 * 2 * 9 * 16 + 32 * 3


def test_bbn_heads_use_the_genotype_head_cells_and_average_the_branches_at_test_time():
    genotype = Genotype.from_dict(BBN_GENOTYPE)
    torch.manual_seed(0)
    net = BbnGenotypeNetwork(genotype, 1, 10, image_size=8, channels=4, layers=3).eval()
    conventional = net.head_conventional.cells[0].ops
    assert isinstance(conventional[0], SepConv) and isinstance(conventional[1], DilConv)
    assert not any(isinstance(op, SepConv) for op in net.head_rebalancing.cells[0].ops)
    x = torch.randn(3, 1, 8, 8)
    z_c, z_r, aux = net.branch_logits(x, x)
    assert aux is None
    torch.testing.assert_close(net(x), 0.5 * z_c + 0.5 * z_r)
    plain = BbnGenotypeNetwork(builtin_genotype("darts_v2"), 1, 10, 8, channels=4, layers=3)
    assert len(plain.head_conventional.cells[0].ops) == 8  # the normal cell in both heads
