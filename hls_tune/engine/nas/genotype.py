"""DARTS genotypes: the operation order, the validated record and its JSON, the published cells.

The record needs no torch. Derivation from α is `derive`, the original DARTS
``genotypes.py`` format is `darts_format`.
"""

from __future__ import annotations

import json
import keyword
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hls_tune.errors import ConfigError, did_you_mean

__all__ = [
    "BUILTIN_GENOTYPES",
    "PRIMITIVES",
    "Edge",
    "Genotype",
    "builtin_genotype",
    "cell_nodes",
]

# The order is part of the format: row k of an α tensor weighs PRIMITIVES[k].
PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
NONE_INDEX = PRIMITIVES.index("none")

Edge = tuple[str, int]
"""(op name, input index): input 0/1 are the cell inputs, 2.. the earlier intermediate nodes."""

_CELLS = ("normal", "reduce", "head_conventional", "head_rebalancing")
_BACKBONE_CELLS = ("normal", "reduce")
_HEAD_CELLS = ("head_conventional", "head_rebalancing")
_FIELDS = (
    "normal",
    "normal_concat",
    "reduce",
    "reduce_concat",
    "head_conventional",
    "head_conventional_concat",
    "head_rebalancing",
    "head_rebalancing_concat",
)
_REQUIRED_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
DARTS_FIELDS = _REQUIRED_FIELDS  # the namedtuple of the original DARTS genotypes.py


def is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def search_cell_edges(nodes: int) -> int:
    """Edges of a DARTS search cell: node i has one from each of the i + 2 earlier states."""
    return nodes * (nodes + 3) // 2


def cell_nodes(edges: Sequence[Edge]) -> int:
    """Number of intermediate nodes of a derived cell (2 edges per node).

    Args:
        edges: the cell's ``(op, input_index)`` pairs.

    Raises:
        ConfigError: the number of edges is odd or zero.
    """
    count = len(edges)
    if count == 0 or count % 2:
        raise ConfigError(
            f"a cell needs an even, non-zero number of edges (2 per node) but got {count}."
        )
    return count // 2


def _normalise_cell(key: str, edges: object) -> tuple[Edge, ...]:
    if not isinstance(edges, list | tuple):
        raise ConfigError(f"{key}: expected a list of [op, input_index] pairs but got {edges!r}.")
    try:
        cell_nodes(edges)
    except ConfigError as err:
        raise ConfigError(f"{key}: {err}") from None
    normalised: list[Edge] = []
    for position, edge in enumerate(edges):
        where = f"{key}[{position}]"
        if not (isinstance(edge, list | tuple) and len(edge) == 2):
            raise ConfigError(f"{where}: expected an [op, input_index] pair but got {edge!r}.")
        op, index = edge
        if not isinstance(op, str):
            raise ConfigError(f"{where}: op must be a string but got {op!r}.")
        if op not in PRIMITIVES:
            raise ConfigError(
                f"{where}: unknown op {op!r}; allowed: {', '.join(PRIMITIVES)}"
                f"{did_you_mean(op, PRIMITIVES)}."
            )
        node = position // 2
        if not is_integer(index):
            raise ConfigError(f"{where}: input index must be an integer but got {index!r}.")
        if not 0 <= index < node + 2:
            raise ConfigError(
                f"{where}: input index {index} does not exist for node {node} "
                f"(allowed 0..{node + 1})."
            )
        normalised.append((op, int(index)))
    return tuple(normalised)


def _normalise_concat(key: str, concat: object, nodes: int) -> tuple[int, ...]:
    if not isinstance(concat, list | tuple | range):
        raise ConfigError(f"{key}: expected a list of node indices but got {concat!r}.")
    if not concat:
        raise ConfigError(f"{key}: must name at least one node but got [].")
    for position, state in enumerate(concat):
        if not is_integer(state) or not 2 <= state < nodes + 2:
            raise ConfigError(
                f"{key}[{position}]: {state!r} is not an intermediate node "
                f"(allowed 2..{nodes + 1})."
            )
    values = tuple(int(state) for state in concat)
    if len(set(values)) != len(values):
        raise ConfigError(f"{key}: node indices must be unique but got {list(values)}.")
    return values


@dataclass(frozen=True)
class Genotype:
    """A derived architecture: the discrete cells DARTS keeps after the search.

    Each cell is a tuple of ``2 · nodes`` edges ``(op, input_index)``; edges ``2i`` and
    ``2i + 1`` feed intermediate node ``i`` (0-based), whose inputs may be 0 and 1 (the cell
    inputs) or ``2 .. i + 1`` (earlier nodes). A concat lists the states (2 .. nodes + 1)
    whose channels form the cell output. BBN genotypes also carry the two searched head
    cells; both heads are present or neither. A head's concat defaults to all of its nodes.

    Lists are normalised to tuples, so genotypes are hashable and compare by value.

    Args:
        normal: edges of the normal cell.
        normal_concat: states concatenated into the normal cell's output.
        reduce: edges of the reduction cell.
        reduce_concat: states concatenated into the reduction cell's output.
        head_conventional: edges of the conventional (instance-sampling) head cell, or None.
        head_rebalancing: edges of the re-balancing (class-sampling) head cell, or None.
        head_conventional_concat: concat of the conventional head (default: all its nodes).
        head_rebalancing_concat: concat of the re-balancing head (default: all its nodes).

    Raises:
        ConfigError: with a path-like key, e.g. ``genotype.normal[5]: input index 7 does
            not exist for node 2 (allowed 0..3).``

    Example:
        >>> g = builtin_genotype("darts_v2")
        >>> g.normal[7], g.normal_concat, g.is_bbn
        (('dil_conv_3x3', 2), (2, 3, 4, 5), False)
    """

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]
    head_conventional: tuple[Edge, ...] | None = None
    head_rebalancing: tuple[Edge, ...] | None = None
    head_conventional_concat: tuple[int, ...] | None = None
    head_rebalancing_concat: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        heads_given = [cell for cell in _HEAD_CELLS if getattr(self, cell) is not None]
        if len(heads_given) == 1:
            missing = next(cell for cell in _HEAD_CELLS if cell not in heads_given)
            raise ConfigError(
                f"genotype.{missing}: a BBN genotype needs both head cells but only "
                f"{heads_given[0]} was given."
            )
        for cell in _CELLS:
            edges = getattr(self, cell)
            concat_key = f"{cell}_concat"
            concat = getattr(self, concat_key)
            if edges is None and cell in _BACKBONE_CELLS:
                raise ConfigError(f"genotype.{cell}: the {cell} cell is required but got None.")
            if edges is None:
                if concat is not None:
                    raise ConfigError(
                        f"genotype.{concat_key}: given as {concat!r} but genotype.{cell} "
                        "is missing."
                    )
                continue
            edges = _normalise_cell(f"genotype.{cell}", edges)
            nodes = len(edges) // 2
            if concat is None and cell in _HEAD_CELLS:
                concat = range(2, nodes + 2)
            concat = _normalise_concat(f"genotype.{concat_key}", concat, nodes)
            object.__setattr__(self, cell, edges)
            object.__setattr__(self, concat_key, concat)

    @property
    def is_bbn(self) -> bool:
        """Whether the genotype carries the two BBN head cells."""
        return self.head_conventional is not None

    # -- JSON -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; edges become ``[op, index]`` lists, head keys only for BBN."""
        result: dict[str, Any] = {}
        for field in _FIELDS:
            value = getattr(self, field)
            if value is None:
                continue
            if field.endswith("_concat"):
                result[field] = list(value)
            else:
                result[field] = [[op, index] for op, index in value]
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genotype:
        """Build and validate a genotype from ``to_dict``'s output.

        Args:
            data: a mapping with ``normal``, ``normal_concat``, ``reduce``, ``reduce_concat``
                and, for BBN, the head cells (and optionally their concats). Unknown keys
                are rejected.

        Raises:
            ConfigError: unknown or missing keys, wrong types, invalid cells.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"genotype: expected an object but got {type(data).__name__}.")
        unknown = [key for key in data if key not in _FIELDS]
        if unknown:
            key = unknown[0]
            raise ConfigError(
                f"genotype.{key}: unknown key; allowed: {', '.join(_FIELDS)}"
                f"{did_you_mean(str(key), _FIELDS)}."
            )
        missing = [key for key in _REQUIRED_FIELDS if key not in data]
        if missing:
            raise ConfigError(f"genotype: missing key(s) {', '.join(missing)}.")
        return cls(**{key: data[key] for key in data})

    def to_json(self, indent: int | None = 2) -> str:
        """The genotype as JSON text (see ``to_dict``).

        Args:
            indent: JSON indentation; None writes one line.
        """
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        """Parse and validate JSON text written by ``to_json``; never evaluates code.

        Args:
            text: the JSON document.

        Raises:
            ConfigError: invalid JSON or an invalid genotype.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"genotype: not valid JSON (line {err.lineno} column {err.colno}: {err.msg})."
            ) from None
        except RecursionError:
            raise ConfigError("genotype: not valid JSON (nested too deeply).") from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the genotype as JSON to ``path`` (its folder must exist).

        Args:
            path: destination file, conventionally ``*.json``.
        """
        from hls_tune.engine.safe_io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Genotype:
        """Read and validate a genotype JSON file.

        Args:
            path: a file written by ``save``.

        Raises:
            ConfigError: the file is missing or unreadable, or its content is invalid; the
                message starts with the path.
        """
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"genotype file {str(file)!r} does not exist or is not a file.")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"genotype file {str(file)!r} cannot be read: {err}.") from None
        try:
            return cls.from_json(text)
        except ConfigError as err:
            raise ConfigError(f"{file}: {err}") from None

    # -- original DARTS format ------------------------------------------------------------

    def to_darts_python(self, name: str = "genotype") -> str:
        """One line of the original DARTS ``genotypes.py``: ``NAME = Genotype(normal=[...], ...)``.

        Only the backbone (normal and reduce cells) is written: the DARTS namedtuple has no
        head fields.

        Args:
            name: variable name; characters that cannot appear in an identifier become ``_``.
        """
        normal = [tuple(edge) for edge in self.normal]
        reduce = [tuple(edge) for edge in self.reduce]
        return (
            f"{darts_identifier(name)} = Genotype(normal={normal!r}, "
            f"normal_concat={list(self.normal_concat)!r}, reduce={reduce!r}, "
            f"reduce_concat={list(self.reduce_concat)!r})"
        )


_RESERVED_NAMES = frozenset({"Genotype", "namedtuple", "PRIMITIVES", "BBN_HEADS"})


def darts_identifier(name: str) -> str:
    """``name`` made a valid, non-reserved Python identifier (``darts-v2`` → ``darts_v2``)."""
    cleaned = re.sub(r"\W", "_", name, flags=re.ASCII)
    if not cleaned or cleaned[0].isdigit():
        cleaned = f"_{cleaned}"
    if keyword.iskeyword(cleaned) or keyword.issoftkeyword(cleaned) or cleaned in _RESERVED_NAMES:
        cleaned = f"{cleaned}_"
    return cleaned


# ---------------------------------------------------------------------------------------------
# published cells (SPEC §1)


def _cell(*edges: Edge) -> tuple[Edge, ...]:
    return edges


_SEP3, _SEP5, _DIL3 = "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3"
_SKIP, _MAX, _AVG = "skip_connect", "max_pool_3x3", "avg_pool_3x3"
_ALL_NODES = (2, 3, 4, 5)

# fmt: off
BUILTIN_GENOTYPES: dict[str, Genotype] = {
    # DARTS (first order), Liu et al. 2019.
    "darts_v1": Genotype(
        normal=_cell(
            (_SEP3, 1), (_SEP3, 0), (_SKIP, 0), (_SEP3, 1),
            (_SKIP, 0), (_SEP3, 1), (_SEP3, 0), (_SKIP, 2),
        ),
        normal_concat=_ALL_NODES,
        reduce=_cell(
            (_MAX, 0), (_MAX, 1), (_SKIP, 2), (_MAX, 0),
            (_MAX, 0), (_SKIP, 2), (_SKIP, 2), (_AVG, 0),
        ),
        reduce_concat=_ALL_NODES,
    ),
    # DARTS (second order), the published 2.76 % cell.
    "darts_v2": Genotype(
        normal=_cell(
            (_SEP3, 0), (_SEP3, 1), (_SEP3, 0), (_SEP3, 1),
            (_SEP3, 1), (_SKIP, 0), (_SKIP, 0), (_DIL3, 2),
        ),
        normal_concat=_ALL_NODES,
        reduce=_cell(
            (_MAX, 0), (_MAX, 1), (_SKIP, 2), (_MAX, 1),
            (_MAX, 0), (_SKIP, 2), (_SKIP, 2), (_MAX, 1),
        ),
        reduce_concat=_ALL_NODES,
    ),
    # PC-DARTS on CIFAR-10, Xu et al. 2020.
    "pc_darts": Genotype(
        normal=_cell(
            (_SEP3, 1), (_SKIP, 0), (_SEP3, 0), (_DIL3, 1),
            (_SEP5, 0), (_SEP3, 1), (_AVG, 0), (_DIL3, 1),
        ),
        normal_concat=_ALL_NODES,
        reduce=_cell(
            (_SEP5, 1), (_MAX, 0), (_SEP5, 1), (_SEP5, 2),
            (_SEP3, 0), (_SEP3, 3), (_SEP3, 1), (_SEP3, 2),
        ),
        reduce_concat=_ALL_NODES,
    ),
}
# fmt: on


def builtin_genotype(name: str) -> Genotype:
    """One of the published genotypes in ``BUILTIN_GENOTYPES``.

    Args:
        name: ``darts_v1``, ``darts_v2`` or ``pc_darts``.

    Raises:
        ConfigError: an unknown name; the message lists the known ones.
    """
    try:
        return BUILTIN_GENOTYPES[name]
    except (KeyError, TypeError):
        names = tuple(BUILTIN_GENOTYPES)
        hint = did_you_mean(name, names) if isinstance(name, str) else ""
        raise ConfigError(
            f"genotype must be one of {', '.join(names)} but got {name!r}{hint}."
        ) from None
