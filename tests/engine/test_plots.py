"""hls_tune/engine/plots.py: the α-schedule figure draws each group's own curve."""

from __future__ import annotations

import pytest

from hls_tune.engine import plots


def test_the_schedule_figure_draws_each_groups_own_curve():
    """Per-group schedules: the preset's backbone curve decays, the heads follow μ and
    1 − μ; each line is that group's own lr_g(t), and the title names each family's shape."""
    from hls_tune.engine.settings import SearchConfig

    config = SearchConfig(method="hls", epochs=10)
    figure = plots.schedule_figure(config, points=11)
    lr_axes = next(a for a in figure.axes if a.get_ylabel() == "α learning rate")
    lines = {line.get_label(): line for line in lr_axes.get_lines() if line.get_label()[0] != "_"}
    ts = [i / 10 for i in range(11)]
    for group in ("backbone_normal", "backbone_reduce", "head_conventional", "head_rebalancing"):
        expected = [config.schedule.alpha_lrs(config.alpha_lr, t)[group] for t in ts]
        assert list(lines[group].get_ydata()) == pytest.approx(expected)
    assert lines["backbone_normal"].get_ydata()[-1] == pytest.approx(0.1 * config.alpha_lr)
    assert lines["head_rebalancing"].get_ydata()[-1] == pytest.approx(config.alpha_lr)
    assert "backbone cosine, heads constant" in lr_axes.get_title()


def test_the_schedule_figure_runs_the_alpha_rates_on_alpha_progress():
    """With α frozen until epoch 3 of 10 the α curves span epochs 3-10, where the search
    applies them; μ keeps the whole run."""
    from hls_tune.engine.settings import SearchConfig

    config = SearchConfig(method="hls", epochs=10, alpha_start_epoch=3)
    figure = plots.schedule_figure(config, points=11)
    lr_axes = next(a for a in figure.axes if a.get_ylabel() == "α learning rate")
    curve = next(line for line in lr_axes.get_lines() if line.get_label() == "head_conventional")
    assert curve.get_xdata()[0] == pytest.approx(3.0)
    assert curve.get_xdata()[-1] == pytest.approx(10.0)
    mu_axes = next(a for a in figure.axes if a.get_ylabel().startswith("μ"))
    assert mu_axes.get_lines()[0].get_xdata()[0] == pytest.approx(0.0)


@pytest.fixture(scope="module")
def bbn_history():
    from hls_tune import engine
    from tests.support.tiny_search import tiny_config

    return engine.run_search(tiny_config(method="hls", epochs=2)).history


def test_the_training_figure_draws_the_losses_the_branches_and_the_alpha_movement(bbn_history):
    figure = plots.training_figure(bbn_history)
    loss_axes, move_axes = figure.axes
    lines = {line.get_label(): list(line.get_ydata()) for line in loss_axes.get_lines()}
    assert lines["train"] == [m.train_loss for m in bbn_history]
    assert lines["validation"] == [m.val_loss for m in bbn_history]
    for branch in ("conventional", "rebalancing"):
        assert lines[f"{branch} branch"] == [m.branch_losses[branch] for m in bbn_history]
    moves = {line.get_label(): list(line.get_ydata()) for line in move_axes.get_lines()}
    assert set(moves) == set(bbn_history[0].alpha_movement)
    for group, values in moves.items():
        assert values == [m.alpha_movement[group] for m in bbn_history]
        assert all(v > 0 for v in values)  # α moved in every epoch


def test_the_training_figure_needs_an_epoch():
    with pytest.raises(ValueError, match="at least one finished epoch"):
        plots.training_figure([])
