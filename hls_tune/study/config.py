"""Study files (TOML) → validated, frozen dataclasses; every error names the key and value.

A study file has four tables:

- ``[study]`` name, direction, metric, global trial budget, ``[study.sampler]``,
  ``[study.pruner]``;
- ``[data]`` fixed data settings (`hls_tune.engine.settings.DataConfig` fields);
- ``[engine]`` fixed engine settings (`hls_tune.engine.settings.SearchConfig` fields);
- ``[space]`` the search space: each key is a fixed value, a list of choices, or a range
  table ``{ low, high, log?, step?, default? }`` (``{ choices = [...], default? }`` also
  works). Keys are engine keys, the HLS schedule keys, the span keys and, under
  ``[space.data]``, data keys. A key is set in one table only.
- ``[evaluate]`` (optional) the second stage of a trial: the derived genotype trained from
  scratch with a proxy recipe (`EvaluateSettings`); ``[study] objective`` says which
  stage's accuracy is the trial's value, ``[study] directions`` makes the study
  multi-objective (architecture accuracy and its size).

The second breakpoint of each level is sampled as its span ∈ [0, 1]
(``alpha_lr_span``, ``backbone_alpha_lr_span``, ``head_conventional_alpha_lr_span``, ...)
with ``<p>alpha_lr_b2 = <p>alpha_lr_b1 + <p>alpha_lr_span · (1 − <p>alpha_lr_b1)``, so no
sampled trial has b2 < b1.

Per-group α schedules (SPEC §4): a level's shape key (``backbone_alpha_lr_shape``,
``head_alpha_lr_shape``, ``<group>_alpha_lr_shape``) unties its groups from the shared
``alpha_lr_shape``; a study file that names no level key ties all four groups to the shared
shape, as single-shape study files always did. A study file whose space names no α-LR shape
key at all starts from its method's default schedule (the paper-reading preset for ``hls``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
import typing
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hls_tune.engine.checks import build_dataclass, check_choice, check_type
from hls_tune.engine.settings import DataConfig, SearchConfig
from hls_tune.errors import ConfigError, did_you_mean
from hls_tune.study.keys import (
    DATA_KEYS,
    ENGINE_KEYS,
    LEVEL_PREFIXES,
    SHAPE_PARAMS,
    SPACE_KEYS,
    SPAN_KEYS,
    TYPES,
    config_with,
    schedule_start,
)

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

@dataclass(frozen=True)
class ParamSpec:
    """One search-space entry: a fixed value, a list of choices, or a numeric range."""

    name: str
    kind: str  # "fixed" | "choice" | "float" | "int"
    value: Any = None
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    default: Any = None

    @property
    def is_fixed(self) -> bool:
        """Whether the entry is a fixed value (not sampled)."""
        return self.kind == "fixed"

    def default_value(self) -> Any:
        """The value a single search without Optuna uses (`hls-tune search`)."""
        if self.kind == "fixed":
            return self.value
        return self.default


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


@dataclass(frozen=True)
class EvaluateSettings:
    """The [evaluate] table: the proxy recipe that trains a trial's derived genotype.

    The network trains from scratch on the long-tailed training set (the search's weight
    and α splits together) and is validated every epoch on the search's validation set;
    BBN genotypes train as BBN networks with the trial's mixing-ratio form.

    Args:
        channels: C of the first cells.
        layers: cells of the (shared) backbone.
        epochs: training epochs per seed.
        batch_size: images per step (per branch for BBN).
        lr: initial SGD learning rate (cosine-annealed to 0).
        cutout: cutout of side image/2 on or off.
        drop_path: drop-path (growing to 0.2) on or off.
        auxiliary: auxiliary head (weight 0.4) on or off.
        seeds: networks trained per trial, with seeds `engine.seed + i`; their
            figures are averaged.
        trains_on: the training sets, each trained `seeds` times: "longtail" (the
            search's long-tailed set; required, its accuracy is the trial's) and
            optionally "balanced" (the same dataset with every class at the head count,
            `engine.datasets.balanced_counterpart`), validated on the same images, so that
            `compare` can rank-correlate the two (IMB-NAS' claim).
    """

    channels: int = 8
    layers: int = 5
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.025
    cutout: bool = True
    drop_path: bool = True
    auxiliary: bool = True
    seeds: int = 1
    trains_on: tuple[str, ...] = ("longtail",)


TRAINING_SETS = ("longtail", "balanced")
EVALUATE_KEYS = tuple(f.name for f in dataclasses.fields(EvaluateSettings))


@dataclass(frozen=True)
class StudyFile:
    """A validated study file: settings, the fixed base config and the search space."""

    study: StudySettings
    base: SearchConfig
    space: Mapping[str, ParamSpec]
    text: str
    sha256: str
    evaluate: EvaluateSettings | None = None

    def default_config(self) -> SearchConfig:
        """The fixed settings with every sampled parameter at its default."""
        values = {
            name: spec.default_value()
            for name, spec in self.space.items()
            if spec.default_value() is not None
        }
        return config_with(self.base, values)

    def sampled(self) -> dict[str, ParamSpec]:
        """The entries Optuna samples (not fixed)."""
        return {n: s for n, s in self.space.items() if not s.is_fixed}


def _table(parent: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}{key} must be a table but got {value!r}.")
    return dict(value)


def _reject_unknown(values: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in values:
        if key not in allowed:
            raise ConfigError(
                f"unknown key {where}{key}{did_you_mean(key, allowed)}; "
                f"allowed: {', '.join(allowed)}."
            )


def _check_value(name: str, value: Any) -> None:
    """Validates one space value by building a config that holds it."""
    check_type(name, value, TYPES[name])
    if name in SPAN_KEYS:
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be in [0, 1] but got {value!r}.")
        return
    try:
        config_with(SearchConfig(), {name: value})
    except ConfigError as exc:
        message = str(exc)
        if name.startswith("data.") and "data.root is required" in message:
            return  # dataset choices are checked against root when the full config is built
        if name.endswith("alpha_lr_b1") and "alpha_lr_b2" in message:
            return  # b2 is derived from the span, so every b1 in [0, 1] is valid
        raise


def parse_param(name: str, raw: Any) -> ParamSpec:
    """One [space] entry → ParamSpec, validating every bound, choice and default."""
    where = f"space.{name}"
    if isinstance(raw, list):
        raw = {"choices": raw}
    if not isinstance(raw, dict):
        _check_value(name, raw)
        return ParamSpec(name, "fixed", value=raw)
    if "choices" in raw:
        _reject_unknown(raw, ("choices", "default"), f"{where}.")
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices must be a non-empty list but got {choices!r}.")
        for choice in choices:
            _check_value(name, choice)
        default = raw.get("default")
        if default is not None and default not in choices:
            raise ConfigError(f"{where}.default {default!r} is not one of {choices!r}.")
        return ParamSpec(name, "choice", choices=tuple(choices), default=default)
    _reject_unknown(raw, ("low", "high", "log", "step", "default"), f"{where}.")
    for bound in ("low", "high"):
        if bound not in raw:
            raise ConfigError(f"{where} needs '{bound}' (or use 'choices' or a fixed value).")
    low, high, log, step = raw["low"], raw["high"], raw.get("log", False), raw.get("step")
    annotation = TYPES[name]
    kind = "int" if annotation is int else "float"
    if annotation not in (int, float) and float not in typing.get_args(annotation):
        raise ConfigError(f"{where} is not numeric: give a fixed value or a list of choices.")
    for bound, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}.{bound} must be a number but got {value!r}.")
    if low > high:
        raise ConfigError(
            f"{where}: low must not exceed high, but got low={low!r} > high={high!r}."
        )
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log must be true or false but got {log!r}.")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, but got low={low!r}.")
    if step is not None and (log or isinstance(step, bool) or not step > 0):
        raise ConfigError(f"{where}.step must be a positive number without log but got {step!r}.")
    for value in (low, high):
        _check_value(name, int(value) if kind == "int" else float(value))
    default = raw.get("default")
    if default is not None:
        if not low <= default <= high:
            raise ConfigError(f"{where}.default {default!r} is outside [{low!r}, {high!r}].")
        _check_value(name, default)
    return ParamSpec(name, kind, low=low, high=high, log=log, step=step, default=default)


# The largest trial budget a study may have; every trial is queued when the study is created.
MAX_TRIALS = 10_000
# Optuna's study-name column (MAX_INDEXED_STRING_LENGTH) holds at most this many characters.
MAX_STUDY_NAME_LENGTH = 512
# The study file is stored verbatim with the study; real ones are a few kilobytes.
MAX_STUDY_FILE_BYTES = 256 * 1024


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


def _parse_study(raw: dict[str, Any], fallback_name: str) -> StudySettings:
    _reject_unknown(raw, STUDY_KEYS, "study.")
    sampler_raw = _table(raw, "sampler", "study.")
    pruner_raw = _table(raw, "pruner", "study.")
    if "directions" in raw and "type" not in pruner_raw:
        pruner_raw["type"] = "none"  # Optuna prunes no multi-objective trial
    sampler_type = sampler_raw.get("type", "tpe")
    check_choice("study.sampler.type", sampler_type, SAMPLERS)
    _reject_unknown(sampler_raw, SAMPLER_KEYS[sampler_type], "study.sampler.")
    sampler = build_dataclass(SamplerSettings, sampler_raw, prefix="study.sampler.")
    if sampler.population_size < 2:
        raise ConfigError(
            "study.sampler.population_size must be an integer >= 2 but got "
            f"{sampler.population_size!r}."
        )
    pruner_type = pruner_raw.pop("type", "median")
    check_choice("study.pruner.type", pruner_type, PRUNERS)
    _reject_unknown(pruner_raw, PRUNER_KEYS[pruner_type] + PATIENT_KEYS, "study.pruner.")
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
    pruner = PrunerSettings(pruner_type, pruner_raw, patience, float(min_delta))
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
        directions = tuple(directions)
    elif "size_objective" in raw:
        raise ConfigError(
            f"study.size_objective = {size_objective!r} needs study.directions "
            '(e.g. ["maximize", "minimize"]): it is the second objective.'
        )
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


def _parse_evaluate(raw: dict[str, Any]) -> EvaluateSettings:
    """The [evaluate] table; every key checked for type and range."""
    _reject_unknown(raw, EVALUATE_KEYS, "evaluate.")
    raw = dict(raw)
    if "trains_on" in raw:
        raw["trains_on"] = _parse_trains_on(raw["trains_on"])
    hints = typing.get_type_hints(EvaluateSettings)
    for key, value in raw.items():
        if key == "trains_on":
            continue
        check_type(f"evaluate.{key}", value, hints[key])
        if hints[key] is int and value < 1:
            raise ConfigError(f"evaluate.{key} must be an integer >= 1 but got {value!r}.")
        if key == "lr" and not 0 < value < float("inf"):
            raise ConfigError(f"evaluate.lr must be a number > 0 but got {value!r}.")
    return EvaluateSettings(**raw)


def _parse_trains_on(value: Any) -> tuple[str, ...]:
    """evaluate.trains_on: distinct names of `TRAINING_SETS`, "longtail" among them; returned
    in `TRAINING_SETS` order (the order of the evaluation steps)."""
    allowed = ", ".join(f'"{name}"' for name in TRAINING_SETS)
    if (
        not isinstance(value, list)
        or not value
        or any(not isinstance(v, str) or v not in TRAINING_SETS for v in value)
        or len(set(value)) != len(value)
    ):
        raise ConfigError(
            f"evaluate.trains_on must be a list of distinct names from {allowed} but got {value!r}."
        )
    if "longtail" not in value:
        raise ConfigError(
            f'evaluate.trains_on must include "longtail" (the architecture trained on the '
            f"long-tailed set gives the trial's accuracy) but got {value!r}."
        )
    return tuple(name for name in TRAINING_SETS if name in value)


def parse_study_text(text: str, *, source: str = "<study file>") -> StudyFile:
    """Parses and validates a study file's text.

    Raises:
        ConfigError: malformed TOML, unknown keys, wrong types, bad ranges or values.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_STUDY_FILE_BYTES:
        raise ConfigError(
            f"{source}: a study file must be at most {MAX_STUDY_FILE_BYTES} bytes but has {size}."
        )
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc}).") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML (nested too deeply).") from None
    _reject_unknown(raw, ("study", "data", "engine", "space", "evaluate"), "")
    if "study" not in raw:
        raise ConfigError(
            f'{source}: the [study] table is required, with at least name = "..." in it.'
        )
    study = _parse_study(_table(raw, "study", ""), Path(source).stem)
    evaluate = _parse_evaluate(_table(raw, "evaluate", "")) if "evaluate" in raw else None
    if study.objective == "architecture" and evaluate is None:
        raise ConfigError(
            'study.objective = "architecture" needs an [evaluate] table (the stage that '
            'trains the derived architecture); add one or use objective = "supernet".'
        )
    data_raw = _table(raw, "data", "")
    engine_raw = _table(raw, "engine", "")
    space_raw = _table(raw, "space", "")
    space_data_raw = _table(space_raw, "data", "space.")
    space_raw.pop("data", None)
    _reject_unknown(data_raw, DATA_KEYS, "data.")
    _reject_unknown(engine_raw, ENGINE_KEYS, "engine.")
    _reject_unknown(space_raw, SPACE_KEYS, "space.")
    _reject_unknown(space_data_raw, DATA_KEYS, "space.data.")
    for key in space_raw:
        if key in engine_raw:
            raise ConfigError(f"{key} is set in both [engine] and [space]; keep one.")
    for key in space_data_raw:
        if key in data_raw:
            raise ConfigError(f"data.{key} is set in both [data] and [space.data]; keep one.")
    space = {name: parse_param(name, value) for name, value in space_raw.items()}
    space |= {f"data.{k}": parse_param(f"data.{k}", v) for k, v in space_data_raw.items()}
    data = build_dataclass(DataConfig, data_raw, prefix="data.")
    base = build_dataclass(SearchConfig, engine_raw | {"data": data}, prefix="engine.")
    study_file = StudyFile(
        study=study,
        base=base,
        space=space,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        evaluate=evaluate,
    )
    study_file.default_config()  # the fixed values must combine into a valid config
    _check_levels(study_file)
    if study.sampler.type == "grid":
        for spec in study_file.sampled().values():
            if spec.kind != "choice":
                raise ConfigError(
                    f"space.{spec.name}: the grid sampler needs a list of choices, "
                    f"not a range (low={spec.low!r}, high={spec.high!r})."
                )
    return study_file


def _check_levels(study_file: StudyFile) -> None:
    """A level's breakpoints and floor without a shape at that level can have no effect."""
    names = set(study_file.space)
    start = schedule_start(study_file.base, study_file.base.method, names)
    for prefix in LEVEL_PREFIXES[1:]:
        shape = f"{prefix}alpha_lr_shape"
        if shape in names or getattr(start, prefix.removesuffix("_")).shape is not None:
            continue
        for name in SHAPE_PARAMS[prefix]:
            if name in names:
                raise ConfigError(
                    f"space.{name} has no effect without {shape} (the level is tied to the "
                    f"next one); add {shape} or remove {name}."
                )


def load_study_file(path: str | Path) -> StudyFile:
    """Reads and validates a study file from disk."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file {str(path)!r} does not exist.")
    if path.stat().st_size > MAX_STUDY_FILE_BYTES:
        raise ConfigError(
            f"study file {str(path)!r}: a study file must be at most {MAX_STUDY_FILE_BYTES} "
            f"bytes but has {path.stat().st_size}."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"study file {str(path)!r} cannot be read: {exc}.") from None
    return parse_study_text(text, source=str(path))
