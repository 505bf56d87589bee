"""The ``[study]`` table of a study file: its settings dataclasses (`StudySettings`, with
`SamplerSettings` and `PrunerSettings`), the allowed values and keys, the trial-budget and
study-name limits, and the parser that validates the table (`parse_study_table`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hls_tune.engine.checks import build_dataclass, check_choice
from hls_tune.errors import ConfigError
from hls_tune.study.tables import reject_unknown, table

METRICS = ("val_accuracy", "val_balanced_accuracy")
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "random", "grid", "nsga2")
OBJECTIVES = ("supernet", "architecture")
SIZE_OBJECTIVES = ("architecture_params", "architecture_madds")
MULTI_OBJECTIVE_SAMPLERS = ("tpe", "nsga2", "random")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
SAMPLER_KEYS = {
    "tpe": ("type", "seed", "multivariate", "n_startup_trials", "group", "constant_liar"),
    "random": ("type", "seed"),
    "grid": ("type", "seed"),
    "nsga2": ("type", "seed", "population_size"),
}
PRUNER_KEYS = {
    "median": ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    "successive_halving": ("min_resource", "reduction_factor", "min_early_stopping_rate"),
    "hyperband": ("min_resource", "max_resource", "reduction_factor"),
    "none": (),
}
PATIENT_KEYS = ("patience", "min_delta")
STUDY_KEYS = (
    "name",
    "direction",
    "metric",
    "n_trials",
    "sampler",
    "pruner",
    "objective",
    "directions",
    "size_objective",
)

# The largest trial budget a study may have; every trial is queued when the study is created.
MAX_TRIALS = 10_000
# Optuna's study-name column (MAX_INDEXED_STRING_LENGTH) holds at most this many characters.
MAX_STUDY_NAME_LENGTH = 512


@dataclass(frozen=True)
class SamplerSettings:
    """Which Optuna sampler, with its arguments."""

    type: str = "tpe"
    seed: int | None = None
    multivariate: bool = False
    n_startup_trials: int = 10
    group: bool = False
    constant_liar: bool = True
    population_size: int = 50


@dataclass(frozen=True)
class PrunerSettings:
    """Which Optuna pruner, with its arguments; `patience` wraps it in a PatientPruner."""

    type: str = "median"
    args: Mapping[str, Any] = field(default_factory=dict)
    patience: int | None = None
    min_delta: float = 0.0


@dataclass(frozen=True)
class StudySettings:
    """The [study] table.

    `objective` says whose accuracy is the trial's value: the supernet's at the end of the
    search (`supernet`) or the mean over seeds of the derived architecture trained by the
    [evaluate] stage (`architecture`). `directions` (two entries) makes the study
    multi-objective over (architecture accuracy, `size_objective`); `direction` is then
    unused.
    """

    name: str
    direction: str = "maximize"
    metric: str = "val_balanced_accuracy"
    n_trials: int = 20
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    pruner: PrunerSettings = field(default_factory=PrunerSettings)
    objective: str = "supernet"
    directions: tuple[str, ...] | None = None
    size_objective: str = "architecture_params"

    @property
    def multi_objective(self) -> bool:
        """Whether the study optimises (accuracy, size) rather than one value."""
        return self.directions is not None


def check_study_name(key: str, name: Any) -> str:
    """Returns ``name`` if it can be a study name, else raises a ConfigError naming ``key``.

    A name is a non-empty string of at most 512 characters without control characters,
    line or paragraph separators (it is printed in one line and stored by Optuna).
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{key} must be a non-empty string but got {name!r}.")
    if len(name) > MAX_STUDY_NAME_LENGTH:
        raise ConfigError(
            f"{key} must be at most {MAX_STUDY_NAME_LENGTH} characters but got {len(name)}."
        )
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")]
    if bad:
        raise ConfigError(
            f"{key} must not hold control characters or line breaks but got {name!r} "
            f"(has {bad[0]!a})."
        )
    return name


def parse_study_table(raw: dict[str, Any]) -> StudySettings:
    """The [study] table → StudySettings; every key checked for type, range and consistency.

    Raises:
        ConfigError: an unknown key, a wrong type or value, or settings that do not combine
            (e.g. ``directions`` with a pruner or a single-objective sampler).
    """
    reject_unknown(raw, STUDY_KEYS, "study.")
    sampler_raw = table(raw, "sampler", "study.")
    pruner_raw = table(raw, "pruner", "study.")
    if "directions" in raw and "type" not in pruner_raw:
        pruner_raw["type"] = "none"  # Optuna prunes no multi-objective trial
    sampler = _parse_sampler(sampler_raw)
    pruner = _parse_pruner(pruner_raw)
    if "name" not in raw:
        raise ConfigError('study.name is required, e.g. name = "cifar10-hls" under [study].')
    name = check_study_name("study.name", raw["name"])
    direction = raw.get("direction", "maximize")
    check_choice("study.direction", direction, DIRECTIONS)
    metric = raw.get("metric", "val_balanced_accuracy")
    check_choice("study.metric", metric, METRICS)
    n_trials = raw.get("n_trials", 20)
    if (
        isinstance(n_trials, bool)
        or not isinstance(n_trials, int)
        or not 1 <= n_trials <= MAX_TRIALS
    ):
        raise ConfigError(
            f"study.n_trials must be an integer in [1, {MAX_TRIALS}] but got {n_trials!r}."
        )
    objective = raw.get("objective", "supernet")
    check_choice("study.objective", objective, OBJECTIVES)
    size_objective = raw.get("size_objective", "architecture_params")
    check_choice("study.size_objective", size_objective, SIZE_OBJECTIVES)
    directions = _parse_directions(raw, objective, sampler.type, pruner.type, size_objective)
    return StudySettings(
        name,
        direction,
        metric,
        n_trials,
        sampler,
        pruner,
        objective=objective,
        directions=directions,
        size_objective=size_objective,
    )


def _parse_sampler(sampler_raw: dict[str, Any]) -> SamplerSettings:
    """The [study.sampler] table; its allowed keys depend on its type."""
    sampler_type = sampler_raw.get("type", "tpe")
    check_choice("study.sampler.type", sampler_type, SAMPLERS)
    reject_unknown(sampler_raw, SAMPLER_KEYS[sampler_type], "study.sampler.")
    sampler = build_dataclass(SamplerSettings, sampler_raw, prefix="study.sampler.")
    if sampler.population_size < 2:
        raise ConfigError(
            "study.sampler.population_size must be an integer >= 2 but got "
            f"{sampler.population_size!r}."
        )
    return sampler


def _parse_pruner(pruner_raw: dict[str, Any]) -> PrunerSettings:
    """The [study.pruner] table: its type, the type's integer arguments, and the optional
    PatientPruner wrapping (``patience``, ``min_delta``). Pops the keys it consumes."""
    pruner_type = pruner_raw.pop("type", "median")
    check_choice("study.pruner.type", pruner_type, PRUNERS)
    reject_unknown(pruner_raw, PRUNER_KEYS[pruner_type] + PATIENT_KEYS, "study.pruner.")
    patience = pruner_raw.pop("patience", None)
    min_delta = pruner_raw.pop("min_delta", 0.0)
    for key, value in pruner_raw.items():
        if key == "max_resource" and value == "auto":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"study.pruner.{key} must be a non-negative integer but got {value!r}."
            )
    if patience is not None and (
        isinstance(patience, bool) or not isinstance(patience, int) or patience < 0
    ):
        raise ConfigError(f"study.pruner.patience must be an integer >= 0 but got {patience!r}.")
    if isinstance(min_delta, bool) or not isinstance(min_delta, int | float) or min_delta < 0:
        raise ConfigError(f"study.pruner.min_delta must be a number >= 0 but got {min_delta!r}.")
    return PrunerSettings(pruner_type, pruner_raw, patience, float(min_delta))


def _parse_directions(
    raw: Mapping[str, Any],
    objective: str,
    sampler_type: str,
    pruner_type: str,
    size_objective: str,
) -> tuple[str, ...] | None:
    """study.directions (multi-objective), checked against the settings it needs."""
    directions = raw.get("directions")
    if directions is not None:
        if (
            not isinstance(directions, list)
            or len(directions) != 2
            or any(d not in DIRECTIONS for d in directions)
        ):
            raise ConfigError(
                f"study.directions must be two of {', '.join(DIRECTIONS)} (architecture "
                f"accuracy, then study.size_objective) but got {directions!r}."
            )
        if "direction" in raw:
            raise ConfigError(
                "study.direction and study.directions are both set; keep one "
                "(directions makes the study multi-objective)."
            )
        if objective != "architecture":
            raise ConfigError(
                f'study.directions needs study.objective = "architecture" (the first '
                f"objective is the trained architecture's accuracy) but got {objective!r}."
            )
        if sampler_type not in MULTI_OBJECTIVE_SAMPLERS:
            raise ConfigError(
                f"study.sampler.type must be one of {', '.join(MULTI_OBJECTIVE_SAMPLERS)} "
                f"with study.directions (multi-objective) but got {sampler_type!r}."
            )
        if pruner_type != "none":
            raise ConfigError(
                f'study.pruner.type must be "none" with study.directions: Optuna does not '
                f"prune multi-objective trials, but got {pruner_type!r}."
            )
        return tuple(directions)
    if "size_objective" in raw:
        raise ConfigError(
            f"study.size_objective = {size_objective!r} needs study.directions "
            '(e.g. ["maximize", "minimize"]): it is the second objective.'
        )
    return None
