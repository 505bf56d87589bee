"""hls_tune/engine/data/profiles.py: long-tail class counts and the subset per class."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hls_tune.engine.data.profiles import longtail_counts, longtail_indices
from hls_tune.errors import ConfigError
from tests.support.class_labels import _shuffled_labels


def test_cifar10_ir100_counts_match_the_literature() -> None:
    counts = longtail_counts(5000, 10, 100)
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(counts) == 12406


@pytest.mark.parametrize(
    ("n_max", "num_classes", "ratio", "total", "tail"),
    [
        (5000, 10, 100, 12406, 50),
        (500, 100, 100, 10847, 5),
        (5000, 10, 50, 13996, 100),
        (500, 100, 50, 12608, 10),
        (5000, 10, 10, 20431, 500),
        (500, 100, 10, 19573, 50),
    ],
)
def test_cifar_longtail_totals_match_the_literature(
    n_max: int, num_classes: int, ratio: float, total: int, tail: int
) -> None:
    counts = longtail_counts(n_max, num_classes, ratio)
    assert sum(counts) == total
    assert counts[0] == n_max
    assert counts[-1] == tail


def test_exponential_count_is_exact_where_float_rounding_would_floor_to_zero() -> None:
    # 49 * 49 ** -1.0 == 0.9999999999999999 in floating point.
    assert math.floor(49 * 49 ** (-1 / 1)) == 0
    assert longtail_counts(49, 2, 49) == [49, 1]
    assert longtail_counts(98, 3, 98)[-1] == 1


@settings(max_examples=150, deadline=None)
@given(
    n_max=st.integers(1, 6000),
    num_classes=st.integers(2, 40),
    ratio_factor=st.floats(0.0, 1.0),
)
def test_exponential_counts_are_monotone_exact_floors_from_n_max_to_n_max_over_ratio(
    n_max: int, num_classes: int, ratio_factor: float
) -> None:
    ratio = 1.0 + ratio_factor * (n_max - 1)  # 1 <= IR <= n_max, so the tail keeps >= 1
    counts = longtail_counts(n_max, num_classes, ratio)
    assert len(counts) == num_classes
    assert counts[0] == n_max
    assert counts[-1] == math.floor(Fraction(n_max) / Fraction(ratio)) >= 1
    assert all(a >= b for a, b in itertools.pairwise(counts))
    # Each count is the exact floor: k^(C-1) IR^i <= n^(C-1) < (k+1)^(C-1) IR^i.
    last = num_classes - 1
    for i, k in enumerate(counts[:4]):
        power = Fraction(ratio) ** i
        assert Fraction(k) ** last * power <= Fraction(n_max) ** last
        assert Fraction(k + 1) ** last * power > Fraction(n_max) ** last


@given(n_max=st.integers(1, 10_000), num_classes=st.integers(2, 200))
def test_imbalance_ratio_one_keeps_every_class_at_n_max(n_max: int, num_classes: int) -> None:
    for profile in ("exponential", "step", "none"):
        assert longtail_counts(n_max, num_classes, 1.0, profile) == [n_max] * num_classes


def test_step_profile_keeps_n_max_for_the_first_half_and_n_max_over_ratio_after() -> None:
    assert longtail_counts(5000, 10, 100, "step") == [5000] * 5 + [50] * 5
    assert longtail_counts(500, 100, 10, "step") == [500] * 50 + [50] * 50


def test_step_profile_with_odd_class_count_puts_the_extra_class_in_the_tail() -> None:
    assert longtail_counts(100, 5, 10, "step") == [100, 100, 10, 10, 10]


def test_none_profile_imposes_no_imbalance() -> None:
    assert longtail_counts(7, 3, 50, "none") == [7, 7, 7]


@pytest.mark.parametrize("ratio", [0.5, 0.0, -3, float("nan"), float("inf")])
def test_imbalance_ratio_below_one_or_not_finite_is_a_config_error(ratio: float) -> None:
    with pytest.raises(ConfigError, match=r"data\.imbalance_ratio.*>= 1"):
        longtail_counts(5000, 10, ratio)


def test_ratio_too_large_for_the_head_count_is_a_config_error_naming_the_limit() -> None:
    with pytest.raises(ConfigError, match=r"data\.imbalance_ratio=200.*<= 100"):
        longtail_counts(100, 10, 200)
    with pytest.raises(ConfigError, match=r"data\.imbalance_ratio"):
        longtail_counts(100, 10, 101, "step")


def test_unknown_profile_is_a_config_error_listing_the_profiles() -> None:
    with pytest.raises(ConfigError, match=r"data\.profile.*'linear'.*exponential"):
        longtail_counts(100, 10, 10, "linear")


def test_longtail_indices_keep_the_asked_number_per_class_sorted_and_unique() -> None:
    labels = _shuffled_labels([50, 40, 30])
    index = longtail_indices(labels, [50, 10, 3], seed=1)
    assert torch.bincount(labels[index], minlength=3).tolist() == [50, 10, 3]
    assert torch.equal(index, index.unique(sorted=True))


def test_longtail_indices_depend_only_on_the_seed() -> None:
    labels = _shuffled_labels([50, 40, 30])
    first = longtail_indices(labels, [20, 10, 3], seed=3)
    assert torch.equal(first, longtail_indices(labels, [20, 10, 3], seed=3))
    assert not torch.equal(first, longtail_indices(labels, [20, 10, 3], seed=4))


def test_longtail_indices_reject_a_class_with_too_few_images() -> None:
    with pytest.raises(ConfigError, match=r"class 1 has 4 images.*asks for 5"):
        longtail_indices(_shuffled_labels([10, 4]), [10, 5], seed=0)
