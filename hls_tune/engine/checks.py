"""The value checks every settings record uses: one message form, "KEY must be ALLOWED but
got VALUE.", with a did-you-mean for near-misses (no torch, no Optuna)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from hls_tune.errors import ConfigError, did_you_mean

__all__ = [
    "build_dataclass",
    "check_choice",
    "check_device",
    "check_number",
    "check_range",
    "check_type",
    "check_unit",
]


def check_choice(key: str, value: object, allowed: Iterable[str]) -> str:
    """Returns `value` when it is one of `allowed`, else raises ConfigError."""
    allowed = tuple(allowed)
    if isinstance(value, str) and value in allowed:
        return value
    raise ConfigError(
        f"{key} must be one of {', '.join(allowed)} but got {value!r}"
        f"{did_you_mean(value, allowed) if isinstance(value, str) else ''}."
    )


def check_device(key: str, value: object) -> str:
    """Returns `value` when it names a device: auto, cpu, cuda or cuda:N."""
    device = str(value)
    index = device.removeprefix("cuda:")
    if device in ("auto", "cpu", "cuda") or (index != device and index.isdigit()):
        return device
    raise ConfigError(f"{key} must be auto, cpu, cuda or cuda:N but got {value!r}.")


def check_number(key: str, value: object) -> float:
    """Returns `value` as a float when it is a real number (not a bool, not NaN)."""
    # bool is an int subclass, but `alpha_lr_b1 = true` in a study file is a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{key} must be a number but got {value!r}.")
    return float(value)


def check_unit(key: str, value: object) -> float:
    """Returns `value` when it is a number in [0, 1]."""
    number = check_number(key, value)
    if not 0.0 <= number <= 1.0:
        raise ConfigError(f"{key} must be in [0, 1] but got {value!r}.")
    return number


def check_range(
    key: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
) -> float:
    """Returns `value` when low ≤ value ≤ high (low < value with `low_open`) and finite."""
    number = check_number(key, value)
    if math.isinf(number):  # no setting of the engine can run with an infinite value
        raise ConfigError(f"{key} must be a finite number but got {value!r}.")
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and number > high
    if too_low or too_high:
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        opening = "(" if low_open or low is None else "["
        closing = ")" if high is None else "]"  # infinity itself is never allowed
        raise ConfigError(f"{key} must be in {opening}{lo}, {hi}{closing} but got {value!r}.")
    return number


_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def _options(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        return typing.get_args(annotation)
    return (annotation,)


def check_type(key: str, value: Any, annotation: Any) -> None:
    """Raises ConfigError when `value` does not fit a simple field annotation.

    Handles the annotations settings use: str, int, float (an int is accepted), bool,
    `X | None`, tuples of numbers; nested dataclasses are checked by their own fields.
    """
    options = _options(annotation)
    if any(dataclasses.is_dataclass(o) for o in options) and (
        isinstance(value, Mapping) or dataclasses.is_dataclass(value)
    ):
        return  # a nested record validates its own fields
    if value is None:
        if type(None) in options:
            return
        raise ConfigError(f"{key} must be set but got None.")
    for option in options:
        if option is type(None):
            continue
        if typing.get_origin(option) is tuple:
            if isinstance(value, list | tuple) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value
            ):
                return
            continue
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if option in (bool, str) and isinstance(value, option):
            return
    wanted = " or ".join(
        _TYPE_NAMES.get(o, "a table" if dataclasses.is_dataclass(o) else "a list of numbers")
        for o in options
        if o is not type(None)
    )
    raise ConfigError(f"{key} must be {wanted} but got {value!r}.")


def build_dataclass(cls: type, values: Mapping[str, Any], *, prefix: str) -> Any:
    """Instantiates a settings record from plain values, naming unknown keys (with a
    suggestion) and values of the wrong type; nested records (a table for a field whose type
    is a record) are built the same way, their keys named `prefix.field.key`."""
    if not isinstance(values, Mapping):
        where = prefix.rstrip(".") or cls.__name__
        raise ConfigError(f"{where} must be a table but got {values!r}.")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise ConfigError(
                f"unknown key {prefix}{key}{did_you_mean(key, names)}; allowed: {', '.join(names)}."
            )
    hints = typing.get_type_hints(cls)
    built = {}
    for key, value in values.items():
        check_type(f"{prefix}{key}", value, hints[key])
        record = next((o for o in _options(hints[key]) if dataclasses.is_dataclass(o)), None)
        if record is not None and isinstance(value, Mapping):
            value = build_dataclass(record, value, prefix=f"{prefix}{key}.")
        built[key] = value
    return cls(**built)
