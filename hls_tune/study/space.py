"""The search space: the only place that calls `trial.suggest_*` (trial → SearchConfig)."""

from __future__ import annotations

from typing import Any

import optuna

from hls_tune.engine.settings import SearchConfig
from hls_tune.study.config import MIX_USES, SHAPE_USES, ParamSpec, StudyFile, config_with

# Parameters sampled only when the value of their selector uses them.
_SELECTORS = {"alpha_lr_shape": SHAPE_USES, "mix_form": MIX_USES}
_CONDITIONAL = {
    name: selector
    for selector, uses in _SELECTORS.items()
    for names in uses.values()
    for name in names
}


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


def suggest(trial: optuna.Trial, study_file: StudyFile) -> tuple[SearchConfig, dict[str, Any]]:
    """Samples every non-fixed space entry and builds the trial's engine config.

    Conditional entries (the breakpoints and floor of the α-LR shape, the parameter of the
    mixing form) are only sampled when the selected shape or form uses them, so the study
    never records a parameter that had no effect. With the grid sampler every entry is
    sampled, as the grid requires.

    Returns:
        The config and the dict of values this trial used (sampled and fixed).
    """
    grid = isinstance(trial.study.sampler, optuna.samplers.GridSampler)
    values: dict[str, Any] = {}
    pending = dict(study_file.space)
    # Selectors first, so that conditional entries know whether they matter.
    for name in [n for n in pending if n not in _CONDITIONAL]:
        spec = pending.pop(name)
        values[name] = spec.value if spec.is_fixed else _suggest_one(trial, spec)
    for name, spec in pending.items():
        selector = _CONDITIONAL[name]
        selected = values.get(selector, getattr(study_file.base.schedule, selector))
        if not grid and name not in _SELECTORS[selector].get(selected, ()):
            continue
        values[name] = spec.value if spec.is_fixed else _suggest_one(trial, spec)
    return config_with(study_file.base, values), values


def grid_search_space(study_file: StudyFile) -> dict[str, list[Any]]:
    """The grid sampler's search space: every sampled entry's list of choices."""
    return {name: list(spec.choices) for name, spec in study_file.sampled().items()}
