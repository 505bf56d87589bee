"""The search space: the only place that calls `trial.suggest_*` (trial → SearchConfig)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import optuna

from hls_tune.engine.schedules import ALPHA_GROUPS, FAMILIES, PAPER_READING
from hls_tune.engine.settings import SearchConfig
from hls_tune.study.config import ParamSpec, StudyFile
from hls_tune.study.keys import (
    LEVEL_PREFIXES,
    MIX_USES,
    PREFIX_LEVELS,
    SCHEDULE_KEYS,
    SHAPE_KEYS,
    SHAPE_PARAMS,
    SPAN_KEY,
    SPAN_KEYS,
    config_with,
    flat_schedule,
    schedule_start,
    shape_uses,
)

_MIX_PARAMS = {name for names in MIX_USES.values() for name in names}
_LEVEL_PARAMS = {name: prefix for prefix, names in SHAPE_PARAMS.items() for name in names}
_SHAPE_LEVELS = {f"{prefix}alpha_lr_shape": prefix for prefix in LEVEL_PREFIXES}
SCHEDULE_NAMES = frozenset(SCHEDULE_KEYS) | frozenset(SPAN_KEYS)


def _suggest_one(trial: optuna.Trial, spec: ParamSpec) -> Any:
    if spec.kind == "choice":
        return trial.suggest_categorical(spec.name, list(spec.choices))
    if spec.kind == "int":
        return trial.suggest_int(
            spec.name, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log
        )
    return trial.suggest_float(
        spec.name, float(spec.low), float(spec.high), step=spec.step, log=spec.log
    )


def levels_in_effect(names: Collection[str], method: str, base: SearchConfig) -> set[str]:
    """The level prefixes whose shape some α group follows, given the keys a study names.

    A group follows its own level when the group's shape is set (named, or set by the
    starting schedule), else its family's when that is set, else the shared level ("").
    """
    start = schedule_start(base, method, names)

    def is_set(prefix: str) -> bool:
        key = f"{prefix}alpha_lr_shape"
        return key in names or getattr(start, PREFIX_LEVELS[prefix]).shape is not None

    levels = set()
    for group in ALPHA_GROUPS:
        for prefix in (f"{group}_", f"{FAMILIES[group]}_", ""):
            if prefix == "" or is_set(prefix):
                levels.add(prefix)
                break
    return levels


def choose(
    study_file: StudyFile, pick: Callable[[ParamSpec], Any], *, grid: bool = False
) -> tuple[SearchConfig, dict[str, Any]]:
    """Picks a value for every space entry that has an effect, in dependency order.

    Selectors first (the method, the α-LR shapes of the levels some group follows, the
    mixing form), then the entries they make matter: a level's breakpoints and floor only
    when its shape uses them, a mixing parameter only for its form. An entry with no
    effect is left out (with `grid`, every entry is picked, as the grid sampler requires).

    Args:
        study_file: the study file.
        pick: the value of one entry (a trial's suggestion, or a fixed table).
        grid: pick every entry.

    Returns:
        The config and the dict of values used.
    """
    values: dict[str, Any] = {}

    def take(spec: ParamSpec) -> None:
        values[spec.name] = spec.value if spec.is_fixed else pick(spec)

    space = study_file.space
    conditional = set(_MIX_PARAMS) | set(_LEVEL_PARAMS) | set(SHAPE_KEYS)
    for name, spec in space.items():
        if name not in conditional:
            take(spec)
    method = values.get("method", study_file.base.method)
    in_effect = levels_in_effect(space.keys(), method, study_file.base)
    start = schedule_start(study_file.base, method, space.keys())
    for name, spec in space.items():
        if name in _SHAPE_LEVELS and (grid or _SHAPE_LEVELS[name] in in_effect):
            take(spec)
    for name, spec in space.items():
        prefix = _LEVEL_PARAMS.get(name)
        if prefix is None:
            continue
        shape = values.get(f"{prefix}alpha_lr_shape", getattr(start, PREFIX_LEVELS[prefix]).shape)
        if grid or (prefix in in_effect and shape and name in shape_uses(prefix, shape)):
            take(spec)
    for name, spec in space.items():
        if name in _MIX_PARAMS:
            form = values.get("mix_form", start.mixing.form)
            if grid or name in MIX_USES.get(form, ()):
                take(spec)
    return config_with(study_file.base, values), values


def suggest(trial: optuna.Trial, study_file: StudyFile) -> tuple[SearchConfig, dict[str, Any]]:
    """Samples every non-fixed space entry that has an effect and builds the trial's config.

    Conditional entries (each level's α-LR shape, breakpoints and floor, the parameter of
    the mixing form) are only sampled when they have an effect (see `choose`), so the study
    never records a parameter that had none. With the grid sampler every entry is sampled,
    as the grid requires.

    Returns:
        The config and the dict of values this trial used (sampled and fixed).
    """
    grid = isinstance(trial.study.sampler, optuna.samplers.GridSampler)
    return choose(study_file, lambda spec: _suggest_one(trial, spec), grid=grid)


def grid_search_space(study_file: StudyFile) -> dict[str, list[Any]]:
    """The grid sampler's search space: every sampled entry's list of choices."""
    return {name: list(spec.choices) for name, spec in study_file.sampled().items()}


def _contains(spec: ParamSpec, value: Any) -> bool:
    if spec.is_fixed:
        return spec.value == value
    if spec.kind == "choice":
        return value in spec.choices
    return isinstance(value, int | float) and spec.low <= value <= spec.high


def _same_schedule(config: SearchConfig, reference: SearchConfig, points: int = 41) -> bool:
    ours, theirs = config.schedule, reference.schedule
    assert ours is not None and theirs is not None
    a, b = ours.curves(1.0, points), theirs.curves(1.0, points)
    return all(abs(x - y) <= 1e-12 for key in a for x, y in zip(a[key], b[key], strict=True))


def _followed_in_preset(level: str) -> str:
    """The level whose shape the groups of `level` follow in the preset."""
    if level == "shared":
        return level
    group = level if level in ALPHA_GROUPS else next(g for g, f in FAMILIES.items() if f == level)
    return PAPER_READING.level(group)


def _preset_values() -> dict[str, Any]:
    """The preset as the value of every schedule key and span. A level the preset leaves
    tied gets the values of the level its groups follow, so a study that unties it can
    still express the preset; multipliers are 1."""
    flat = flat_schedule(PAPER_READING)
    wanted: dict[str, Any] = {"coupling": flat["coupling"]}
    wanted |= {key: value for key, value in flat.items() if key.startswith("mix_")}
    for prefix, level in PREFIX_LEVELS.items():
        record = getattr(PAPER_READING, _followed_in_preset(level))
        wanted[f"{prefix}alpha_lr_shape"] = record.shape
        for param in ("b1", "b2", "floor"):
            wanted[f"{prefix}alpha_lr_{param}"] = getattr(record, param)
        wanted[f"{prefix}alpha_lr_mult"] = 1.0
        b1, b2 = record.b1, record.b2
        wanted[f"{prefix}{SPAN_KEY}"] = 0.0 if b1 >= 1.0 else (b2 - b1) / (1.0 - b1)
    return wanted


def paper_reading_params(study_file: StudyFile) -> dict[str, Any] | None:
    """The parameters of the paper-reading preset trial (SPEC §4) to queue first in this
    study: `preset_in_space`, except under the grid sampler, which runs exactly its grid
    (an extra trial would repeat one of its points and leave another unrun); there the
    preset runs as a grid point when the grid contains it (`preset_note` says which)."""
    if study_file.study.sampler.type == "grid":
        return None
    return preset_in_space(study_file)


def preset_note(study_file: StudyFile, queued: bool) -> str:
    """One line for `study create` on the paper-reading trial of an HLS study."""
    if queued:
        return "first trial: the paper-reading preset (enqueued)"
    if study_file.study.sampler.type == "grid":
        if preset_in_space(study_file) is not None:
            return (
                "no extra paper-reading trial: the grid sampler runs exactly its grid, and the "
                "preset is one of its points"
            )
        return (
            "no paper-reading trial: the grid sampler runs exactly its grid, which does not "
            "contain the preset"
        )
    return (
        "no paper-reading trial enqueued: the space cannot express the preset "
        "(it ties the groups or fixes a contradicting value)"
    )


def preset_in_space(study_file: StudyFile) -> dict[str, Any] | None:
    """The parameters of the paper-reading preset (SPEC §4) in this study's space.

    Every sampled entry that names a schedule setting gets the preset's value (a span from
    the preset's breakpoints, a level's shape from the shape the preset gives that level's
    groups); every other sampled entry its range's default when it has one. None when the
    study is not an HLS study (its method is not fixed to ``hls``) or its space cannot
    express the preset (a fixed or out-of-range entry contradicts it): the trial built
    from the parameters must give every group the preset's learning rate at every point.
    """
    method_spec = study_file.space.get("method")
    method = study_file.base.method if method_spec is None else method_spec.value
    if method != "hls" or (method_spec is not None and not method_spec.is_fixed):
        return None
    wanted = _preset_values()
    params: dict[str, Any] = {}
    for name, spec in study_file.space.items():
        if name in wanted:
            if not _contains(spec, wanted[name]):
                return None
            if not spec.is_fixed:
                params[name] = wanted[name]
        elif not spec.is_fixed and spec.default is not None:
            params[name] = spec.default

    def pick(spec: ParamSpec) -> Any:
        if spec.name in params:
            return params[spec.name]
        if spec.name in SCHEDULE_NAMES:
            raise LookupError(spec.name)
        # Not a schedule setting and no default: the sampler draws it for the preset trial;
        # any value in range checks the schedule.
        return spec.choices[0] if spec.kind == "choice" else spec.low

    try:
        config, used = choose(study_file, pick)
    except LookupError:
        return None  # a schedule entry the preset does not set and has no default for
    if not _same_schedule(config, SearchConfig(method="hls")):
        return None
    return {name: value for name, value in used.items() if name in params}
