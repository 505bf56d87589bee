"""What the loops hand back: per-epoch metrics (the callback's argument), test figures and
the search result.

No torch here: a caller (the study layer, a report) reads these without loading the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hls_tune.engine.nas.genotype import Genotype
from hls_tune.engine.settings import SearchConfig, TrainConfig


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
        alpha_lrs: each α group's learning rate at the epoch's first α step, as the α
            optimizer applied it (0 for every group in an epoch without α steps: warm-up,
            adapt_head's weight phase).
        alphas: softmaxed op weights per group at the end of the epoch (edges × ops).
        genotype: the genotype derived at the end of the epoch.
        seconds: wall time of the epoch (training and validation).
        val_loss: mean cross-entropy on the validation split.
        branch_losses: BBN methods: each branch's mean training cross-entropy on the mixed
            logits, ``conventional`` (instance batch) and ``rebalancing`` (reversed batch);
            None for the plain methods.
        alpha_movement: each α group's movement in the epoch, ‖α_e − α_{e−1}‖ (Frobenius
            norm of the raw architecture parameters; α_{−1} is the initialisation).
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
    val_loss: float | None = None
    branch_losses: dict[str, float] | None = None
    alpha_movement: dict[str, float] = dataclasses.field(default_factory=dict)

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

    `test` (the balanced test set's figures) is None when the run was stopped early by the
    callback: the balanced test set is for final reporting only, never for pruning or
    selection. `source` is adapt_head's shared source supernet
    (`adapt.SourceSupernet.summary()`: cache key, whether this run built it, its search
    time and genotype); None otherwise.
    """

    config: SearchConfig
    genotype: Genotype
    history: tuple[EpochMetrics, ...]
    stopped_early: bool
    resumed_from_epoch: int | None
    seconds: float
    test: LongTailMetrics | None = None
    source: dict[str, Any] | None = None

    @property
    def val_accuracy(self) -> float:
        """Validation accuracy of the last epoch run."""
        return self.history[-1].val_accuracy if self.history else 0.0

    @property
    def val_balanced_accuracy(self) -> float:
        """Balanced validation accuracy of the last epoch run."""
        return self.history[-1].val_balanced_accuracy if self.history else 0.0

    @property
    def test_accuracy(self) -> float | None:
        """Top-1 on the balanced test set (None when stopped early)."""
        return None if self.test is None else self.test.accuracy

    @property
    def test_balanced_accuracy(self) -> float | None:
        """Mean per-class accuracy on the balanced test set (None when stopped early)."""
        return None if self.test is None else self.test.balanced_accuracy

    @property
    def shot_accuracy(self) -> dict[str, float] | None:
        """Many/medium/few-shot test accuracy (None when stopped early)."""
        return None if self.test is None else dict(self.test.shot_accuracy)

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
                None if self.test is None else list(self.test.per_class_accuracy)
            ),
            "shot_accuracy": self.shot_accuracy,
            "search_seconds": self.seconds,
        }


EpochCallback = Callable[[EpochMetrics], bool]


@dataclass(frozen=True)
class TrainEpoch:
    """One finished training epoch.

    Args:
        epoch: index of the epoch (0-based).
        epochs: the epoch budget.
        train_loss: mean training loss (auxiliary term included).
        train_accuracy: mean training accuracy (BBN: μ-weighted over the two label sets).
        val_accuracy: top-1 on the validation split (None when it is empty).
        val_balanced_accuracy: mean per-class validation accuracy (None when empty).
        lr: the epoch's learning rate, as the optimizer applied it.
        drop_path_prob: the epoch's drop-path probability.
        mixing_ratio: μ at the start of the epoch (None for the plain network).
        seconds: wall time of the epoch.
        val_loss: mean validation cross-entropy (None when the split is empty).
    """

    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float | None
    val_balanced_accuracy: float | None
    lr: float
    drop_path_prob: float
    mixing_ratio: float | None
    seconds: float
    val_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """A trained genotype's figures: SPEC §3 test metrics, size and cost.

    Args:
        config: the training settings.
        genotype: the trained genotype.
        history: one `TrainEpoch` per epoch run.
        stopped_early: the callback stopped the run before the epoch budget.
        resumed_from_epoch: the epoch a checkpoint resumed at (None: started fresh).
        params: parameters of the test-time network (no auxiliary head).
        multiply_adds: multiply-adds of one test-time forward pass on one image.
        has_auxiliary: whether the auxiliary head was trained.
        test: the figures on the balanced test set (`LongTailMetrics`).
        seconds: training wall time (all sessions of a resumed run).
    """

    config: TrainConfig
    genotype: Genotype
    history: tuple[TrainEpoch, ...]
    stopped_early: bool
    resumed_from_epoch: int | None
    params: int
    multiply_adds: int
    has_auxiliary: bool
    test: LongTailMetrics
    seconds: float

    @property
    def test_accuracy(self) -> float:
        """Top-1 on the balanced test set."""
        return self.test.accuracy

    @property
    def test_balanced_accuracy(self) -> float:
        """Mean per-class accuracy on the balanced test set."""
        return self.test.balanced_accuracy

    @property
    def shot_accuracy(self) -> dict[str, float]:
        """Many/medium/few-shot accuracy on the balanced test set."""
        return dict(self.test.shot_accuracy)

    def metrics(self) -> dict[str, Any]:
        """Final figures as a JSON-ready dict (no history)."""
        last = self.history[-1] if self.history else None
        return {
            "network": self.config.network,
            "epochs_run": len(self.history),
            "stopped_early": self.stopped_early,
            "resumed_from_epoch": self.resumed_from_epoch,
            "test_accuracy": self.test_accuracy,
            "test_balanced_accuracy": self.test_balanced_accuracy,
            "test_per_class_accuracy": list(self.test.per_class_accuracy),
            "shot_accuracy": self.shot_accuracy,
            "params": self.params,
            "multiply_adds": self.multiply_adds,
            "has_auxiliary": self.has_auxiliary,
            "val_accuracy": None if last is None else last.val_accuracy,
            "val_balanced_accuracy": None if last is None else last.val_balanced_accuracy,
            "train_seconds": self.seconds,
        }
