"""Imbalance profiles: how many images each class keeps (`longtail_counts`, head class 0
first) and which ones (`longtail_indices`, a seeded draw per class).

The exponential profile is the one of Cao et al. (LDAM) and BBN.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from fractions import Fraction

import torch

from hls_tune.engine.data.splits import class_grouped_order
from hls_tune.errors import ConfigError

__all__ = ["PROFILES", "check_profile_and_ratio", "longtail_counts", "longtail_indices"]

PROFILES = ("exponential", "step", "none")


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
    check_profile_and_ratio(profile, imbalance_ratio)
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


def check_profile_and_ratio(profile: str, imbalance_ratio: float) -> None:
    """Refuses a profile not in `PROFILES` or a ratio that is not a finite number >= 1."""
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
