"""Long-tailed training sets: the long-tailed subset of a source, its balanced validation
set and weight/α(/val) split, shot groups and pixel statistics (`build_longtail`).

How many images each class keeps is in `profiles`; the seeded splits are in `splits`. Their
public names are re-exported here, where the rest of the package imports them from.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hls_tune.engine.data.images import ImageSet, SourceData
from hls_tune.engine.data.profiles import (
    PROFILES,
    check_profile_and_ratio,
    longtail_counts,
    longtail_indices,
)
from hls_tune.engine.data.splits import (
    Splits,
    split_sizes,
    stratified_split,
    unused_balanced_indices,
)
from hls_tune.errors import ConfigError

__all__ = [
    "PROFILES",
    "SHOT_GROUPS",
    "VAL_SOURCES",
    "LongTailData",
    "Splits",
    "build_longtail",
    "longtail_counts",
    "longtail_indices",
    "shot_groups",
    "split_sizes",
    "stratified_split",
    "unused_balanced_indices",
]

SHOT_GROUPS = ("many", "medium", "few")
# Where the validation set comes from: the training images the long-tailed subset leaves
# unused (balanced, val_per_class per class), or a stratified share of the long-tailed set.
VAL_SOURCES = ("unused_balanced", "longtail_split")

# Floor of std used to normalise: a constant channel (std 0) must not divide by zero.
_MIN_STD = 1e-6
# Images per chunk when computing the channel mean/std in float64 (bounds memory).
_STATS_CHUNK = 4096


def shot_groups(
    train_counts: Sequence[int], many_above: int = 100, few_below: int = 20
) -> tuple[str, ...]:
    """Returns the shot group of each class: many (> many_above), few (< few_below), or medium.

    Args:
        train_counts: training images per class.
        many_above: classes with more images than this are many-shot (literature: 100).
        few_below: classes with fewer images than this are few-shot (literature: 20).

    Example:
        >>> shot_groups([500, 100, 20, 19])
        ('many', 'medium', 'medium', 'few')
    """
    if few_below > many_above + 1:
        raise ConfigError(
            f"few_below ({few_below}) must be <= many_above + 1 ({many_above + 1}) so that "
            "no class is both many-shot and few-shot."
        )
    return tuple(
        "many" if n > many_above else "few" if n < few_below else "medium" for n in train_counts
    )


@dataclass(frozen=True)
class LongTailData:
    """The long-tailed training set split into weight/α/val parts, plus the balanced test set.

    Attributes:
        weight: images for the weight steps.
        alpha: images for the architecture (α) steps.
        val: held-out images for the metric that drives the study (``unused_balanced``:
            the same number per class, none of them in the long-tailed set).
        test: the balanced test set, for final reporting only.
        train_counts: images per class of the long-tailed training set (the profile's
            counts; with ``longtail_split`` or a fallback class, its validation images are
            among them).
        shot_group: ``"many"``, ``"medium"`` or ``"few"`` per class, from ``train_counts``.
        mean: per-channel pixel mean of the long-tailed training set, in [0, 1] units.
        std: per-channel pixel standard deviation, same units (floored at 1e-6).
    """

    weight: ImageSet
    alpha: ImageSet
    val: ImageSet
    test: ImageSet
    train_counts: tuple[int, ...]
    shot_group: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.test.num_classes

    @property
    def in_channels(self) -> int:
        """Image channels."""
        return self.test.in_channels

    @property
    def image_size(self) -> int:
        """Image height (and width for square images)."""
        return self.test.image_size

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names, in label order."""
        return self.test.class_names


def build_longtail(
    source: SourceData,
    *,
    imbalance_ratio: float,
    profile: str = "exponential",
    val_fraction: float = 0.1,
    alpha_fraction: float = 0.5,
    seed: int = 0,
    many_above: int = 100,
    few_below: int = 20,
    max_per_class: int | None = None,
    val_source: str = "unused_balanced",
    val_per_class: int = 50,
) -> LongTailData:
    """Draws the long-tailed training set from ``source.train`` and splits it.

    n_max is the smallest class count of ``source.train`` (5000 for CIFAR-10, 500 for
    CIFAR-100): the head class 0 must have n_max images, and with uneven sources (digits)
    the largest count would not fit every class. Profile ``none`` keeps every image.

    ``val_source = "unused_balanced"``: the validation set is ``val_per_class`` images of
    every class drawn from the training images the long-tailed subset leaves unused, and
    the whole long-tailed set is split into weight and α parts. A class with fewer unused
    images falls back to the long-tailed split (``val_fraction`` of its long-tailed images,
    at most ``val_per_class``), with a warning naming the classes. ``"longtail_split"``:
    ``val_fraction`` of every class's long-tailed images (the long-tailed validation split).
    No validation image is ever in the weight, α or test parts.

    Args:
        source: training set and balanced test set.
        imbalance_ratio: IR = n_max / n_min, >= 1.
        profile: one of ``PROFILES``.
        val_fraction: share of each class held out for validation, in [0, 1).
        alpha_fraction: share of the rest used for α steps, in (0, 1).
        seed: seed of the long-tail subset and of the split.
        many_above: many-shot threshold (classes with more training images).
        few_below: few-shot threshold (classes with fewer training images).
        max_per_class: caps n_max (quick runs and tests on a smaller long-tailed set; on
            CIFAR it leaves head-class images unused for the balanced validation set).
        val_source: ``unused_balanced`` or ``longtail_split`` (see above).
        val_per_class: validation images per class with ``unused_balanced``, >= 1.

    Raises:
        ConfigError: bad ratio, profile, fractions or validation settings, or too few
            images for them.

    Example:
        >>> from hls_tune.engine.data.sources import load_source
        >>> data = build_longtail(load_source("digits"), imbalance_ratio=10)
        >>> data.train_counts[0], data.train_counts[-1]
        (144, 14)
    """
    _check_val_settings(val_source, val_per_class)
    train = source.train
    counts, index = _longtail_subset(train, imbalance_ratio, profile, max_per_class, seed)
    longtailed = train.subset(index)
    splits, val = _split_off_validation(
        train,
        index,
        longtailed,
        val_source=val_source,
        val_fraction=val_fraction,
        alpha_fraction=alpha_fraction,
        val_per_class=val_per_class,
        seed=seed,
    )
    mean, std = _channel_stats(longtailed.images)
    return LongTailData(
        weight=longtailed.subset(splits.weight),
        alpha=longtailed.subset(splits.alpha),
        val=val,
        test=source.test,
        train_counts=tuple(int(n) for n in counts),
        shot_group=shot_groups(counts, many_above, few_below),
        mean=mean,
        std=std,
    )


def _check_val_settings(val_source: str, val_per_class: int) -> None:
    """Refuses a validation source not in `VAL_SOURCES` or a `val_per_class` below 1."""
    if val_source not in VAL_SOURCES:
        raise ConfigError(
            f"data.val_source must be one of {', '.join(VAL_SOURCES)} but got {val_source!r}."
        )
    if isinstance(val_per_class, bool) or not isinstance(val_per_class, int) or val_per_class < 1:
        raise ConfigError(f"data.val_per_class must be an integer >= 1 but got {val_per_class!r}.")


def _longtail_subset(
    train: ImageSet,
    imbalance_ratio: float,
    profile: str,
    max_per_class: int | None,
    seed: int,
) -> tuple[list[int], torch.Tensor]:
    """The long-tailed subset of `train`: the images each class keeps (head first) and the
    sorted indices of the kept images (profile `none`: every image)."""
    available = train.class_counts()
    if profile == "none":
        check_profile_and_ratio(profile, imbalance_ratio)
        return available.tolist(), torch.arange(len(train))
    n_max = int(available.min())
    if max_per_class is not None:
        n_max = min(n_max, max_per_class)
    counts = longtail_counts(n_max, train.num_classes, imbalance_ratio, profile)
    return counts, longtail_indices(train.labels, counts, seed)


def _split_off_validation(
    train: ImageSet,
    index: torch.Tensor,
    longtailed: ImageSet,
    *,
    val_source: str,
    val_fraction: float,
    alpha_fraction: float,
    val_per_class: int,
    seed: int,
) -> tuple[Splits, ImageSet]:
    """The split of the long-tailed subset (`index` into `train`, `longtailed` its images)
    and the validation set, drawn as `val_source` says (see `build_longtail`)."""
    if val_source == "longtail_split":
        splits = stratified_split(
            longtailed.labels, val_fraction=val_fraction, alpha_fraction=alpha_fraction, seed=seed
        )
        return splits, longtailed.subset(splits.val)
    unused_val, short = unused_balanced_indices(
        train.labels, index, val_per_class, seed, train.num_classes
    )
    if short:
        _warn_fallback(train, index, short, val_per_class, val_fraction)
    splits = stratified_split(
        longtailed.labels,
        val_fraction=val_fraction,
        alpha_fraction=alpha_fraction,
        seed=seed,
        val_classes=short,
        max_val_per_class=val_per_class,
    )
    return splits, train.subset(torch.cat([unused_val, index[splits.val]]).sort().values)


def _warn_fallback(
    train: ImageSet,
    used: torch.Tensor,
    short: Sequence[int],
    val_per_class: int,
    val_fraction: float,
) -> None:
    unused = train.class_counts() - torch.bincount(train.labels[used], minlength=train.num_classes)
    named = ", ".join(f"{train.class_names[c]} ({int(unused[c])} unused)" for c in short)
    warnings.warn(
        f"data.val_per_class={val_per_class}: the long-tailed subset leaves fewer unused "
        f"training images than that in classes {named}; their validation images come from "
        f"the long-tailed split instead (data.val_fraction={val_fraction:g} of their "
        f"long-tailed images, at most {val_per_class}). Lower data.val_per_class or "
        "data.max_per_class to validate every class on unused images.",
        stacklevel=4,  # the caller of build_longtail
    )


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images, in [0, 1] pixel units."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], _STATS_CHUNK):
        chunk = images[start : start + _STATS_CHUNK].to(torch.float64) / 255.0
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
    pixels = max(images.shape[0] * images.shape[2] * images.shape[3], 1)
    mean = total / pixels
    std = (total_sq / pixels - mean.square()).clamp_min(0).sqrt().clamp_min(_MIN_STD)
    return tuple(mean.tolist()), tuple(std.tolist())
