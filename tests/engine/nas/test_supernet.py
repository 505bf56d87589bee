"""The search supernets: shapes, α groups, gradients, partial channels, derivation."""

from __future__ import annotations

import pytest
import torch

from hls_tune.engine.nas.genotype import PRIMITIVES
from hls_tune.engine.nas.supernet import (
    BbnDartsSupernet,
    DartsSupernet,
    MixedOp,
    num_edges,
    reduction_layers,
)
from hls_tune.engine.schedules import ALPHA_GROUPS


def tiny(kind: type, **kwargs):
    torch.manual_seed(0)
    return kind(in_channels=3, num_classes=5, channels=4, layers=3, **kwargs)


def test_a_four_node_cell_has_fourteen_edges_and_reductions_at_thirds():
    assert num_edges(4) == 14
    assert reduction_layers(8) == {2, 5}
    assert reduction_layers(3) == {1, 2}


def test_alpha_tensors_are_fourteen_by_eight_and_near_zero():
    model = tiny(BbnDartsSupernet)
    for group, alpha in model.alphas.items():
        assert alpha.shape == (14, len(PRIMITIVES)), group
        assert alpha.abs().max() < 1e-2


@pytest.mark.parametrize("kind", [DartsSupernet, BbnDartsSupernet])
def test_alpha_groups_are_disjoint_and_cover_every_architecture_parameter(kind):
    model = tiny(kind, partial_channels=2)
    groups = model.alpha_groups()
    assert set(groups) <= set(ALPHA_GROUPS)
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids)), "a parameter is in two groups"
    named_arch = {id(p) for n, p in model.named_parameters() if n.startswith(("alphas.", "betas."))}
    assert set(ids) == named_arch
    weights = {id(p) for p in model.weight_parameters()}
    assert not weights & set(ids)
    assert weights | set(ids) == {id(p) for p in model.parameters()}


def test_bbn_supernet_has_all_four_groups_and_plain_only_the_backbone():
    assert set(tiny(BbnDartsSupernet).alpha_groups()) == set(ALPHA_GROUPS)
    assert set(tiny(DartsSupernet).alpha_groups()) == {"backbone_normal", "backbone_reduce"}


@pytest.mark.parametrize("partial_channels", [1, 2])
def test_plain_supernet_forward_and_backward_reach_every_alpha(partial_channels):
    model = tiny(DartsSupernet, partial_channels=partial_channels)
    x = torch.randn(4, 3, 8, 8)
    logits = model(x)
    assert logits.shape == (4, 5)
    logits.sum().backward()
    for p in model.architecture_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
        assert p.grad.abs().sum() > 0


def test_bbn_mixed_logits_are_the_mu_weighted_sum_of_branch_logits():
    model = tiny(BbnDartsSupernet).eval()
    x_c, x_r = torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8)
    z_c, z_r = model.branch_logits(x_c, x_r)
    mixed = model.mixed_logits(x_c, x_r, 0.3)
    torch.testing.assert_close(mixed, 0.3 * z_c + 0.7 * z_r)


def test_bbn_test_time_logits_average_both_heads_on_the_same_images():
    model = tiny(BbnDartsSupernet).eval()
    x = torch.randn(3, 3, 8, 8)
    z_c, z_r = model.branch_logits(x, x)
    torch.testing.assert_close(model(x), 0.5 * z_c + 0.5 * z_r)


def test_head_alphas_get_gradient_only_from_their_own_branch():
    model = tiny(BbnDartsSupernet)
    x_c, x_r = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    z_c, _ = model.branch_logits(x_c, x_r)
    z_c.sum().backward()
    assert model.alphas["head_conventional"].grad.abs().sum() > 0
    assert model.alphas["head_rebalancing"].grad is None


def test_mixed_op_with_weight_only_on_none_outputs_zero():
    op = MixedOp(4, stride=1)
    weights = torch.zeros(len(PRIMITIVES))
    weights[0] = 1.0
    out = op(torch.randn(2, 4, 6, 6), weights)
    assert torch.count_nonzero(out) == 0


def test_mixed_op_with_weight_only_on_skip_is_identity():
    op = MixedOp(4, stride=1)
    weights = torch.zeros(len(PRIMITIVES))
    weights[PRIMITIVES.index("skip_connect")] = 1.0
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(op(x, weights), x)


def test_partial_channel_edge_passes_the_bypassed_channels_through_shuffled():
    op = MixedOp(4, stride=1, partial_channels=2)
    weights = torch.zeros(len(PRIMITIVES))  # all candidate outputs zero
    x = torch.randn(1, 4, 5, 5)
    out = op(x, weights)
    # channels [op0, op1, x2, x3] shuffled in 2 groups → [op0, x2, op1, x3]
    torch.testing.assert_close(out[:, 1], x[:, 2])
    torch.testing.assert_close(out[:, 3], x[:, 3])
    assert torch.count_nonzero(out[:, [0, 2]]) == 0


def test_reduction_cells_halve_the_resolution():
    model = tiny(DartsSupernet)
    normal = model._cell_weights("backbone_normal")
    reduce = model._cell_weights("backbone_reduce")
    _, s1 = model.backbone(torch.randn(1, 3, 16, 16), normal, reduce)
    assert s1.shape[-1] == 4  # two reductions: 16 → 8 → 4


@pytest.mark.parametrize("kind", [DartsSupernet, BbnDartsSupernet])
def test_every_derived_genotype_is_valid_and_names_the_right_cells(kind):
    model = tiny(kind)
    with torch.no_grad():
        for alpha in model.alphas.values():
            alpha.normal_()
    genotype = model.genotype()
    assert len(genotype.normal) == 8 and len(genotype.reduce) == 8
    assert genotype.is_bbn == (kind is BbnDartsSupernet)
    assert all(op != "none" for op, _ in genotype.normal)


def _stem_norm(model: BbnDartsSupernet) -> torch.nn.BatchNorm2d:
    return next(m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))


@pytest.mark.parametrize("fused", [False, True])
def test_bbn_runs_one_backbone_pass_per_branch_so_batchnorm_statistics_are_per_branch(fused):
    """BBN's code: each branch batch normalises with its own batch statistics, so the
    conventional logits do not depend on the re-balancing batch; the joint pass (option)
    mixes both batches into one set of statistics."""
    from hls_tune.engine.nas.fused import FusedBbnDartsSupernet

    kind = FusedBbnDartsSupernet if fused else BbnDartsSupernet
    torch.manual_seed(1)
    x_c = torch.randn(6, 3, 8, 8)
    x_r1, x_r2 = torch.randn(6, 3, 8, 8), 3.0 + 2.0 * torch.randn(6, 3, 8, 8)
    model = tiny(kind).train()
    assert model.joint_batch is False  # BBN's behaviour is the default
    torch.testing.assert_close(model.branch_logits(x_c, x_r1)[0], model.branch_logits(x_c, x_r2)[0])

    joint = tiny(kind, joint_batch=True).train()
    assert not torch.allclose(joint.branch_logits(x_c, x_r1)[0], joint.branch_logits(x_c, x_r2)[0])

    # Running statistics: per branch, the stem's running mean takes two updates (one per
    # branch batch), jointly one update with the union's mean.
    per_branch, together = tiny(kind).train(), tiny(kind, joint_batch=True).train()
    per_branch.branch_logits(x_c, x_r2)
    together.branch_logits(x_c, x_r2)
    assert int(_stem_norm(per_branch).num_batches_tracked) == 2
    assert int(_stem_norm(together).num_batches_tracked) == 1
    assert not torch.allclose(
        _stem_norm(per_branch).running_mean, _stem_norm(together).running_mean
    )
