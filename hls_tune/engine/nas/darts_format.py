"""The original DARTS ``genotypes.py`` format: write a module of genotypes, read one back.

Reading never executes the file: it walks the syntax tree and accepts only the namedtuple
import/definition, ``NAME = Genotype(...)`` assignments and the ``BBN_HEADS`` literal that
keeps BBN head cells next to the backbones (DARTS' own code never looks at it).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from hls_tune.engine.nas.genotype import DARTS_FIELDS, Genotype, darts_identifier, is_integer
from hls_tune.errors import ConfigError

__all__ = [
    "HEADS_VARIABLE",
    "darts_python_entries",
    "darts_python_module",
    "parse_darts_python",
    "parse_genotype_expression",
]

HEADS_VARIABLE = "BBN_HEADS"
"""The dict, genotype name → head cells, that carries what DARTS' namedtuple cannot hold."""
_HEAD_FIELDS = (
    "head_conventional",
    "head_conventional_concat",
    "head_rebalancing",
    "head_rebalancing_concat",
)

_DARTS_HEADER = (
    "from collections import namedtuple\n"
    "\n"
    'Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")\n'
)


def darts_python_module(genotypes: Mapping[str, Genotype]) -> str:
    """A complete DARTS-style ``genotypes.py`` text, one assignment per genotype.

    The file can be dropped into the original DARTS code (``eval("genotypes.%s" % name)``).
    Names are sanitised into identifiers. The namedtuples hold the backbone cells; the head
    cells of BBN genotypes follow in one ``BBN_HEADS`` dict keyed by those names, which
    DARTS ignores and `parse_darts_python` merges back.

    Args:
        genotypes: variable name → genotype.

    Raises:
        ConfigError: two names become the same identifier after sanitising.

    Example:
        >>> from hls_tune.engine.nas.genotype import builtin_genotype
        >>> text = darts_python_module({"darts-v2": builtin_genotype("darts_v2")})
        >>> list(parse_darts_python(text))
        ['darts_v2']
    """
    lines = [_DARTS_HEADER]
    seen: dict[str, str] = {}
    heads: dict[str, dict[str, Any]] = {}
    for name, genotype in genotypes.items():
        identifier = darts_identifier(name)
        if identifier in seen:
            raise ConfigError(
                f"genotype names {seen[identifier]!r} and {name!r} both become the Python "
                f"name {identifier!r}; rename one."
            )
        seen[identifier] = name
        lines.append(genotype.to_darts_python(identifier))
        if genotype.is_bbn:
            heads[identifier] = {
                field: [tuple(edge) for edge in value]
                if not field.endswith("_concat")
                else list(value)
                for field in _HEAD_FIELDS
                if (value := getattr(genotype, field)) is not None
            }
    if heads:
        lines.append("")
        lines.append("# BBN head cells of the genotypes above (the DARTS namedtuple has no field")
        lines.append("# for them; DARTS' code ignores this variable).")
        lines.append(f"{HEADS_VARIABLE} = {{")
        for identifier, cells in heads.items():
            lines.append(f"    {identifier!r}: {{")
            lines.extend(f"        {field!r}: {value!r}," for field, value in cells.items())
            lines.append("    },")
        lines.append("}")
    return "\n".join(lines) + "\n"


def _literal(node: ast.expr, where: str) -> Any:
    # `range(a, b)` is how PC-DARTS writes its concats; read it without evaluating code.
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 2
        and all(isinstance(a, ast.Constant) and is_integer(a.value) for a in node.args)
    ):
        return list(range(*(a.value for a in node.args if isinstance(a, ast.Constant))))
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ConfigError(
            f"{where}: only literal lists, tuples, numbers, strings and range(a, b) are "
            f"allowed but got {ast.unparse(node)!r}."
        ) from None


def _is_namedtuple_import(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.ImportFrom)
        and stmt.module == "collections"
        and [alias.name for alias in stmt.names] == ["namedtuple"]
        and stmt.names[0].asname is None
    )


def parse_darts_python(text: str) -> dict[str, Genotype]:
    """Read genotypes from a DARTS-style ``genotypes.py`` without executing it.

    Accepted statements: a docstring or bare string, ``from collections import namedtuple``,
    ``Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")``,
    a literal ``PRIMITIVES = [...]`` list of strings (ignored), ``NAME = Genotype(normal=...,
    normal_concat=..., reduce=..., reduce_concat=...)`` with literal keyword arguments
    (a concat may be ``range(a, b)``), aliases ``NAME = OTHER`` of an earlier genotype, and a
    literal ``BBN_HEADS = {NAME: {"head_conventional": [...], ...}}`` whose head cells are
    merged into the named genotypes.

    Args:
        text: the file content.

    Returns:
        Name → validated genotype, in file order (aliases included).

    Raises:
        ConfigError: invalid Python, any other statement, or an invalid genotype; the message
            names the line.
    """
    genotypes: dict[str, Genotype] = {}
    for name, entry in darts_python_entries(text).items():
        if isinstance(entry, ConfigError):
            raise entry
        genotypes[name] = entry
    return genotypes


def darts_python_entries(text: str) -> dict[str, Genotype | ConfigError]:
    """Like `parse_darts_python`, but an assignment that is well-formed yet not a valid
    genotype here (the original file's NASNet uses ``sep_conv_7x7``) is kept as its error
    instead of failing the whole file, so that one genotype can be picked from the rest.

    Raises:
        ConfigError: invalid Python, or a statement of any other kind (never executed).
    """
    try:
        module = ast.parse(text)
    except SyntaxError as err:
        raise ConfigError(
            f"DARTS genotype file: not valid Python (line {err.lineno}: {err.msg})."
        ) from None
    genotypes: dict[str, Genotype | ConfigError] = {}
    heads: dict[str, tuple[str, Any]] = {}
    for stmt in module.body:
        where = f"DARTS genotype file line {stmt.lineno}"
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            if isinstance(stmt.value.value, str):
                continue
        elif _is_namedtuple_import(stmt):
            continue
        elif (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
        ):
            name = stmt.targets[0].id
            value = stmt.value
            if name == "Genotype":
                _check_namedtuple_definition(value, where)
                continue
            if name == HEADS_VARIABLE:
                heads.update(_heads_literal(value, where))
                continue
            if name == "PRIMITIVES":
                primitives = _literal(value, f"{where} (PRIMITIVES)")
                if not (
                    isinstance(primitives, list | tuple)
                    and all(isinstance(op, str) for op in primitives)
                ):
                    raise ConfigError(f"{where}: PRIMITIVES must be a list of op names.")
                continue
            if isinstance(value, ast.Name):
                if value.id not in genotypes:
                    raise ConfigError(
                        f"{where}: {name} = {value.id} refers to no genotype defined above."
                    )
                genotypes[name] = genotypes[value.id]
                continue
            if (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name)
                and value.func.id == "Genotype"
            ):
                try:
                    genotypes[name] = _genotype_from_call(value, f"{where} ({name})")
                except ConfigError as err:
                    genotypes[name] = err
                continue
        raise ConfigError(
            f"{where}: unsupported statement {ast.unparse(stmt).splitlines()[0]!r}; only "
            "`NAME = Genotype(normal=..., normal_concat=..., reduce=..., reduce_concat=...)` "
            "assignments and the namedtuple header are allowed."
        )
    for name, (where, cells) in heads.items():
        entry = genotypes.get(name)
        if entry is None:
            raise ConfigError(f"{where}: {HEADS_VARIABLE}[{name!r}] names no genotype above.")
        if isinstance(entry, Genotype):
            try:
                genotypes[name] = Genotype.from_dict(entry.to_dict() | cells)
            except ConfigError as err:
                genotypes[name] = ConfigError(f"{where} ({HEADS_VARIABLE}[{name!r}]): {err}")
    return genotypes


def _heads_literal(value: ast.expr, where: str) -> dict[str, tuple[str, Any]]:
    heads = _literal(value, f"{where} ({HEADS_VARIABLE})")
    if not isinstance(heads, dict):
        raise ConfigError(f"{where}: {HEADS_VARIABLE} must be a dict of genotype name → cells.")
    for name, cells in heads.items():
        if not (isinstance(name, str) and isinstance(cells, dict)):
            raise ConfigError(f"{where}: {HEADS_VARIABLE} must map genotype names to dicts.")
        unknown = [key for key in cells if key not in _HEAD_FIELDS]
        if unknown:
            raise ConfigError(
                f"{where}: {HEADS_VARIABLE}[{name!r}] has unknown key {unknown[0]!r}; "
                f"allowed: {', '.join(_HEAD_FIELDS)}."
            )
    return {name: (where, cells) for name, cells in heads.items()}


def parse_genotype_expression(text: str, where: str = "Genotype") -> Genotype:
    """One ``Genotype(normal=..., ...)`` expression, as DARTS logs it, read without evaluating.

    Args:
        text: the expression alone (e.g. cut from ``genotype = Genotype(...)`` in a log).
        where: what to call it in error messages.

    Raises:
        ConfigError: not a ``Genotype(...)`` call of literals, or an invalid genotype.
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as err:
        raise ConfigError(f"{where}: not a valid Genotype(...) expression ({err.msg}).") from None
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Genotype"
    ):
        raise ConfigError(f"{where}: expected Genotype(normal=..., ...) but got {text[:60]!r}.")
    return _genotype_from_call(node, where)


def _check_namedtuple_definition(value: ast.expr, where: str) -> None:
    if not (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "namedtuple"
        and len(value.args) == 2
        and not value.keywords
    ):
        raise ConfigError(f"{where}: Genotype must be defined as namedtuple(name, fields).")
    fields = _literal(value.args[1], where)
    if isinstance(fields, str):
        fields = fields.replace(",", " ").split()
    if not isinstance(fields, list | tuple) or list(fields) != list(DARTS_FIELDS):
        raise ConfigError(
            f"{where}: Genotype fields must be {' '.join(DARTS_FIELDS)} but got {fields!r}."
        )


def _genotype_from_call(call: ast.Call, where: str) -> Genotype:
    if call.args:
        raise ConfigError(f"{where}: pass the Genotype fields as keywords (normal=..., ...).")
    values: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg not in DARTS_FIELDS:
            shown = "**" if kw.arg is None else kw.arg
            raise ConfigError(
                f"{where}: unknown Genotype field {shown!r}; allowed: {', '.join(DARTS_FIELDS)}."
            )
        values[kw.arg] = _literal(kw.value, f"{where} {kw.arg}")
    try:
        return Genotype.from_dict(values)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
