"""Reading a study file's TOML tables: a sub-table by key, and the unknown-key check.

Shared by the parsers of every table (`config`, `study_settings`, `param_spec`,
`evaluate_settings`), so that each names the offending key the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hls_tune.errors import ConfigError, did_you_mean


def table(parent: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    """``parent[key]`` as a new dict (empty when absent); ConfigError if it is not a table.

    Args:
        parent: the enclosing table.
        key: the sub-table's key.
        where: the enclosing table's dotted prefix for messages ("" or e.g. "study.").
    """
    value = parent.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}{key} must be a table but got {value!r}.")
    return dict(value)


def reject_unknown(values: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """Raises a ConfigError naming the first key of ``values`` that is not in ``allowed``.

    Args:
        values: the table read from the file.
        allowed: its known keys, listed in the message.
        where: the table's dotted prefix for messages ("" or e.g. "study.sampler.").
    """
    for key in values:
        if key not in allowed:
            raise ConfigError(
                f"unknown key {where}{key}{did_you_mean(key, allowed)}; "
                f"allowed: {', '.join(allowed)}."
            )
