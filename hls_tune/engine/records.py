"""Settings fields that declare their role, and the lists and digests derived from them.

Every field of a settings record (`SearchConfig`, `DataConfig`, `TrainConfig`) says what it
is for, so which fields define a cached source search, a resumable run or a training recipe
is derived, never kept as a list by hand that a new field can be forgotten in:

- ``source``: it shapes adapt_head's balanced source search (and so every run);
- ``target``: it only shapes the run on the target (every method but adapt_head has only a
  target run);
- ``recipe``: it shapes a training run of a fixed genotype;
- ``seed``: the seed of a run;
- ``precision``: the arithmetic precision (autocast): a run resumes across it (checkpoints
  hold float32 tensors either way), but a cached result is only reused under the same one;
- ``execution``: where and how fast it runs, not what it computes (device, kernels,
  evaluation batch size);
- ``record``: a nested record whose own fields say their roles.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Collection
from typing import Any

__all__ = ["ROLES", "digest", "fields_with_role", "role_of", "setting"]

ROLES = ("source", "target", "recipe", "seed", "precision", "execution", "record")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    role: str,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its role (one of ``ROLES``) in its metadata."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)} but got {role!r}.")
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={"role": role}
    )


def role_of(field: dataclasses.Field) -> str | None:
    """The role a field declares (None: it declares none, which a test forbids)."""
    return field.metadata.get("role")


def fields_with_role(cls: type, *roles: str) -> tuple[str, ...]:
    """The names of `cls`'s fields whose role is one of `roles`, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls) if role_of(f) in roles)


def _plain(value: Any, drop: Collection[str]) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain(getattr(value, f.name), drop)
            for f in dataclasses.fields(value)
            if role_of(f) not in drop
        }
    if isinstance(value, tuple | list):
        return [_plain(v, drop) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, drop) for k, v in value.items()}
    return value


def digest(record: Any, *, drop: Collection[str] = ("execution",), length: int = 16) -> str:
    """A short hash of a record's values, nested records included, leaving out the fields
    whose role is in `drop` (at every depth).

    Example:
        >>> from hls_tune.engine.settings import SearchConfig
        >>> digest(SearchConfig(device="cpu")) == digest(SearchConfig(device="cuda"))
        True
    """
    text = json.dumps(_plain(record, set(drop)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]
