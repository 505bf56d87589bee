"""HLS schedules as pure functions of progress t ∈ [0, 1] (SPEC §2, §4).

`mixing`: μ(t) forms and the `MixingRatio` record; `shapes`: the α-LR shape registry and
the `LevelSchedule` record; `hls`: per-group α learning rates (`HLSSchedule`), couplings,
the paper-reading preset and α-progress.
"""

from hls_tune.engine.schedules.hls import (
    ALPHA_GROUPS,
    COUPLINGS,
    FAMILIES,
    GROUP_LEVELS,
    LEVELS,
    PAPER_READING,
    SCHEDULE_FIELDS,
    HLSSchedule,
    alpha_learning_rates,
    alpha_progress,
    default_schedule,
    group_coupling,
    level_key,
    mix_key,
)
from hls_tune.engine.schedules.mixing import (
    MIX_FORMS,
    MIX_PARAMS,
    MixingRatio,
    is_symmetric,
    mixing_ratio,
)
from hls_tune.engine.schedules.shapes import (
    ALPHA_LR_SHAPES,
    LEVEL_PARAMS,
    SHAPES,
    LevelSchedule,
    alpha_lr_shape,
)

__all__ = [
    "ALPHA_GROUPS",
    "ALPHA_LR_SHAPES",
    "COUPLINGS",
    "FAMILIES",
    "GROUP_LEVELS",
    "LEVELS",
    "LEVEL_PARAMS",
    "MIX_FORMS",
    "MIX_PARAMS",
    "PAPER_READING",
    "SCHEDULE_FIELDS",
    "SHAPES",
    "HLSSchedule",
    "LevelSchedule",
    "MixingRatio",
    "alpha_learning_rates",
    "alpha_lr_shape",
    "alpha_progress",
    "default_schedule",
    "group_coupling",
    "is_symmetric",
    "level_key",
    "mix_key",
    "mixing_ratio",
]
