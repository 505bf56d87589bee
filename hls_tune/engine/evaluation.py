"""Evaluation of a model on a split, and the long-tailed test metrics: top-1, balanced,
per-class and many/medium/few-shot accuracy.

SPEC §3: top-1 on the balanced test set, balanced (mean per-class) accuracy, and the mean
accuracy of the many-shot (> many_above training images), medium-shot and few-shot
(< few_below) classes. Used by `train` and `adapt`; `search` reports the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hls_tune.engine.data import DeviceImages, LongTailData


@torch.no_grad()
def evaluate(
    model: nn.Module, images: DeviceImages, num_classes: int, batch_size: int
) -> tuple[float, float, tuple[float, ...]]:
    """Top-1, balanced (mean per-class) accuracy and per-class accuracy on a split."""
    was_training = model.training
    model.eval()
    correct = torch.zeros(num_classes, device=images.labels.device)
    total = torch.zeros(num_classes, device=images.labels.device)
    for x, y in images.batches_for_eval(batch_size):
        hit = (model(x).argmax(1) == y).float()
        correct.index_add_(0, y, hit)
        total.index_add_(0, y, torch.ones_like(hit))
    model.train(was_training)
    per_class = (correct / total.clamp(min=1)).tolist()
    present = [acc for acc, n in zip(per_class, total.tolist(), strict=True) if n > 0]
    top1 = float(correct.sum() / total.sum().clamp(min=1))
    balanced = sum(present) / max(1, len(present))
    return top1, balanced, tuple(per_class)


def shot_accuracy(per_class: Sequence[float], shot_group: Sequence[str]) -> dict[str, float]:
    """Mean per-class accuracy of each shot group present (many, medium, few).

    Args:
        per_class: accuracy of each class.
        shot_group: "many", "medium" or "few" for each class (`LongTailData.shot_group`).

    Example:
        >>> shot_accuracy([1.0, 0.5, 0.0], ["many", "many", "few"])
        {'many': 0.75, 'few': 0.0}
    """
    groups: dict[str, list[float]] = {}
    for accuracy, group in zip(per_class, shot_group, strict=True):
        groups.setdefault(group, []).append(accuracy)
    return {group: sum(values) / len(values) for group, values in groups.items()}


@dataclass(frozen=True)
class LongTailMetrics:
    """A model's figures on the balanced test set.

    Args:
        accuracy: top-1.
        balanced_accuracy: mean per-class accuracy.
        per_class_accuracy: accuracy of each class.
        shot_accuracy: mean accuracy of the many-, medium- and few-shot classes present.
    """

    accuracy: float
    balanced_accuracy: float
    per_class_accuracy: tuple[float, ...]
    shot_accuracy: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """The figures under the keys `SearchResult.metrics` uses (test_accuracy, ...)."""
        return {
            "test_accuracy": self.accuracy,
            "test_balanced_accuracy": self.balanced_accuracy,
            "test_per_class_accuracy": list(self.per_class_accuracy),
            "shot_accuracy": dict(self.shot_accuracy),
        }


def longtail_metrics(
    model: nn.Module, test: DeviceImages, data: LongTailData, batch_size: int = 256
) -> LongTailMetrics:
    """Evaluates `model` on the balanced test set (eval mode; the mode is restored).

    Args:
        model: maps normalised images to logits.
        test: the test images on the model's device.
        data: the long-tailed data, for the number of classes and the shot groups.
        batch_size: images per evaluation batch.
    """
    top1, balanced, per_class = evaluate(model, test, data.num_classes, batch_size)
    return LongTailMetrics(top1, balanced, per_class, shot_accuracy(per_class, data.shot_group))
