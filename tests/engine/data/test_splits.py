"""hls_tune/engine/data/splits.py: stratified weight/α/validation splits by class."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hls_tune.engine.data.splits import split_sizes, stratified_split
from hls_tune.errors import ConfigError
from tests.support.class_labels import _shuffled_labels


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
