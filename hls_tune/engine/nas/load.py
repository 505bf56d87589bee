"""One loader for every form a genotype arrives in; it tells the forms apart by their text.

- a JSON file: a bare genotype (``Genotype.to_json``) or a record of ``hls-tune export``
  (its ``"genotype"`` key, head cells included);
- a DARTS-style ``genotypes.py`` (the original, PC-DARTS', or ``hls-tune export --format
  py``), read by `darts_format` without executing it; ``name`` picks one genotype;
- text holding the ``Genotype(...)`` line DARTS logs during search (a log file, or the text
  itself), the last one when there are several (the search's final epoch);
- a published cell by name: ``darts_v1``, ``darts_v2``, ``pc_darts`` or DARTS' own names
  ``DARTS_V1``, ``DARTS_V2``, ``DARTS`` (= V2), ``PC_DARTS``, in any case.

Nothing is ever evaluated; every form is validated into a `Genotype`.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from hls_tune.engine.nas.darts_format import darts_python_entries, parse_genotype_expression
from hls_tune.engine.nas.genotype import BUILTIN_GENOTYPES, Genotype
from hls_tune.errors import ConfigError, did_you_mean

__all__ = ["BUILTIN_ALIASES", "load_genotype"]

BUILTIN_ALIASES = {"darts": "darts_v2"}
"""DARTS' ``genotypes.py`` sets ``DARTS = DARTS_V2``."""

_GENOTYPE_CALL = re.compile(r"\bGenotype\s*\(")


def _builtin_key(spec: str) -> str | None:
    key = spec.strip().lower().replace("-", "_")
    key = BUILTIN_ALIASES.get(key, key)
    return key if key in BUILTIN_GENOTYPES else None


def load_genotype(spec: str, name: str | None = None) -> Genotype:
    """A validated genotype from a file, a logged ``Genotype(...)`` text or a built-in name.

    Args:
        spec: a path (JSON, a DARTS ``genotypes.py``, a search log), the text of a
            ``Genotype(...)`` expression, or a built-in name (see the module docstring).
        name: which genotype of a ``genotypes.py`` to take; required when it holds
            several different ones.

    Raises:
        ConfigError: one line naming the file (or text) and what is wrong: a missing file,
            invalid JSON, an unsupported statement, an ambiguous ``genotypes.py`` without
            ``name`` (the line lists the names), an unknown name, an invalid cell.

    Example:
        >>> load_genotype("DARTS").normal[7]
        ('dil_conv_3x3', 2)
    """
    path = Path(spec)
    if _is_file(path):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"genotype file {spec!r} cannot be read: {err}.") from None
        return _from_text(text, f"genotype file {spec!r}", name, json_only=path.suffix == ".json")
    if name is not None:
        raise ConfigError(
            f"--name {name!r}: only a genotypes.py file holds named genotypes but GENOTYPE "
            f"{_shorten(spec)!r} is not a file."
        )
    builtin = _builtin_key(spec)
    if builtin is not None:
        return BUILTIN_GENOTYPES[builtin]
    if _GENOTYPE_CALL.search(spec):
        return _from_log(spec, "GENOTYPE text")
    names = tuple(BUILTIN_GENOTYPES)
    if path.suffix or os.sep in spec or _exists(path):
        raise ConfigError(f"genotype file {spec!r} does not exist or is not a file.")
    raise ConfigError(
        f"GENOTYPE {_shorten(spec)!r} is neither a file (JSON, a DARTS genotypes.py or a "
        f"search log), a Genotype(...) text, nor a built-in genotype ({', '.join(names)}, "
        f"or DARTS_V1, DARTS_V2, DARTS, PC_DARTS){did_you_mean(spec.lower(), names)}."
    )


def _is_file(path: Path) -> bool:
    try:  # a Genotype(...) text is no file name; the OS may refuse it as too long
        return path.is_file()
    except (OSError, ValueError):
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _from_text(text: str, where: str, name: str | None, *, json_only: bool) -> Genotype:
    stripped = text.lstrip()
    if json_only or stripped.startswith(("{", "[")):
        if name is not None:
            raise ConfigError(f"--name {name!r}: {where} is JSON, which holds one genotype.")
        return _from_json(text, where)
    module = _python_module(text)
    if module is not None and any(isinstance(s, ast.Assign | ast.ImportFrom) for s in module.body):
        return _from_module(text, where, name)
    if name is not None:
        raise ConfigError(f"--name {name!r}: {where} is no genotypes.py with named genotypes.")
    if _GENOTYPE_CALL.search(text):
        return _from_log(text, where)
    raise ConfigError(
        f"{where}: neither JSON, a DARTS genotypes.py, nor text holding a Genotype(...) line."
    )


def _python_module(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _from_json(text: str, where: str) -> Genotype:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{where}: not valid JSON (line {err.lineno} column {err.colno}: {err.msg})."
        ) from None
    except RecursionError:
        raise ConfigError(f"{where}: not valid JSON (nested too deeply).") from None
    if isinstance(document, Mapping) and "genotype" in document:
        document = document["genotype"]
    try:
        return Genotype.from_dict(document)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _from_module(text: str, where: str, name: str | None) -> Genotype:
    try:
        entries = darts_python_entries(text)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    if not entries:
        raise ConfigError(f"{where}: holds no `NAME = Genotype(...)` assignment.")
    if name is None:
        distinct = {id(e) if isinstance(e, ConfigError) else e for e in entries.values()}
        if len(distinct) > 1:
            raise ConfigError(
                f"{where} holds {len(entries)} genotypes; choose one with --name: "
                f"{', '.join(entries)}."
            )
        name = next(iter(entries))
    if name not in entries:
        raise ConfigError(
            f"--name {name!r}: {where} holds no such genotype; it holds "
            f"{', '.join(entries)}{did_you_mean(name, tuple(entries))}."
        )
    entry = entries[name]
    if isinstance(entry, ConfigError):
        raise ConfigError(f"{where}: {entry}")
    return entry


def _genotype_calls(text: str) -> list[tuple[int, str]]:
    """Every ``Genotype(...)`` expression in `text` with its line number; parentheses
    inside quoted strings do not count."""
    calls = []
    for match in _GENOTYPE_CALL.finditer(text):
        depth, quote, index = 0, "", match.end() - 1
        while index < len(text):
            char = text[index]
            if quote:
                if char == "\\":
                    index += 1
                elif char == quote:
                    quote = ""
            elif char in "'\"":
                quote = char
            elif char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
                if depth == 0:
                    line = text.count("\n", 0, match.start()) + 1
                    calls.append((line, text[match.start() : index + 1]))
                    break
            index += 1
    return calls


def _from_log(text: str, where: str) -> Genotype:
    calls = _genotype_calls(text)
    if not calls:
        raise ConfigError(f"{where}: its Genotype(...) is not closed (a ')' is missing).")
    line, expression = calls[-1]  # a search log prints one per epoch: the last is final
    return parse_genotype_expression(expression, f"{where} line {line}")
