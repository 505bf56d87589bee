"""hls_tune/engine/losses.py: class weights for the reweighted losses."""

from __future__ import annotations

import pytest
import torch

from hls_tune.engine.losses import class_loss_weights


def test_reweighting_gives_rare_classes_larger_weights():
    counts = torch.tensor([100, 10, 1])
    for kind in ("inverse", "effective_number"):
        weights = class_loss_weights(counts, kind, 0.999)
        assert weights[0] < weights[1] < weights[2]
        assert weights.mean() == pytest.approx(1.0)
