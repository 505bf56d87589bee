"""The long-tailed data of a `DataConfig`, built once per process and shared by every loop,
and its balanced counterpart (the same dataset with every class at the head count)."""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import torch

from hls_tune.engine.data import (
    ImageSet,
    LongTailData,
    SourceData,
    build_longtail,
    concat_images,
    load_source,
)
from hls_tune.engine.settings import DataConfig


def _load(data: DataConfig) -> SourceData:
    return load_source(
        data.dataset,
        data.root,
        image_size=data.image_size,
        download=data.download,
        test_per_class=data.test_per_class,
        seed=data.seed,
    )


@functools.lru_cache(maxsize=4)
def prepare_data(data: DataConfig) -> LongTailData:
    """Loads the source and builds the long-tailed splits (cached per process)."""
    return build_longtail(
        _load(data),
        imbalance_ratio=data.imbalance_ratio,
        profile=data.profile,
        val_source=data.val_source,
        val_per_class=data.val_per_class,
        **_split_settings(data),
    )


def _split_settings(data: DataConfig) -> dict[str, Any]:
    """The settings a long-tailed set and its balanced counterpart are split with alike."""
    keys = ("val_fraction", "alpha_fraction", "seed", "many_above", "few_below", "max_per_class")
    return {key: getattr(data, key) for key in keys}


def image_key(image: torch.Tensor) -> bytes:
    """A digest of one image's pixels (identical images, identical keys)."""
    return hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest()


def without_images(images: ImageSet, excluded: ImageSet) -> ImageSet:
    """`images` less every image identical to one in `excluded`."""
    keys = {image_key(image) for image in excluded.images}
    keep = [i for i, image in enumerate(images.images) if image_key(image) not in keys]
    return images.subset(torch.tensor(keep, dtype=torch.long))


def balanced_split(source: SourceData, data: DataConfig, target: LongTailData) -> LongTailData:
    """`source` made balanced and split like the target: images identical to a target
    validation or test image are removed, then every class keeps the same number of images
    (the smallest class count, capped by `data.max_per_class`), split into weight, α and
    validation parts with the target's fractions and seed."""
    held_out = concat_images(target.val, target.test)
    return build_longtail(
        SourceData(train=without_images(source.train, held_out), test=source.test),
        imbalance_ratio=1.0,
        profile="exponential",  # IR 1: every class at the head count
        **_split_settings(data),
        # The balanced set's own validation part is never evaluated (runs validate on the
        # target's); a split of a balanced set needs no unused images.
        val_source="longtail_split",
    )


@functools.lru_cache(maxsize=2)
def balanced_counterpart(data: DataConfig) -> LongTailData:
    """The balanced training set of the long-tailed data of `data`, for training an
    architecture on both (IMB-NAS' balanced-versus-long-tailed comparison).

    The training images are `data.dataset`'s, every class at the head count (capped by
    `data.max_per_class`), none of them a validation or test image of the long-tailed data;
    all of them train (they are the `weight` part; `alpha` is empty). Validation and test
    sets and the many/medium/few groups are the long-tailed data's, so accuracies of the
    two trainings are measured on the same images and groups. Cached per process.
    """
    target = prepare_data(data)
    balanced = balanced_split(_load(data), data, target)
    train = concat_images(concat_images(balanced.weight, balanced.alpha), balanced.val)
    return LongTailData(
        weight=train,
        alpha=train.subset(torch.zeros(0, dtype=torch.long)),
        val=target.val,
        test=target.test,
        train_counts=tuple(int(n) for n in train.class_counts().tolist()),
        shot_group=target.shot_group,
        mean=balanced.mean,
        std=balanced.std,
    )
