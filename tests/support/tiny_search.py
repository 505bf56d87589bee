"""The tiny digits data and search settings the engine's tests run on."""

from __future__ import annotations

from hls_tune.engine.schedules import HLSSchedule, LevelSchedule, MixingRatio
from hls_tune.engine.settings import DataConfig, SearchConfig

TINY_DATA = DataConfig(
    dataset="digits",
    image_size=8,
    imbalance_ratio=10,
    val_fraction=0.15,
    many_above=30,
    few_below=10,
    max_per_class=60,
    val_per_class=10,
)


def tiny_config(**overrides) -> SearchConfig:
    values = dict(
        method="hls",
        data=TINY_DATA,
        channels=4,
        layers=3,
        epochs=2,
        batch_size=32,
        flip=False,
        crop_padding=1,
        device="cpu",
        alpha_lr=3e-3,
        schedule=HLSSchedule(shared=LevelSchedule("cosine", b1=0.2), mixing=MixingRatio("cosine")),
    )
    return SearchConfig(**values | overrides)
