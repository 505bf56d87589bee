"""hls_tune/engine/search.py: every method runs, resume is exact, a non-finite loss stops it."""

from __future__ import annotations

import pytest
import torch

from hls_tune import engine
from hls_tune.engine.epochs import RunHooks
from hls_tune.engine.schedules import HLSSchedule, LevelSchedule, MixingRatio
from hls_tune.engine.search import Search, _loss_and_accuracy
from hls_tune.engine.settings import METHODS
from hls_tune.errors import ConfigError, NonFiniteLossError
from tests.support.tiny_search import tiny_config

CPU = torch.device("cpu")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs_an_epoch_and_reports_its_metrics(method, data):
    config = tiny_config(method=method, epochs=1, head_epochs=1, adapt_alpha_epochs=1)
    seen = []
    result = engine.run_search(
        config, data=data, hooks=RunHooks(on_epoch=lambda m: seen.append(m) or True)
    )
    assert len(seen) == config.total_epochs and result.history == tuple(seen)
    metrics = seen[0]
    assert 0.0 <= metrics.val_accuracy <= 1.0 and metrics.train_loss > 0
    assert len(metrics.val_per_class_accuracy) == data.num_classes
    assert result.genotype == seen[-1].genotype
    assert set(result.shot_accuracy) <= {"many", "medium", "few"}
    assert result.test_accuracy is not None
    if method in ("bbn_darts", "hls"):
        assert metrics.mixing_ratio == pytest.approx(1.0)  # cosine μ at t = 0
        assert (
            set(metrics.alpha_lrs)
            == set(metrics.alphas)
            == {"backbone_normal", "backbone_reduce", "head_conventional", "head_rebalancing"}
        )
        assert result.genotype.is_bbn
    else:
        assert metrics.mixing_ratio is None
        assert set(metrics.alpha_lrs) == {"backbone_normal", "backbone_reduce"}
        assert not result.genotype.is_bbn


def test_hls_sets_each_group_learning_rate_from_the_schedule(data):
    schedule = HLSSchedule(shared=LevelSchedule("cosine", b1=0.2), mixing=MixingRatio("parabolic"))
    config = tiny_config(epochs=2, schedule=schedule)
    result = engine.run_search(config, data=data)
    second = result.history[1]
    expected = config.schedule.alpha_lrs(config.alpha_lr, 0.5)
    assert second.alpha_lrs == pytest.approx(expected)
    # the conventional head follows μ and the re-balancing head 1 − μ
    assert second.alpha_lrs["head_conventional"] != second.alpha_lrs["head_rebalancing"]


def test_bbn_darts_uses_one_alpha_learning_rate_for_every_group(data):
    result = engine.run_search(tiny_config(method="bbn_darts", epochs=2), data=data)
    for metrics in result.history:
        assert set(metrics.alpha_lrs.values()) == {3e-3}


def test_architecture_parameters_move_during_search(data):
    result = engine.run_search(tiny_config(epochs=1), data=data)
    uniform = 1 / 8
    probabilities = torch.tensor(result.history[0].alphas["backbone_normal"])
    assert (probabilities - uniform).abs().max() > 1e-3


def test_callback_returning_false_stops_the_run_without_touching_the_test_set(data):
    result = engine.run_search(
        tiny_config(epochs=3), data=data, hooks=RunHooks(on_epoch=lambda m: False)
    )
    assert len(result.history) == 1 and result.stopped_early
    assert result.test_accuracy is None


def test_resuming_from_a_checkpoint_reproduces_the_uninterrupted_run(data, tmp_path):
    config = tiny_config(epochs=2)
    straight = engine.run_search(config, data=data)
    ckpt = tmp_path / "search.pt"
    first = engine.run_search(
        config, data=data, hooks=RunHooks(on_epoch=lambda m: False), checkpoint=ckpt
    )
    assert first.stopped_early and ckpt.exists()
    resumed = engine.run_search(config, data=data, checkpoint=ckpt)
    assert resumed.resumed_from_epoch == 1
    assert len(resumed.history) == 2
    assert resumed.history[1].alphas == straight.history[1].alphas
    assert resumed.history[1].train_loss == straight.history[1].train_loss
    assert resumed.history[1].val_accuracy == straight.history[1].val_accuracy
    assert resumed.genotype == straight.genotype
    assert resumed.test.per_class_accuracy == straight.test.per_class_accuracy


def test_a_checkpoint_from_other_settings_is_refused(data, tmp_path):
    ckpt = tmp_path / "search.pt"
    engine.run_search(
        tiny_config(epochs=2), data=data, hooks=RunHooks(on_epoch=lambda m: False), checkpoint=ckpt
    )
    with pytest.raises(ConfigError, match="other settings"):
        engine.run_search(tiny_config(epochs=2, alpha_lr=1e-3), data=data, checkpoint=ckpt)


def test_checkpoint_loads_with_weights_only(data, tmp_path):
    ckpt = tmp_path / "search.pt"
    engine.run_search(tiny_config(epochs=1), data=data, checkpoint=ckpt)
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 0 and len(state["history"]) == 1


def test_non_finite_loss_stops_with_an_error_naming_epoch_and_step(data):
    config = tiny_config(method="darts", epochs=1, weight_lr=1e30, weight_lr_min=1e30)
    with pytest.raises(NonFiniteLossError) as caught:
        engine.run_search(config, data=data)
    assert caught.value.epoch == 0
    assert caught.value.step >= 1  # the first step's loss is computed before any update
    assert f"epoch 0, step {caught.value.step}" in str(caught.value)


def test_second_order_gives_a_different_alpha_update_than_first_order(data):
    first = engine.run_search(tiny_config(method="darts", epochs=1), data=data)
    second = engine.run_search(tiny_config(method="darts", epochs=1, second_order=True), data=data)
    assert first.history[0].alphas != second.history[0].alphas
    assert torch.isfinite(torch.tensor(second.history[0].alphas["backbone_normal"])).all()


def _relative_error(got, expected) -> float:
    difference = sum(((g - e) ** 2).sum() for g, e in zip(got, expected, strict=True))
    return float(torch.sqrt(difference / sum((e**2).sum() for e in expected)))


@pytest.mark.parametrize("fused", [True, False])
def test_the_hessian_vector_product_matches_a_float64_double_backward(data, fused):
    search = Search(tiny_config(method="darts", second_order=True, fused=fused), data, CPU)
    search.model.double()
    x, y, _, _ = search.weight_batches.next()
    batch = (x.double(), y, None, None)
    generator = torch.Generator().manual_seed(1)
    v = [
        torch.randn(w.shape, generator=generator, dtype=torch.float64) for w in search.weight_params
    ]
    loss, _, _ = _loss_and_accuracy(search.model, batch, None, None)
    weight_grads = torch.autograd.grad(loss, search.weight_params, create_graph=True)
    dot = sum((g * u).sum() for g, u in zip(weight_grads, v, strict=True))
    exact = torch.autograd.grad(dot, search.arch_params)
    before = [w.detach().clone() for w in search.weight_params]
    # ReLU and max-pool make the loss piecewise smooth: DARTS' step (‖r v‖ = 0.01) crosses
    # kinks on a tiny supernet, so the formula is checked with a step that stays on one piece.
    estimate = search.hessian_vector_product(batch, v, None, step=1e-5)
    assert _relative_error(estimate, exact) < 1e-6
    assert all(torch.equal(w, b) for w, b in zip(search.weight_params, before, strict=True))


@pytest.mark.parametrize("method", ["darts", "hls"])
def test_the_second_order_alpha_gradient_under_bf16_autocast_is_the_float32_one(data, method):
    searches = {
        amp: Search(tiny_config(method=method, second_order=True, amp=amp), data, CPU)
        for amp in ("off", "bf16")
    }
    assert searches["bf16"].amp_dtype == torch.bfloat16
    alpha_batch = searches["off"].alpha_batches.next()
    weight_batch = searches["off"].weight_batches.next()
    mixing_ratio = 0.7 if method == "hls" else None
    grads = {
        amp: search.alpha_gradients(alpha_batch, weight_batch, mixing_ratio)
        for amp, search in searches.items()
    }
    # Under bf16 the finite difference of the Hessian-vector product is rounding noise
    # (relative error ~7 before the unrolled gradient ran in full precision).
    assert _relative_error(grads["bf16"], grads["off"]) < 1e-5


@pytest.mark.parametrize("method", ["darts", "hls"])
def test_alpha_is_frozen_before_alpha_start_epoch_and_moves_from_it(method, data):
    from hls_tune.engine.search import Search

    config = tiny_config(method=method, epochs=2, alpha_start_epoch=1)
    search = Search(config, data, torch.device("cpu"))
    before = [p.detach().clone() for p in search.arch_params]
    search.train_epoch(0)
    for start, now in zip(before, search.arch_params, strict=True):
        torch.testing.assert_close(now.detach(), start, rtol=0, atol=0)
    search.train_epoch(1)
    assert any(
        not torch.equal(now.detach(), start)
        for start, now in zip(before, search.arch_params, strict=True)
    )


# 0 and 15 of 50 (PC-DARTS' recipe), and a value drawn once (seed 23) between them
@pytest.mark.parametrize("start", [0, 15, __import__("random").Random(23).randrange(1, 50)])
def test_the_preset_heads_get_equal_cumulative_alpha_rates_under_any_alpha_warmup(
    start, data, monkeypatch
):
    """The paper-reading preset's heads follow μ and 1 − μ of a symmetric μ; with the α
    schedule on α-progress their summed rates over the α steps of a run stay equal (to one
    step's rate: a sum over steps is not the integral) whatever the warm-up, as the
    optimizer applies them. Had μ run on training progress, 15 of 50 would give 0.22 : 0.48."""
    from hls_tune.engine.schedules import PAPER_READING
    from hls_tune.engine.search import optimizer_rates

    config = tiny_config(epochs=50, alpha_start_epoch=start, schedule=PAPER_READING)
    search = Search(config, data, CPU)
    applied: list[dict[str, float]] = []
    zero = torch.zeros(())
    # Only the rates are under test: each step records what the α optimizer would apply.
    monkeypatch.setattr(
        search, "alpha_step", lambda *args: applied.append(optimizer_rates(search.alpha_optimizer))
    )
    monkeypatch.setattr(search, "weight_step", lambda *args: (zero, zero, None))
    for epoch in range(config.epochs):
        search.train_epoch(epoch)
    assert len(applied) == (config.epochs - start) * search.steps_per_epoch
    conventional = sum(r["head_conventional"] for r in applied)
    rebalancing = sum(r["head_rebalancing"] for r in applied)
    assert abs(conventional - rebalancing) <= config.alpha_lr + 1e-12
    assert conventional == pytest.approx(config.alpha_lr * len(applied) / 2, rel=0.05)
