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

Where the parsing lives: the file as a whole here (`parse_study_text`, `load_study_file`,
`StudyFile`); the ``[study]`` table in `study_settings`, one ``[space]`` entry in
`param_spec`, the ``[evaluate]`` table in `evaluate_settings`, the flat keys in `keys`.
Their public names stay importable from here.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hls_tune.engine.checks import build_dataclass
from hls_tune.engine.settings import DataConfig, SearchConfig
from hls_tune.errors import ConfigError
from hls_tune.study.evaluate_settings import (
    EVALUATE_KEYS,
    TRAINING_SETS,
    EvaluateSettings,
    parse_evaluate_table,
)
from hls_tune.study.keys import (
    DATA_KEYS,
    ENGINE_KEYS,
    LEVEL_PREFIXES,
    SHAPE_PARAMS,
    SPACE_KEYS,
    config_with,
    schedule_start,
)
from hls_tune.study.param_spec import ParamSpec, parse_param
from hls_tune.study.study_settings import (
    DIRECTIONS,
    MAX_STUDY_NAME_LENGTH,
    MAX_TRIALS,
    METRICS,
    MULTI_OBJECTIVE_SAMPLERS,
    OBJECTIVES,
    PATIENT_KEYS,
    PRUNER_KEYS,
    PRUNERS,
    SAMPLER_KEYS,
    SAMPLERS,
    SIZE_OBJECTIVES,
    STUDY_KEYS,
    PrunerSettings,
    SamplerSettings,
    StudySettings,
    check_study_name,
    parse_study_table,
)
from hls_tune.study.tables import reject_unknown, table

# The names of the tables' modules stay importable from here, where they were defined before
# the [study], [space] entry and [evaluate] parsing moved to their own modules.
__all__ = [
    "DIRECTIONS",
    "EVALUATE_KEYS",
    "MAX_STUDY_FILE_BYTES",
    "MAX_STUDY_NAME_LENGTH",
    "MAX_TRIALS",
    "METRICS",
    "MULTI_OBJECTIVE_SAMPLERS",
    "OBJECTIVES",
    "PATIENT_KEYS",
    "PRUNERS",
    "PRUNER_KEYS",
    "SAMPLERS",
    "SAMPLER_KEYS",
    "SIZE_OBJECTIVES",
    "STUDY_KEYS",
    "TRAINING_SETS",
    "EvaluateSettings",
    "ParamSpec",
    "PrunerSettings",
    "SamplerSettings",
    "StudyFile",
    "StudySettings",
    "check_study_name",
    "config_with",
    "load_study_file",
    "parse_param",
    "parse_study_text",
]

# The study file is stored verbatim with the study; real ones are a few kilobytes.
MAX_STUDY_FILE_BYTES = 256 * 1024


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
    reject_unknown(raw, ("study", "data", "engine", "space", "evaluate"), "")
    if "study" not in raw:
        raise ConfigError(
            f'{source}: the [study] table is required, with at least name = "..." in it.'
        )
    study = parse_study_table(table(raw, "study", ""))
    evaluate = parse_evaluate_table(table(raw, "evaluate", "")) if "evaluate" in raw else None
    if study.objective == "architecture" and evaluate is None:
        raise ConfigError(
            'study.objective = "architecture" needs an [evaluate] table (the stage that '
            'trains the derived architecture); add one or use objective = "supernet".'
        )
    data_raw = table(raw, "data", "")
    engine_raw = table(raw, "engine", "")
    space_raw = table(raw, "space", "")
    space_data_raw = table(space_raw, "data", "space.")
    space_raw.pop("data", None)
    reject_unknown(data_raw, DATA_KEYS, "data.")
    reject_unknown(engine_raw, ENGINE_KEYS, "engine.")
    reject_unknown(space_raw, SPACE_KEYS, "space.")
    reject_unknown(space_data_raw, DATA_KEYS, "space.data.")
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
    base = study_file.default_config()  # the fixed values must combine into a valid config
    _check_levels(study_file)
    _check_pruner_axis(study_file, base)
    if study.sampler.type == "grid":
        for spec in study_file.sampled().values():
            if spec.kind != "choice":
                raise ConfigError(
                    f"space.{spec.name}: the grid sampler needs a list of choices, "
                    f"not a range (low={spec.low!r}, high={spec.high!r})."
                )
    return study_file


def _check_pruner_axis(study_file: StudyFile, base: SearchConfig) -> None:
    """Refuses a pruner whose steps would mean different things in different trials.

    With objective = "supernet" step s is search epoch s of the trial's run
    (`SearchConfig.total_epochs` of them); a sampled key that changes that count (`epochs`,
    `method` with adapt_head among others, adapt_head's `head_epochs`, ...) would make the
    pruner compare, say, the last epoch of a 5-epoch search with the middle of a 10-epoch
    one. With objective = "architecture" the axis is the [evaluate] epochs, fixed per study.
    """
    settings = study_file.study
    if settings.pruner.type == "none" or settings.multi_objective:
        return
    if settings.objective == "architecture":
        return
    for name, spec in study_file.sampled().items():
        values = spec.choices if spec.kind == "choice" else (spec.low, spec.high)
        totals = set()
        for value in values:
            try:
                totals.add(config_with(base, {name: value}).total_epochs)
            except ConfigError:  # a combination the space's own checks decide on
                continue
        if len(totals) > 1:
            raise ConfigError(
                f"space.{name} changes what the pruner's steps mean (search epochs per trial: "
                f"{', '.join(str(t) for t in sorted(totals))}), so the pruner would compare "
                f"different points of different searches; fix it in [engine], set "
                f'[study.pruner] type = "none", or judge the trained architecture '
                f'(objective = "architecture": the steps are [evaluate] epochs).'
            )


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
