"""Derivation of a genotype from architecture weights α (DARTS' top-2 rule, SPEC §1).

Takes α as a torch tensor or any array-like; no torch import here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hls_tune.engine.nas.genotype import (
    NONE_INDEX,
    PRIMITIVES,
    Edge,
    Genotype,
    is_integer,
    search_cell_edges,
)
from hls_tune.errors import ConfigError, did_you_mean

__all__ = ["derive_cell", "derive_genotype"]


def _as_array(values: Any, key: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}: expected a numeric array but got {err}.") from None
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{key}: architecture weights must be finite but got NaN or inf.")
    return array


def derive_cell(
    alpha: Any,
    *,
    nodes: int = 4,
    edge_weights: Any | None = None,
) -> tuple[Edge, ...]:
    """Discrete cell from one cell type's architecture logits, as DARTS ``_parse`` does.

    Each edge's row is softmaxed over the ops (``none`` included). With ``edge_weights``
    (PC-DARTS β, already normalised over each node's incoming edges) each row is multiplied
    by its edge's weight. For node i, its i + 2 incoming edges are sorted by their strongest
    non-``none`` weight, descending (a stable sort: on a tie the lower input index wins), the
    first two are kept, and each kept edge takes its strongest non-``none`` op (on a tie the
    op earlier in ``PRIMITIVES`` wins).

    Args:
        alpha: logits of shape (edges, 8), a torch tensor or array-like; edges =
            2 + 3 + … + (nodes + 1) (14 for 4 nodes), rows in the order node 0's edges from
            inputs 0, 1, then node 1's from 0, 1, 2, and so on.
        nodes: intermediate nodes of the cell.
        edge_weights: optional per-edge weights, length ``edges``.

    Returns:
        ``2 · nodes`` edges, two per node, strongest edge first within a node.

    Raises:
        ConfigError: wrong shapes or non-finite values.

    Example:
        >>> cell = derive_cell(np.zeros((14, 8)))
        >>> cell[:2]
        (('max_pool_3x3', 0), ('max_pool_3x3', 1))
    """
    if not is_integer(nodes) or nodes < 1:
        raise ConfigError(f"nodes must be an integer >= 1 but got {nodes!r}.")
    edges = search_cell_edges(nodes)
    logits = _as_array(alpha, "alpha")
    if logits.shape != (edges, len(PRIMITIVES)):
        raise ConfigError(
            f"alpha: expected shape ({edges}, {len(PRIMITIVES)}) for {nodes} nodes but got "
            f"{tuple(logits.shape)}."
        )
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights = shifted / shifted.sum(axis=1, keepdims=True)
    if edge_weights is not None:
        beta = _as_array(edge_weights, "edge_weights")
        if beta.shape != (edges,):
            raise ConfigError(
                f"edge_weights: expected shape ({edges},) for {nodes} nodes but got "
                f"{tuple(beta.shape)}."
            )
        weights = weights * beta[:, None]

    candidates = [k for k in range(len(PRIMITIVES)) if k != NONE_INDEX]
    gene: list[Edge] = []
    start = 0
    for node in range(nodes):
        rows = weights[start : start + node + 2]
        # sorted() is stable, so among equally strong edges the lower input index is kept.
        kept = sorted(range(node + 2), key=lambda j: -max(rows[j][k] for k in candidates))[:2]
        for j in kept:
            best = candidates[0]
            for k in candidates:
                if rows[j][k] > rows[j][best]:  # strict: the earlier op wins a tie
                    best = k
            gene.append((PRIMITIVES[best], j))
        start += node + 2
    return tuple(gene)


_ALPHA_KEYS = {
    "backbone_normal": "normal",
    "backbone_reduce": "reduce",
    "head_conventional": "head_conventional",
    "head_rebalancing": "head_rebalancing",
}


def derive_genotype(
    alphas: Mapping[str, Any],
    *,
    nodes: int = 4,
    edge_weights: Mapping[str, Any] | None = None,
) -> Genotype:
    """Genotype from the α of every cell type (see ``derive_cell``); concat = all nodes.

    Args:
        alphas: ``backbone_normal`` and ``backbone_reduce`` logits, plus
            ``head_conventional`` and ``head_rebalancing`` for a BBN supernet.
        nodes: intermediate nodes per cell.
        edge_weights: optional PC-DARTS edge weights under the same keys.

    Raises:
        ConfigError: unknown or missing keys, or invalid arrays.
    """
    if not is_integer(nodes) or nodes < 1:
        raise ConfigError(f"nodes must be an integer >= 1 but got {nodes!r}.")
    allowed = tuple(_ALPHA_KEYS)
    for source, label in ((alphas, "alphas"), (edge_weights or {}, "edge_weights")):
        for key in source:
            if key not in _ALPHA_KEYS:
                raise ConfigError(
                    f"{label}: unknown α group {key!r}; allowed: {', '.join(allowed)}"
                    f"{did_you_mean(str(key), allowed)}."
                )
    missing = [key for key in ("backbone_normal", "backbone_reduce") if key not in alphas]
    if missing:
        raise ConfigError(f"alphas: missing α group(s) {', '.join(missing)}.")
    orphans = [key for key in edge_weights or {} if key not in alphas]
    if orphans:
        raise ConfigError(f"edge_weights: α group(s) {', '.join(orphans)} have no alphas.")
    concat = tuple(range(2, nodes + 2))
    fields: dict[str, Any] = {}
    for key, cell in _ALPHA_KEYS.items():
        if key not in alphas:
            continue
        beta = None if edge_weights is None else edge_weights.get(key)
        try:
            fields[cell] = derive_cell(alphas[key], nodes=nodes, edge_weights=beta)
        except ConfigError as err:
            raise ConfigError(f"alphas[{key!r}]: {err}") from None
        fields[f"{cell}_concat"] = concat
    return Genotype(**fields)
