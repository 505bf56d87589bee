"""Evaluation of a model on a split, and the long-tailed test figures: top-1, balanced,
per-class and many/medium/few-shot accuracy (SPEC §3).

Used by every loop: `evaluate` on the validation split each epoch, `longtail_metrics` on
the balanced test set once a run is done (the one place the test figures are computed).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine.data import DeviceImages, LongTailData
from hls_tune.engine.results import LongTailMetrics, shot_accuracy


class SplitFigures(NamedTuple):
    """A model's figures on one split: top-1, mean per-class accuracy, per-class accuracy
    and the mean cross-entropy loss."""

    accuracy: float
    balanced_accuracy: float
    per_class_accuracy: tuple[float, ...]
    loss: float


@torch.no_grad()
def evaluate(
    model: nn.Module, images: DeviceImages, num_classes: int, batch_size: int
) -> SplitFigures:
    """Evaluates `model` on a split in eval mode (the mode is restored)."""
    was_training = model.training
    model.eval()
    device = images.labels.device
    correct = torch.zeros(num_classes, device=device)
    total = torch.zeros(num_classes, device=device)
    loss = torch.zeros((), device=device)
    for x, y in images.batches_for_eval(batch_size):
        logits = model(x)
        hit = (logits.argmax(1) == y).float()
        correct.index_add_(0, y, hit)
        total.index_add_(0, y, torch.ones_like(hit))
        loss += F.cross_entropy(logits.float(), y, reduction="sum")
    model.train(was_training)
    per_class = (correct / total.clamp(min=1)).tolist()
    present = [acc for acc, n in zip(per_class, total.tolist(), strict=True) if n > 0]
    count = total.sum().clamp(min=1)
    return SplitFigures(
        accuracy=float(correct.sum() / count),
        balanced_accuracy=sum(present) / max(1, len(present)),
        per_class_accuracy=tuple(per_class),
        loss=float(loss / count),
    )


def longtail_metrics(
    model: nn.Module, test: DeviceImages, data: LongTailData, batch_size: int = 256
) -> LongTailMetrics:
    """Evaluates `model` on the balanced test set: top-1, balanced, per-class and
    many/medium/few-shot accuracy (the shot groups of `data`)."""
    figures = evaluate(model, test, data.num_classes, batch_size)
    return LongTailMetrics(
        figures.accuracy,
        figures.balanced_accuracy,
        figures.per_class_accuracy,
        shot_accuracy(figures.per_class_accuracy, data.shot_group),
    )
