"""Data layer: sources → long-tailed splits → device-resident batches (no Optuna here)."""

from hls_tune.engine.data.loader import (
    SAMPLERS,
    DeviceImages,
    InstanceStream,
    augment_batch,
    class_probabilities,
)
from hls_tune.engine.data.longtail import (
    PROFILES,
    SHOT_GROUPS,
    VAL_SOURCES,
    LongTailData,
    Splits,
    build_longtail,
    longtail_counts,
    longtail_indices,
    shot_groups,
    stratified_split,
    unused_balanced_indices,
)
from hls_tune.engine.data.sources import (
    DATASETS,
    ImageSet,
    SourceData,
    concat_images,
    load_source,
)

__all__ = [
    "DATASETS",
    "PROFILES",
    "SAMPLERS",
    "SHOT_GROUPS",
    "VAL_SOURCES",
    "DeviceImages",
    "ImageSet",
    "InstanceStream",
    "LongTailData",
    "SourceData",
    "Splits",
    "augment_batch",
    "build_longtail",
    "class_probabilities",
    "concat_images",
    "load_source",
    "longtail_counts",
    "longtail_indices",
    "shot_groups",
    "stratified_split",
    "unused_balanced_indices",
]
