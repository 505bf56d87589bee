"""hls_tune/engine/data/longtail.py: shot groups, and build_longtail's long-tailed data."""

from __future__ import annotations

import pytest
import torch

from hls_tune.engine.data.longtail import SHOT_GROUPS, build_longtail, longtail_counts, shot_groups
from hls_tune.engine.data.sources import ImageSet, SourceData
from hls_tune.errors import ConfigError
from tests.support.class_labels import _shuffled_labels

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
