"""What the search loops hand back: per-epoch metrics (the callback's argument) and the result.

No torch here: a caller (the study layer, a report) reads these without loading the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hls_tune.engine.nas.genotype import Genotype
from hls_tune.engine.settings import SearchConfig


@dataclass(frozen=True)
class EpochMetrics:
    """What one finished epoch hands to the callback.

    Args:
        epoch: index of the finished epoch (0-based).
        epochs: the epoch budget.
        train_loss: mean training loss of the weight steps.
        train_accuracy: mean training accuracy of the weight steps (BBN: μ-weighted).
        val_accuracy: top-1 on the validation set (balanced by default: `data.val_source`).
        val_balanced_accuracy: mean per-class accuracy on the validation split.
        val_per_class_accuracy: per-class validation accuracy.
        mixing_ratio: μ at the start of the epoch (None for plain methods).
        alpha_lrs: each α group's learning rate at the start of the epoch.
        alphas: softmaxed op weights per group at the end of the epoch (edges × ops).
        genotype: the genotype derived at the end of the epoch.
        seconds: wall time of the epoch (training and validation).
    """

    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float
    val_balanced_accuracy: float
    val_per_class_accuracy: tuple[float, ...]
    mixing_ratio: float | None
    alpha_lrs: dict[str, float]
    alphas: dict[str, list[list[float]]]
    genotype: Genotype
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the genotype as its dict)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["genotype"] = self.genotype.to_dict()
        values["val_per_class_accuracy"] = list(self.val_per_class_accuracy)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EpochMetrics:
        """Inverse of `to_dict`."""
        values = dict(values)
        values["genotype"] = Genotype.from_dict(values["genotype"])
        values["val_per_class_accuracy"] = tuple(values["val_per_class_accuracy"])
        return cls(**values)


@dataclass(frozen=True)
class SearchResult:
    """The outcome of one search.

    The test-set figures are None when the run was stopped early by the callback: the
    balanced test set is for final reporting only, never for pruning or selection.
    `source` is adapt_head's shared source supernet (`adapt.SourceSupernet.summary()`:
    cache key, whether this run built it, its search time and genotype); None otherwise.
    """

    config: SearchConfig
    genotype: Genotype
    history: tuple[EpochMetrics, ...]
    stopped_early: bool
    resumed_from_epoch: int | None
    seconds: float
    test_accuracy: float | None = None
    test_balanced_accuracy: float | None = None
    test_per_class_accuracy: tuple[float, ...] | None = None
    shot_accuracy: dict[str, float] | None = None
    source: dict[str, Any] | None = None

    @property
    def val_accuracy(self) -> float:
        """Validation accuracy of the last epoch run."""
        return self.history[-1].val_accuracy if self.history else 0.0

    @property
    def val_balanced_accuracy(self) -> float:
        """Balanced validation accuracy of the last epoch run."""
        return self.history[-1].val_balanced_accuracy if self.history else 0.0

    def metrics(self) -> dict[str, Any]:
        """Final metrics as a JSON-ready dict (no per-epoch history)."""
        return {
            "method": self.config.method,
            "epochs_run": len(self.history),
            "stopped_early": self.stopped_early,
            "resumed_from_epoch": self.resumed_from_epoch,
            "val_accuracy": self.val_accuracy,
            "val_balanced_accuracy": self.val_balanced_accuracy,
            "test_accuracy": self.test_accuracy,
            "test_balanced_accuracy": self.test_balanced_accuracy,
            "test_per_class_accuracy": (
                list(self.test_per_class_accuracy) if self.test_per_class_accuracy else None
            ),
            "shot_accuracy": self.shot_accuracy,
            "search_seconds": self.seconds,
        }


EpochCallback = Callable[[EpochMetrics], bool]
