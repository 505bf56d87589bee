"""Seeded per-class draws of index sets.

`class_grouped_order` is the one random order every draw uses (k random images per class
without a loop over images). On it: the balanced test set split off sources without a
test split (`split_balanced_test`), the weight/α/validation split of a training set
(`Splits`, `split_sizes`, `stratified_split`) and the balanced validation draw from the
images a long-tailed subset leaves unused (`unused_balanced_indices`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hls_tune.engine.data.images import ImageSet, SourceData
from hls_tune.errors import ConfigError

__all__ = [
    "Splits",
    "class_grouped_order",
    "split_balanced_test",
    "split_sizes",
    "stratified_split",
    "unused_balanced_indices",
]


def class_grouped_order(
    labels: torch.Tensor, num_classes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns a seeded random order grouped by class, and each entry's rank in its class.

    ``order`` lists every index once, class 0 first, in a random order within each class;
    ``rank[j]`` is the position of ``order[j]`` among the indices of its class. Taking
    ``rank < k`` selects k random images per class without a Python loop over images.

    Args:
        labels: ``int64`` labels, shape N.
        num_classes: number of classes (labels must be smaller).
        seed: seed of the permutation.
    """
    generator = torch.Generator().manual_seed(seed)
    permutation = torch.randperm(labels.numel(), generator=generator)
    by_class = torch.argsort(labels[permutation], stable=True)
    order = permutation[by_class]
    counts = torch.bincount(labels, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(labels.numel()) - starts[labels[order]]
    return order, rank


def split_balanced_test(images: ImageSet, test_per_class: int, seed: int) -> SourceData:
    """Moves the same number of randomly chosen images of every class into a test set."""
    counts = images.class_counts()
    smallest = int(counts.min())
    if smallest < 2:
        empty = [images.class_names[c] for c in range(len(counts)) if counts[c] < 2]
        raise ConfigError(
            f"data.root: classes {empty} have fewer than 2 images; a train/test split needs "
            "at least 2 per class (or provide train/ and test/ folders)."
        )
    per_class = min(test_per_class, smallest // 2)
    if per_class < test_per_class:
        warnings.warn(
            f"data.test_per_class={test_per_class} capped at {per_class}: the smallest class "
            f"has {smallest} images and keeps at least half of them for training.",
            stacklevel=4,  # the caller of load_source
        )
    order, rank = class_grouped_order(images.labels, images.num_classes, seed)
    test_index = order[rank < per_class].sort().values
    train_index = order[rank >= per_class].sort().values
    return SourceData(images.subset(train_index), images.subset(test_index))


@dataclass(frozen=True)
class Splits:
    """Disjoint index sets (sorted) into one training set; together they cover it."""

    weight: torch.Tensor
    alpha: torch.Tensor
    val: torch.Tensor


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def split_sizes(
    n: int, val_fraction: float, alpha_fraction: float, max_val: int | None = None
) -> tuple[int, int, int]:
    """Returns (weight, alpha, val) sizes for a class of ``n`` images.

    n_val = round(n · val_fraction), at least 1 when ``val_fraction`` > 0, and at most n − 2
    (and at most ``max_val``); of the rest, n_alpha = round(rest · alpha_fraction) clamped
    to [1, rest − 1]. Rounding is half up.

    Args:
        n: images of the class; >= 3 (>= 2 when ``val_fraction`` is 0).
        val_fraction: share of the class held out for validation, in [0, 1).
        alpha_fraction: share of the remainder used for α steps, in (0, 1).
        max_val: cap on n_val (None: no cap).
    """
    n_val = 0
    if val_fraction > 0:
        n_val = min(max(_round_half_up(n * val_fraction), 1), n - 2)
        if max_val is not None:
            n_val = min(n_val, max(max_val, 1))
    rest = n - n_val
    n_alpha = min(max(_round_half_up(rest * alpha_fraction), 1), rest - 1)
    return rest - n_alpha, n_alpha, n_val


def stratified_split(
    labels: torch.Tensor,
    *,
    val_fraction: float,
    alpha_fraction: float,
    seed: int,
    val_classes: Sequence[int] | None = None,
    max_val_per_class: int | None = None,
) -> Splits:
    """Splits a training set per class into weight, α and validation parts.

    Sizes per class follow ``split_sizes``; the images are chosen by a seeded permutation.

    Args:
        labels: ``int64`` labels of the training set, shape N.
        val_fraction: share of each class held out for validation, in [0, 1).
        alpha_fraction: share of the non-validation images used for α steps, in (0, 1).
        seed: seed of the split.
        val_classes: the classes that hold out validation images (None: every class); the
            others are split into weight and α parts only.
        max_val_per_class: cap on the validation images of a class (None: no cap).

    Raises:
        ConfigError: a fraction is out of range or a class has too few images.

    Example:
        >>> labels = torch.tensor([0] * 10 + [1] * 4)
        >>> s = stratified_split(labels, val_fraction=0.2, alpha_fraction=0.5, seed=0)
        >>> len(s.weight), len(s.alpha), len(s.val)
        (5, 6, 3)
    """
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be in [0, 1) but got {val_fraction!r}.")
    if not 0 < alpha_fraction < 1:
        raise ConfigError(f"data.alpha_fraction must be in (0, 1) but got {alpha_fraction!r}.")
    counts = torch.bincount(labels) if labels.numel() else torch.zeros(0, dtype=torch.int64)
    held_out = None if val_classes is None else set(val_classes)
    sizes = torch.zeros((counts.numel(), 3), dtype=torch.int64)
    for c, n in enumerate(counts.tolist()):
        if n == 0:
            continue  # a class absent from this set has nothing to split
        fraction = val_fraction if held_out is None or c in held_out else 0.0
        needed = 3 if fraction > 0 else 2
        if n < needed:
            raise ConfigError(
                f"class {c} has {n} training images; the weight/α/val split needs at least "
                f"{needed} per class (lower data.imbalance_ratio or data.val_fraction)."
            )
        sizes[c] = torch.tensor(split_sizes(n, fraction, alpha_fraction, max_val_per_class))
    order, rank = class_grouped_order(labels, counts.numel(), seed)
    n_val = sizes[:, 2][labels[order]]
    n_alpha = sizes[:, 1][labels[order]]
    val = order[rank < n_val]
    alpha = order[(rank >= n_val) & (rank < n_val + n_alpha)]
    weight = order[rank >= n_val + n_alpha]
    return Splits(weight.sort().values, alpha.sort().values, val.sort().values)


def unused_balanced_indices(
    labels: torch.Tensor, used: torch.Tensor, val_per_class: int, seed: int, num_classes: int
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Draws ``val_per_class`` images of every class from those the long-tailed subset left out.

    Args:
        labels: ``int64`` labels of the whole source training set, shape N.
        used: indices (into ``labels``) of the long-tailed subset.
        val_per_class: validation images per class.
        seed: seed of the draw.
        num_classes: number of classes (labels must be smaller).

    Returns:
        The sorted indices (into ``labels``) of the balanced validation images, and the
        classes with fewer than ``val_per_class`` unused images, which get none.

    Example:
        >>> labels = torch.tensor([0] * 5 + [1] * 5)
        >>> index, short = unused_balanced_indices(labels, torch.tensor([0, 1, 2, 3, 5]), 2, 0, 2)
        >>> labels[index].tolist(), short
        ([1, 1], (0,))
    """
    unused = torch.ones(labels.numel(), dtype=torch.bool)
    unused[used] = False
    candidates = unused.nonzero().flatten()
    available = torch.bincount(labels[candidates], minlength=num_classes)
    short = tuple(c for c in range(num_classes) if int(available[c]) < val_per_class)
    order, rank = class_grouped_order(labels[candidates], num_classes, seed)
    enough = available[labels[candidates][order]] >= val_per_class
    chosen = candidates[order[(rank < val_per_class) & enough]]
    return chosen.sort().values, short
