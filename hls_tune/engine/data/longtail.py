"""Long-tailed training sets: imbalance profiles, balanced validation sets, stratified
weight/α(/val) splits, shot groups.

The exponential profile is the one of Cao et al. (LDAM) and BBN; class 0 is the head.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch

from hls_tune.engine.data.sources import ImageSet, SourceData, class_grouped_order
from hls_tune.errors import ConfigError

PROFILES = ("exponential", "step", "none")
SHOT_GROUPS = ("many", "medium", "few")
# Where the validation set comes from: the training images the long-tailed subset leaves
# unused (balanced, val_per_class per class), or a stratified share of the long-tailed set.
VAL_SOURCES = ("unused_balanced", "longtail_split")

# Floor of std used to normalise: a constant channel (std 0) must not divide by zero.
_MIN_STD = 1e-6
# Images per chunk when computing the channel mean/std in float64 (bounds memory).
_STATS_CHUNK = 4096


def longtail_counts(
    n_max: int, num_classes: int, imbalance_ratio: float, profile: str = "exponential"
) -> list[int]:
    """Returns the number of training images each class keeps, head (class 0) first.

    ``exponential``: n_i = ⌊n_max · IR^(−i/(C−1))⌋. ``step``: the first ⌊C/2⌋ classes keep
    n_max and the others ⌊n_max / IR⌋ (with odd C the tail has the extra class). ``none``:
    every class keeps n_max (no imbalance is imposed; ``build_longtail`` then keeps all the
    images each class has).

    The floor is exact: the float value is corrected when rounding error puts it just
    below an integer (e.g. n_max = IR = 49 gives 1, not 0, for the last class).

    Args:
        n_max: images of the head class, >= 1.
        num_classes: number of classes C, >= 2.
        imbalance_ratio: IR = n_max / n_min, >= 1.
        profile: one of ``PROFILES``.

    Raises:
        ConfigError: bad profile or ratio, or a class would keep no image.

    Example:
        >>> longtail_counts(5000, 10, 100)
        [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    """
    _check_profile_and_ratio(profile, imbalance_ratio)
    if isinstance(n_max, bool) or not isinstance(n_max, numbers.Integral) or n_max < 1:
        raise ConfigError(f"n_max must be an integer >= 1 but got {n_max!r}.")
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 2
    ):
        raise ConfigError(f"num_classes must be an integer >= 2 but got {num_classes!r}.")

    n_max, num_classes = int(n_max), int(num_classes)
    if profile == "none":
        return [n_max] * num_classes
    if profile == "step":
        tail = math.floor(Fraction(n_max) / Fraction(imbalance_ratio))
        counts = [n_max] * (num_classes // 2) + [tail] * (num_classes - num_classes // 2)
    else:
        counts = [
            _exponential_count(n_max, imbalance_ratio, i, num_classes - 1)
            for i in range(num_classes)
        ]
    if counts[-1] < 1:
        raise ConfigError(
            f"data.imbalance_ratio={imbalance_ratio!r} is too large for {n_max} images in the "
            f"head class: the tail class would keep n_max/IR = {n_max / imbalance_ratio:.3g} "
            f"< 1 image; use an imbalance ratio <= {n_max}."
        )
    return counts


def _check_profile_and_ratio(profile: str, imbalance_ratio: float) -> None:
    if profile not in PROFILES:
        raise ConfigError(f"data.profile: unknown profile {profile!r}; expected one of {PROFILES}.")
    if not isinstance(imbalance_ratio, numbers.Real) or not 1 <= imbalance_ratio < math.inf:
        raise ConfigError(
            f"data.imbalance_ratio must be a finite number >= 1 but got {imbalance_ratio!r}."
        )


def _exponential_count(n_max: int, ratio: float, i: int, last: int) -> int:
    """⌊n_max · ratio^(−i/last)⌋, exact for the float ``ratio`` given."""
    value = n_max * ratio ** (-i / last)
    count = math.floor(value)
    if abs(value - round(value)) > 1e-6 * max(1.0, value):
        return count  # far from an integer: float rounding cannot change the floor
    # k <= n_max · r^(−i/last)  ⟺  k^last · r^i <= n_max^last, in exact rational arithmetic.
    exact_ratio_power = Fraction(ratio) ** i
    bound = Fraction(n_max) ** last

    def fits(k: int) -> bool:
        return Fraction(k) ** last * exact_ratio_power <= bound

    while fits(count + 1):
        count += 1
    while count > 0 and not fits(count):
        count -= 1
    return count


def longtail_indices(labels: torch.Tensor, counts: Sequence[int], seed: int) -> torch.Tensor:
    """Returns the sorted indices of ``counts[c]`` randomly chosen images of each class c.

    Args:
        labels: ``int64`` labels, shape N, values in ``[0, len(counts))``.
        counts: images to keep per class.
        seed: seed of the choice; the same seed gives the same subset.

    Raises:
        ConfigError: a class has fewer images than asked for.
    """
    num_classes = len(counts)
    available = torch.bincount(labels, minlength=num_classes)
    if available.numel() > num_classes:
        raise ConfigError(
            f"labels go up to {available.numel() - 1} but counts covers {num_classes} classes."
        )
    wanted = torch.tensor(list(counts), dtype=torch.int64)
    short = (available < wanted).nonzero().flatten().tolist()
    if short:
        c = short[0]
        raise ConfigError(
            f"class {c} has {int(available[c])} images but the long-tail profile asks for "
            f"{int(wanted[c])}; lower the head count or use data.profile = 'none'."
        )
    order, rank = class_grouped_order(labels, num_classes, seed)
    keep = rank < wanted[labels[order]]
    return order[keep].sort().values


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
        >>> index, short = unused_balanced_indices(labels, torch.tensor([0, 1, 2, 5]), 2, 0, 2)
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
    if val_source not in VAL_SOURCES:
        raise ConfigError(
            f"data.val_source must be one of {', '.join(VAL_SOURCES)} but got {val_source!r}."
        )
    if isinstance(val_per_class, bool) or not isinstance(val_per_class, int) or val_per_class < 1:
        raise ConfigError(f"data.val_per_class must be an integer >= 1 but got {val_per_class!r}.")
    train = source.train
    available = train.class_counts()
    if profile == "none":
        _check_profile_and_ratio(profile, imbalance_ratio)
        counts = available.tolist()
        index = torch.arange(len(train))
    else:
        n_max = int(available.min())
        if max_per_class is not None:
            n_max = min(n_max, max_per_class)
        counts = longtail_counts(n_max, train.num_classes, imbalance_ratio, profile)
        index = longtail_indices(train.labels, counts, seed)
    longtailed = train.subset(index)
    if val_source == "longtail_split":
        splits = stratified_split(
            longtailed.labels, val_fraction=val_fraction, alpha_fraction=alpha_fraction, seed=seed
        )
        val = longtailed.subset(splits.val)
    else:
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
        val = train.subset(torch.cat([unused_val, index[splits.val]]).sort().values)
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
        stacklevel=3,
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
