"""hls_tune/study/trial_attrs.py: what a trial records of its search, per epoch."""

from __future__ import annotations

import pytest

from hls_tune import engine
from hls_tune.study.trial_attrs import history_attrs
from tests.support.tiny_search import tiny_config


@pytest.fixture(scope="module")
def history():
    return engine.run_search(tiny_config(method="hls", epochs=2)).history


def test_the_history_keeps_the_curves_the_papers_figures_need(history):
    """Validation loss, each BBN branch's loss and each α group's movement, per epoch."""
    attrs = history_attrs(history)
    assert attrs["val_loss_per_epoch"] == [m.val_loss for m in history]
    assert attrs["train_loss_per_epoch"] == [m.train_loss for m in history]
    for branch in ("conventional", "rebalancing"):
        assert attrs[f"branch_loss_{branch}_per_epoch"] == [
            m.branch_losses[branch] for m in history
        ]
    for group in ("backbone_normal", "backbone_reduce", "head_conventional", "head_rebalancing"):
        assert attrs[f"alpha_movement_{group}_per_epoch"] == [
            m.alpha_movement[group] for m in history
        ]
        assert attrs[f"alpha_lr_{group}_per_epoch"] == [m.alpha_lrs[group] for m in history]


def test_a_plain_method_records_no_branch_losses():
    history = engine.run_search(tiny_config(method="darts", epochs=1)).history
    attrs = history_attrs(history)
    assert not any(key.startswith("branch_loss_") for key in attrs)
    assert attrs["mixing_ratio_per_epoch"] == [None]
