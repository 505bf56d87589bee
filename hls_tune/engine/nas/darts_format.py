"""The original DARTS ``genotypes.py`` format: write a module of genotypes, read one back.

Reading never executes the file: it walks the syntax tree and accepts only the namedtuple
import/definition and ``NAME = Genotype(...)`` assignments.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from hls_tune.engine.nas.genotype import DARTS_FIELDS, Genotype, darts_identifier, is_integer
from hls_tune.errors import ConfigError

__all__ = ["darts_python_module", "parse_darts_python"]

_DARTS_HEADER = (
    "from collections import namedtuple\n"
    "\n"
    'Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")\n'
)


def darts_python_module(genotypes: Mapping[str, Genotype]) -> str:
    """A complete DARTS-style ``genotypes.py`` text, one assignment per genotype.

    The file can be dropped into the original DARTS code (``eval("genotypes.%s" % name)``).
    Names are sanitised into identifiers; only backbone cells are written.

    Args:
        genotypes: variable name → genotype.

    Raises:
        ConfigError: two names become the same identifier after sanitising.

    Example:
        >>> text = darts_python_module({"darts-v2": builtin_genotype("darts_v2")})
        >>> list(parse_darts_python(text))
        ['darts_v2']
    """
    lines = [_DARTS_HEADER]
    seen: dict[str, str] = {}
    for name, genotype in genotypes.items():
        identifier = darts_identifier(name)
        if identifier in seen:
            raise ConfigError(
                f"genotype names {seen[identifier]!r} and {name!r} both become the Python "
                f"name {identifier!r}; rename one."
            )
        seen[identifier] = name
        lines.append(genotype.to_darts_python(identifier))
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
    (a concat may be ``range(a, b)``), and aliases ``NAME = OTHER`` of an earlier genotype.

    Args:
        text: the file content.

    Returns:
        Name → validated genotype, in file order (aliases included).

    Raises:
        ConfigError: invalid Python, any other statement, or an invalid genotype; the message
            names the line.
    """
    try:
        module = ast.parse(text)
    except SyntaxError as err:
        raise ConfigError(
            f"DARTS genotype file: not valid Python (line {err.lineno}: {err.msg})."
        ) from None
    genotypes: dict[str, Genotype] = {}
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
                genotypes[name] = _genotype_from_call(value, f"{where} ({name})")
                continue
        raise ConfigError(
            f"{where}: unsupported statement {ast.unparse(stmt).splitlines()[0]!r}; only "
            "`NAME = Genotype(normal=..., normal_concat=..., reduce=..., reduce_concat=...)` "
            "assignments and the namedtuple header are allowed."
        )
    return genotypes


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
