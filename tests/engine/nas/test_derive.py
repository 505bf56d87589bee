"""hls_tune/engine/nas/derive.py: a genotype from α, as the original DARTS derives it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hls_tune.engine.nas.derive import derive_cell, derive_genotype
from hls_tune.engine.nas.genotype import (
    BUILTIN_GENOTYPES,
    PRIMITIVES,
    Genotype,
    builtin_genotype,
    cell_nodes,
)
from hls_tune.errors import ConfigError
from tests.support.genotypes import CONCAT


def logits_for(cell: tuple[tuple[str, int], ...], nodes: int = 4) -> np.ndarray:
    """14×8 logits whose derivation is ``cell``: the kept edges get strong, ordered ops."""
    logits = np.zeros((nodes * (nodes + 3) // 2, len(PRIMITIVES)))
    start = 0
    for node in range(nodes):
        for rank, (op, index) in enumerate(cell[2 * node : 2 * node + 2]):
            logits[start + index, PRIMITIVES.index(op)] = 6.0 - rank
        start += node + 2
    return logits


def hand_computed_logits() -> np.ndarray:
    logits = np.zeros((14, 8))
    none, maxp, avgp, skip = 0, 1, 2, 3
    sep3, sep5, dil3, dil5 = 4, 5, 6, 7
    # node 0 (rows 0-1): both edges are kept; order is by strength.
    logits[0, none], logits[0, sep3] = 5.0, 2.0  # `none` dominates; sep3 ≈ 0.046 still wins
    logits[1, maxp], logits[1, dil5] = 3.0, 3.0  # op tie: max_pool (lower index) wins, ≈ 0.435
    # node 1 (rows 2-4): row 2 uniform (0.125, tie → max_pool); row 3 is 99.99 % `none`, which
    # would be the strongest edge if `none` counted, but its best real op has ≈ 1e-4.
    logits[3, none], logits[3, skip] = 10.0, 1.0
    logits[4, skip] = 4.0  # ≈ 0.886
    # node 2 (rows 5-8): edges from inputs 0, 2, 3 tie; the stable sort keeps 0 and 2.
    logits[5, dil3] = logits[7, dil3] = logits[8, dil3] = 2.0
    # node 3 (rows 9-13)
    logits[13, avgp] = 3.0
    logits[10, dil5] = 2.5
    del sep5
    return logits


HAND_COMPUTED_CELL = (
    ("max_pool_3x3", 1),
    ("sep_conv_3x3", 0),
    ("skip_connect", 2),
    ("max_pool_3x3", 0),
    ("dil_conv_3x3", 0),
    ("dil_conv_3x3", 2),
    ("avg_pool_3x3", 4),
    ("dil_conv_5x5", 1),
)


def test_derive_cell_matches_a_hand_computed_example() -> None:
    assert derive_cell(hand_computed_logits()) == HAND_COMPUTED_CELL


def test_derive_cell_accepts_torch_tensors_that_require_grad() -> None:
    alpha = torch.tensor(hand_computed_logits(), dtype=torch.float32, requires_grad=True)
    assert derive_cell(alpha) == HAND_COMPUTED_CELL


def test_derive_cell_never_picks_none_even_when_it_dominates_every_edge() -> None:
    logits = np.zeros((14, 8))
    logits[:, 0] = 20.0
    logits[:, 5] = 1.0
    cell = derive_cell(logits)
    assert {op for op, _ in cell} == {"sep_conv_5x5"}
    assert [index for _, index in cell] == [0, 1, 0, 1, 0, 1, 0, 1]


def test_edge_weights_multiply_the_op_weights_and_change_which_edges_are_kept() -> None:
    logits = np.zeros((14, 8))
    beta = np.array([0.3, 0.7, 0.2, 0.5, 0.3, 0.1, 0.2, 0.3, 0.4, 0.1, 0.1, 0.5, 0.1, 0.2])
    assert [index for _, index in derive_cell(logits)] == [0, 1, 0, 1, 0, 1, 0, 1]
    assert [index for _, index in derive_cell(logits, edge_weights=beta)] == [
        *(1, 0),
        *(1, 2),
        *(3, 2),
        *(2, 4),
    ]


@pytest.mark.parametrize("name", sorted(BUILTIN_GENOTYPES))
def test_derivation_recovers_a_genotype_from_logits_built_for_it(name: str) -> None:
    genotype = builtin_genotype(name)
    alphas = {
        "backbone_normal": logits_for(genotype.normal),
        "backbone_reduce": logits_for(genotype.reduce),
    }
    assert derive_genotype(alphas) == genotype


def test_derive_genotype_with_heads_gives_a_bbn_genotype() -> None:
    alphas = {
        key: hand_computed_logits()
        for key in ("backbone_normal", "backbone_reduce", "head_conventional", "head_rebalancing")
    }
    genotype = derive_genotype(alphas)
    assert genotype.is_bbn
    assert genotype.head_rebalancing == HAND_COMPUTED_CELL
    assert genotype.head_conventional_concat == CONCAT


def test_derive_genotype_with_two_nodes_uses_five_edges() -> None:
    genotype = derive_genotype(
        {"backbone_normal": np.zeros((5, 8)), "backbone_reduce": np.ones((5, 8))}, nodes=2
    )
    assert genotype.normal == (("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 2
    assert genotype.normal_concat == (2, 3)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"alphas": {"backbone_normal": np.zeros((14, 8))}}, "missing α group(s) backbone_reduce"),
        (
            {"alphas": {"backbone_normal": 0, "backbone_reduce": 0, "head": 0}},
            "alphas: unknown α group 'head'",
        ),
        (
            {
                "alphas": {
                    "backbone_normal": np.zeros((14, 7)),
                    "backbone_reduce": np.zeros((14, 8)),
                }
            },
            "alphas['backbone_normal']: alpha: expected shape (14, 8) for 4 nodes but got (14, 7).",
        ),
        (
            {
                "alphas": {
                    "backbone_normal": np.zeros((14, 8)),
                    "backbone_reduce": np.zeros((14, 8)),
                },
                "edge_weights": {"backbone_reduce": np.ones(13)},
            },
            "edge_weights: expected shape (14,)",
        ),
        (
            {
                "alphas": {
                    "backbone_normal": np.zeros((14, 8)),
                    "backbone_reduce": np.zeros((14, 8)),
                },
                "edge_weights": {"head_conventional": np.ones(14)},
            },
            "edge_weights: α group(s) head_conventional have no alphas",
        ),
        (
            {
                "alphas": {
                    "backbone_normal": np.full((14, 8), np.nan),
                    "backbone_reduce": np.zeros((14, 8)),
                }
            },
            "must be finite",
        ),
        (
            {"alphas": {"backbone_normal": 0, "backbone_reduce": 0}, "nodes": 0},
            "nodes must be an integer >= 1 but got 0.",
        ),
    ],
)
def test_derive_genotype_rejects_bad_input(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        derive_genotype(**kwargs)  # type: ignore[arg-type]
    assert fragment in str(info.value)


def original_darts_parse(weights: np.ndarray, steps: int) -> list[tuple[str, int]]:
    """``_parse`` of the original DARTS model_search.py, transcribed for comparison."""
    gene = []
    n = 2
    start = 0
    none = PRIMITIVES.index("none")
    for i in range(steps):
        end = start + n
        W = weights[start:end].copy()
        edges = sorted(
            range(i + 2), key=lambda x: -max(W[x][k] for k in range(len(W[x])) if k != none)
        )[:2]
        for j in edges:
            k_best = None
            for k in range(len(W[j])):
                if k != none and (k_best is None or W[j][k] > W[j][k_best]):
                    k_best = k
            gene.append((PRIMITIVES[k_best], j))
        start = end
        n += 1
    return gene


finite_logits = st.floats(min_value=-30, max_value=30, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), nodes=st.integers(min_value=1, max_value=5))
def test_derived_cells_from_random_logits_are_valid_and_match_original_parse(
    data: st.DataObject, nodes: int
) -> None:
    edges = nodes * (nodes + 3) // 2
    # Few distinct values so that ties between ops and edges actually occur.
    elements = st.one_of(st.sampled_from([0.0, 1.0, -1.0]), finite_logits)
    normal = data.draw(hnp.arrays(np.float64, (edges, 8), elements=elements))
    reduce = data.draw(hnp.arrays(np.float64, (edges, 8), elements=elements))
    genotype = derive_genotype({"backbone_normal": normal, "backbone_reduce": reduce}, nodes=nodes)
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert cell_nodes(genotype.normal) == nodes
    assert "none" not in {op for op, _ in genotype.normal + genotype.reduce}
    softmax = np.exp(normal - normal.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    assert list(genotype.normal) == original_darts_parse(softmax, nodes)
