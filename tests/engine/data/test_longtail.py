"""Long-tail profiles, subset selection, stratified splits, shot groups and build_longtail."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hls_tune.engine.data.longtail import (
    SHOT_GROUPS,
    build_longtail,
    longtail_counts,
    longtail_indices,
    shot_groups,
    split_sizes,
    stratified_split,
)
from hls_tune.engine.data.sources import ImageSet, SourceData
from hls_tune.errors import ConfigError

# --- longtail_counts ------------------------------------------------------------------


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


# --- longtail_indices -----------------------------------------------------------------


def _shuffled_labels(counts: list[int], seed: int = 0) -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


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


# --- stratified_split -----------------------------------------------------------------


def _check_partition(labels: torch.Tensor, parts: list[torch.Tensor]) -> None:
    joined = torch.cat(parts)
    assert len(joined) == len(labels), "parts overlap or miss indices"
    assert torch.equal(joined.sort().values, torch.arange(len(labels)))


def test_stratified_split_is_disjoint_complete_and_follows_the_fractions() -> None:
    labels = _shuffled_labels([100, 40, 3])
    splits = stratified_split(labels, val_fraction=0.1, alpha_fraction=0.5, seed=0)
    _check_partition(labels, [splits.weight, splits.alpha, splits.val])

    def per_class(index: torch.Tensor) -> list[int]:
        return torch.bincount(labels[index], minlength=3).tolist()

    assert per_class(splits.val) == [10, 4, 1]
    assert per_class(splits.alpha) == [45, 18, 1]
    assert per_class(splits.weight) == [45, 18, 1]


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(3, 60), min_size=2, max_size=8),
    val_fraction=st.floats(0.0, 0.9),
    alpha_fraction=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**31),
)
def test_stratified_split_puts_every_class_in_every_part(
    counts: list[int], val_fraction: float, alpha_fraction: float, seed: int
) -> None:
    labels = _shuffled_labels(counts, seed % 97)
    splits = stratified_split(
        labels, val_fraction=val_fraction, alpha_fraction=alpha_fraction, seed=seed
    )
    _check_partition(labels, [splits.weight, splits.alpha, splits.val])
    parts = [splits.weight, splits.alpha] + ([splits.val] if val_fraction > 0 else [])
    for part in parts:
        assert (torch.bincount(labels[part], minlength=len(counts)) >= 1).all()
    if val_fraction == 0:
        assert len(splits.val) == 0
    for index in (splits.weight, splits.alpha, splits.val):
        assert torch.equal(index, index.sort().values)


def test_split_sizes_round_half_up_and_keep_one_image_per_part() -> None:
    assert split_sizes(5, 0.5, 0.5) == (1, 1, 3)  # val: round(2.5) = 3; rest 2 → 1 + 1
    assert split_sizes(3, 0.01, 0.99) == (1, 1, 1)
    assert split_sizes(10, 0.0, 0.25) == (7, 3, 0)  # alpha: round(2.5) = 3


def test_stratified_split_depends_only_on_the_seed() -> None:
    labels = _shuffled_labels([30, 20])
    a = stratified_split(labels, val_fraction=0.2, alpha_fraction=0.5, seed=5)
    b = stratified_split(labels, val_fraction=0.2, alpha_fraction=0.5, seed=5)
    c = stratified_split(labels, val_fraction=0.2, alpha_fraction=0.5, seed=6)
    assert torch.equal(a.alpha, b.alpha) and torch.equal(a.val, b.val)
    assert not torch.equal(a.alpha, c.alpha)


@pytest.mark.parametrize("value", [-0.1, 1.0, float("nan")])
def test_val_fraction_outside_zero_one_is_a_config_error(value: float) -> None:
    with pytest.raises(ConfigError, match=r"data\.val_fraction"):
        stratified_split(_shuffled_labels([10, 10]), val_fraction=value, alpha_fraction=0.5, seed=0)


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5])
def test_alpha_fraction_outside_open_zero_one_is_a_config_error(value: float) -> None:
    with pytest.raises(ConfigError, match=r"data\.alpha_fraction"):
        stratified_split(_shuffled_labels([10, 10]), val_fraction=0.1, alpha_fraction=value, seed=0)


def test_class_with_two_images_cannot_be_split_three_ways() -> None:
    with pytest.raises(ConfigError, match=r"class 1 has 2 training images"):
        stratified_split(_shuffled_labels([10, 2]), val_fraction=0.1, alpha_fraction=0.5, seed=0)


# --- shot_groups ----------------------------------------------------------------------


def test_shot_groups_use_strict_thresholds() -> None:
    assert shot_groups([101, 100, 20, 19, 0]) == ("many", "medium", "medium", "few", "few")
    assert set(shot_groups([500, 50, 5])) == set(SHOT_GROUPS)
    assert shot_groups([11, 10, 4], many_above=10, few_below=5) == ("many", "medium", "few")


def test_shot_groups_reject_overlapping_thresholds() -> None:
    with pytest.raises(ConfigError, match="few_below"):
        shot_groups([10], many_above=10, few_below=50)


# --- build_longtail -------------------------------------------------------------------


def _source(train_counts: list[int], test_per_class: int = 3, seed: int = 0) -> SourceData:
    generator = torch.Generator().manual_seed(seed)
    names = tuple(f"c{c}" for c in range(len(train_counts)))

    def image_set(counts: list[int]) -> ImageSet:
        labels = _shuffled_labels(counts, seed)
        images = torch.randint(0, 256, (len(labels), 3, 4, 4), generator=generator)
        return ImageSet(images.to(torch.uint8), labels, names)

    return SourceData(image_set(train_counts), image_set([test_per_class] * len(train_counts)))


def test_build_longtail_draws_the_profile_and_splits_it_by_class() -> None:
    source = _source([60] * 10)
    data = build_longtail(
        source,
        imbalance_ratio=10,
        val_source="longtail_split",
        val_fraction=0.1,
        alpha_fraction=0.5,
    )
    assert data.train_counts == tuple(longtail_counts(60, 10, 10))
    parts = (data.weight, data.alpha, data.val)
    per_class = sum(part.class_counts() for part in parts)
    assert per_class.tolist() == list(data.train_counts)
    for part in parts:
        assert (part.class_counts() >= 1).all()
    assert data.test is source.test
    assert (data.num_classes, data.in_channels, data.image_size) == (10, 3, 4)
    assert data.class_names == source.train.class_names


def test_build_longtail_reports_mean_and_std_of_the_longtailed_training_set() -> None:
    data = build_longtail(_source([40] * 4), imbalance_ratio=4, max_per_class=30, val_per_class=5)
    # The balanced validation images come from outside the long-tailed set: not counted.
    pixels = torch.cat([data.weight.images, data.alpha.images]).double() / 255
    expected_mean = pixels.mean(dim=(0, 2, 3))
    expected_std = pixels.std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(torch.tensor(data.mean, dtype=torch.float64), expected_mean, atol=1e-9)
    assert torch.allclose(torch.tensor(data.std, dtype=torch.float64), expected_std, atol=1e-9)


def test_build_longtail_takes_n_max_from_the_smallest_class_of_an_uneven_source() -> None:
    # The head class 0 has fewer images than class 1 (as in digits): n_max must fit it.
    data = build_longtail(_source([50, 70, 60]), imbalance_ratio=5)
    assert data.train_counts == (50, 22, 10)


def test_build_longtail_assigns_shot_groups_from_the_training_counts() -> None:
    data = build_longtail(_source([60] * 5), imbalance_ratio=10, many_above=40, few_below=10)
    # counts 60, 33, 18, 10, 6
    assert data.shot_group == ("many", "medium", "medium", "medium", "few")


def test_build_longtail_with_none_profile_keeps_every_training_image() -> None:
    source = _source([30, 20, 10])
    data = build_longtail(source, imbalance_ratio=1, profile="none", val_source="longtail_split")
    assert data.train_counts == (30, 20, 10)
    assert len(data.weight) + len(data.alpha) + len(data.val) == len(source.train)


def test_build_longtail_depends_only_on_the_seed() -> None:
    source = _source([40] * 4)
    a = build_longtail(source, imbalance_ratio=4, seed=1, max_per_class=30, val_per_class=5)
    b = build_longtail(source, imbalance_ratio=4, seed=1, max_per_class=30, val_per_class=5)
    c = build_longtail(source, imbalance_ratio=4, seed=2, max_per_class=30, val_per_class=5)
    for part in ("alpha", "val"):
        assert torch.equal(getattr(a, part).images, getattr(b, part).images)
        assert not torch.equal(getattr(a, part).images, getattr(c, part).images)
