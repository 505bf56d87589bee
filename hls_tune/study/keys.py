"""The flat names of study files and Optuna parameters, and their translation into the
engine's records: the one place that knows both.

A study file, an Optuna parameter and the dashboard say ``head_alpha_lr_b1``,
``mix_form`` or ``data.imbalance_ratio``; the engine holds an `HLSSchedule` of per-level
`LevelSchedule` records and a `MixingRatio`. Every list of keys here is derived from the
engine's records and registries (which parameters a shape or a μ form reads), never kept by
hand.

The second breakpoint of each level is sampled as its span ∈ [0, 1]
(``alpha_lr_span``, ``head_alpha_lr_span``, ...) with b2 = b1 + span · (1 − b1), so no
sampled trial has b2 < b1.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Collection, Mapping
from typing import Any

from hls_tune.engine.schedules import (
    LEVEL_PARAMS,
    LEVELS,
    MIX_FORMS,
    MIX_PARAMS,
    SHAPES,
    HLSSchedule,
    LevelSchedule,
    MixingRatio,
    default_schedule,
    level_key,
    mix_key,
)
from hls_tune.engine.settings import DataConfig, SearchConfig

# The key prefix of each level ("" is the shared level), and back.
LEVEL_PREFIXES = tuple("" if level == "shared" else f"{level}_" for level in LEVELS)
PREFIX_LEVELS = dict(zip(LEVEL_PREFIXES, LEVELS, strict=True))
# study key → (level, LevelSchedule field); the shared level has no multiplier key.
LEVEL_KEYS = {
    level_key(level, param): (level, param)
    for level in LEVELS
    for param in LEVEL_PARAMS
    if (level, param) != ("shared", "mult")
}
# study key → MixingRatio field.
MIX_KEYS = {mix_key(param): param for param in ("form", *MIX_PARAMS)}
SCHEDULE_KEYS = (*LEVEL_KEYS, "coupling", *MIX_KEYS)
SPAN_KEY = "alpha_lr_span"
SPAN_KEYS = tuple(f"{prefix}{SPAN_KEY}" for prefix in LEVEL_PREFIXES)
SHAPE_KEYS = tuple(level_key(level, "shape") for level in LEVELS)
_B2_KEYS = tuple(level_key(level, "b2") for level in LEVELS)
# The keys whose effect depends on the shape of their level, by level prefix.
SHAPE_PARAMS = {
    prefix: (f"{prefix}alpha_lr_b1", f"{prefix}{SPAN_KEY}", f"{prefix}alpha_lr_floor")
    for prefix in LEVEL_PREFIXES
}
# The mixing parameters each μ form reads, as study keys (from the engine's registry).
MIX_USES = {form: tuple(mix_key(param) for param in spec.reads) for form, spec in MIX_FORMS.items()}

ENGINE_KEYS = tuple(
    f.name for f in dataclasses.fields(SearchConfig) if f.name not in ("data", "schedule")
)
DATA_KEYS = tuple(f.name for f in dataclasses.fields(DataConfig))
SPACE_KEYS = (*ENGINE_KEYS, *(k for k in SCHEDULE_KEYS if k not in _B2_KEYS), *SPAN_KEYS)

_LEVEL_TYPES = typing.get_type_hints(LevelSchedule)
_MIX_TYPES = typing.get_type_hints(MixingRatio)
TYPES: dict[str, Any] = (
    typing.get_type_hints(SearchConfig)
    | {key: _LEVEL_TYPES[param] for key, (_, param) in LEVEL_KEYS.items()}
    | {key: _MIX_TYPES[param] for key, param in MIX_KEYS.items()}
    | {"coupling": str}
    | dict.fromkeys(SPAN_KEYS, float)
    | {f"data.{k}": v for k, v in typing.get_type_hints(DataConfig).items()}
)
# The schedule keys that cannot be None (a level's shape can: tied to the next level).
TYPES["alpha_lr_shape"] = str


def shape_uses(prefix: str, shape: str) -> tuple[str, ...]:
    """The keys of level `prefix` ("" shared, "backbone_", ...) that shape `shape` reads
    (its second breakpoint as the span)."""
    names = {"b1": "alpha_lr_b1", "b2": SPAN_KEY, "floor": "alpha_lr_floor"}
    return tuple(f"{prefix}{names[param]}" for param in SHAPES[shape].reads)


def flat_schedule(schedule: HLSSchedule) -> dict[str, Any]:
    """The schedule as study keys (``alpha_lr_shape``, ``head_alpha_lr_b1``, ``mix_form`` …)."""
    values: dict[str, Any] = {
        key: getattr(getattr(schedule, level), param) for key, (level, param) in LEVEL_KEYS.items()
    }
    values["coupling"] = schedule.coupling
    values |= {key: getattr(schedule.mixing, param) for key, param in MIX_KEYS.items()}
    return values


def schedule_with(start: HLSSchedule, values: Mapping[str, Any]) -> HLSSchedule:
    """`start` with the schedule keys of `values` set (other keys are ignored)."""
    levels: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key in LEVEL_KEYS:
            level, param = LEVEL_KEYS[key]
            levels.setdefault(level, {})[param] = value
    mixing = {MIX_KEYS[k]: v for k, v in values.items() if k in MIX_KEYS}
    changes: dict[str, Any] = {
        level: dataclasses.replace(getattr(start, level), **params)
        for level, params in levels.items()
    }
    if mixing:
        changes["mixing"] = dataclasses.replace(start.mixing, **mixing)
    if "coupling" in values:
        changes["coupling"] = values["coupling"]
    return dataclasses.replace(start, **changes)


def schedule_start(base: SearchConfig, method: str, names: Collection[str]) -> HLSSchedule:
    """The schedule a trial's values are applied to.

    When `names` (the keys a trial sets) include an α-LR shape key at any level, the study
    file describes the schedule's tying itself: start from ``HLSSchedule()`` (all groups
    tied). Otherwise start from the method's default (`default_schedule`: the paper-reading
    preset for ``hls``, BBN's parabolic μ for ``bbn_darts``), or `base`'s own schedule when
    the method is `base`'s.
    """
    if any(name in SHAPE_KEYS for name in names):
        return HLSSchedule()
    if method == base.method:
        assert base.schedule is not None
        return base.schedule
    return default_schedule(method)


def config_with(base: SearchConfig, values: Mapping[str, Any]) -> SearchConfig:
    """A copy of `base` with engine, schedule (each span → its b2) and `data.` keys set.

    The schedule starts from `schedule_start`, so a trial of another method than `base`'s
    gets that method's default schedule (hls: the paper-reading preset; bbn_darts: BBN's
    parabolic μ) under the values it sets.
    """
    engine = {k: v for k, v in values.items() if k in ENGINE_KEYS}
    data = {k[5:]: v for k, v in values.items() if k.startswith("data.")}
    start = schedule_start(base, values.get("method", base.method), values)
    schedule = {k: v for k, v in values.items() if k in LEVEL_KEYS or k in MIX_KEYS}
    if "coupling" in values:
        schedule["coupling"] = values["coupling"]
    for prefix, level in PREFIX_LEVELS.items():
        span = f"{prefix}{SPAN_KEY}"
        if span in values:
            b1 = schedule.get(f"{prefix}alpha_lr_b1", getattr(start, level).b1)
            schedule[f"{prefix}alpha_lr_b2"] = b1 + values[span] * (1.0 - b1)
    return dataclasses.replace(
        base,
        **engine,
        data=dataclasses.replace(base.data, **data),
        schedule=schedule_with(start, schedule),
    )
