"""The long-tailed data of a `DataConfig`, built once per process and shared by every loop."""

from __future__ import annotations

import functools

from hls_tune.engine.data import LongTailData, build_longtail, load_source
from hls_tune.engine.settings import DataConfig


@functools.lru_cache(maxsize=4)
def prepare_data(data: DataConfig) -> LongTailData:
    """Loads the source and builds the long-tailed splits (cached per process)."""
    source = load_source(
        data.dataset,
        data.root,
        image_size=data.image_size,
        download=data.download,
        test_per_class=data.test_per_class,
        seed=data.seed,
    )
    return build_longtail(
        source,
        imbalance_ratio=data.imbalance_ratio,
        profile=data.profile,
        val_fraction=data.val_fraction,
        alpha_fraction=data.alpha_fraction,
        seed=data.seed,
        many_above=data.many_above,
        few_below=data.few_below,
        max_per_class=data.max_per_class,
        val_source=data.val_source,
        val_per_class=data.val_per_class,
    )
