"""One entry of a study file's ``[space]`` table: `ParamSpec` (a fixed value, a list of
choices, or a numeric range with optional log, step and default) and `parse_param`, which
validates every bound, choice and default against the engine's own checks.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from hls_tune.engine.checks import check_type
from hls_tune.engine.settings import SearchConfig
from hls_tune.errors import ConfigError
from hls_tune.study.keys import SPAN_KEYS, TYPES, config_with
from hls_tune.study.tables import reject_unknown


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
        reject_unknown(raw, ("choices", "default"), f"{where}.")
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices must be a non-empty list but got {choices!r}.")
        for choice in choices:
            _check_value(name, choice)
        default = raw.get("default")
        if default is not None and default not in choices:
            raise ConfigError(f"{where}.default {default!r} is not one of {choices!r}.")
        return ParamSpec(name, "choice", choices=tuple(choices), default=default)
    reject_unknown(raw, ("low", "high", "log", "step", "default"), f"{where}.")
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
