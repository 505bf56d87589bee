"""Tests for hls_tune.engine.nas.genotype: the record, its JSON and DARTS-file forms, derivation."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hls_tune.engine.nas.darts_format import darts_python_module, parse_darts_python
from hls_tune.engine.nas.derive import derive_cell, derive_genotype
from hls_tune.engine.nas.genotype import (
    BUILTIN_GENOTYPES,
    PRIMITIVES,
    Genotype,
    builtin_genotype,
    cell_nodes,
)
from hls_tune.errors import ConfigError

DARTS_V2 = BUILTIN_GENOTYPES["darts_v2"]
CONCAT = (2, 3, 4, 5)

# SPEC §1, copied in its own shorthand, so the built-ins are checked against the text.
SHORTHAND = {
    "sep3": "sep_conv_3x3",
    "sep5": "sep_conv_5x5",
    "dil3": "dil_conv_3x3",
    "dil5": "dil_conv_5x5",
    "skip": "skip_connect",
    "max": "max_pool_3x3",
    "avg": "avg_pool_3x3",
}
SPEC_CELLS = {
    "darts_v2": (
        "sep3@0, sep3@1, sep3@0, sep3@1, sep3@1, skip@0, skip@0, dil3@2",
        "max@0, max@1, skip@2, max@1, max@0, skip@2, skip@2, max@1",
    ),
    "darts_v1": (
        "sep3@1, sep3@0, skip@0, sep3@1, skip@0, sep3@1, sep3@0, skip@2",
        "max@0, max@1, skip@2, max@0, max@0, skip@2, skip@2, avg@0",
    ),
    "pc_darts": (
        "sep3@1, skip@0, sep3@0, dil3@1, sep5@0, sep3@1, avg@0, dil3@1",
        "sep5@1, max@0, sep5@1, sep5@2, sep3@0, sep3@3, sep3@1, sep3@2",
    ),
}

# The DARTS_V2 line of the original DARTS cnn/genotypes.py (quark0/darts).
ORIGINAL_DARTS_V2_LINE = (
    "DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def spec_cell(text: str) -> tuple[tuple[str, int], ...]:
    edges = []
    for item in text.split(", "):
        short, index = item.split("@")
        edges.append((SHORTHAND[short], int(index)))
    return tuple(edges)


def bbn_genotype() -> Genotype:
    return Genotype(
        normal=DARTS_V2.normal,
        normal_concat=CONCAT,
        reduce=DARTS_V2.reduce,
        reduce_concat=CONCAT,
        head_conventional=[
            ["sep_conv_5x5", 0],
            ["skip_connect", 1],
            ["dil_conv_5x5", 2],
            ["max_pool_3x3", 0],
        ],
        head_rebalancing=(("avg_pool_3x3", 1), ("sep_conv_3x3", 0)),
        head_conventional_concat=[3, 2],
    )


def logits_for(cell: tuple[tuple[str, int], ...], nodes: int = 4) -> np.ndarray:
    """14×8 logits whose derivation is ``cell``: the kept edges get strong, ordered ops."""
    logits = np.zeros((nodes * (nodes + 3) // 2, len(PRIMITIVES)))
    start = 0
    for node in range(nodes):
        for rank, (op, index) in enumerate(cell[2 * node : 2 * node + 2]):
            logits[start + index, PRIMITIVES.index(op)] = 6.0 - rank
        start += node + 2
    return logits


# --- the record ------------------------------------------------------------------------------


def test_primitives_keep_the_darts_order() -> None:
    assert PRIMITIVES == (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )


@pytest.mark.parametrize("name", sorted(SPEC_CELLS))
def test_builtin_genotypes_match_the_spec_text(name: str) -> None:
    normal, reduce = SPEC_CELLS[name]
    genotype = builtin_genotype(name)
    assert genotype.normal == spec_cell(normal)
    assert genotype.reduce == spec_cell(reduce)
    assert genotype.normal_concat == CONCAT
    assert genotype.reduce_concat == CONCAT
    assert not genotype.is_bbn


def test_builtin_names_are_exactly_the_three_published_cells() -> None:
    assert set(BUILTIN_GENOTYPES) == {"darts_v1", "darts_v2", "pc_darts"}


def test_unknown_builtin_lists_the_known_names() -> None:
    with pytest.raises(ConfigError) as info:
        builtin_genotype("darts_v3")
    message = str(info.value)
    assert "'darts_v3'" in message
    assert "darts_v1, darts_v2, pc_darts" in message


def test_lists_are_normalised_to_tuples_and_genotypes_compare_by_value() -> None:
    from_lists = Genotype(
        normal=[list(edge) for edge in DARTS_V2.normal],
        normal_concat=[2, 3, 4, 5],
        reduce=[list(edge) for edge in DARTS_V2.reduce],
        reduce_concat=range(2, 6),  # type: ignore[arg-type]
    )
    assert from_lists == DARTS_V2
    assert hash(from_lists) == hash(DARTS_V2)
    assert isinstance(from_lists.normal[0], tuple)


def test_numpy_integer_indices_are_accepted_as_ints() -> None:
    edges = [(op, np.int64(index)) for op, index in DARTS_V2.normal]
    genotype = Genotype(edges, CONCAT, DARTS_V2.reduce, CONCAT)  # type: ignore[arg-type]
    assert type(genotype.normal[0][1]) is int


def test_cells_with_other_node_counts_are_valid() -> None:
    genotype = Genotype(
        normal=(("sep_conv_3x3", 0), ("skip_connect", 1)),
        normal_concat=(2,),
        reduce=(*DARTS_V2.reduce, ("max_pool_3x3", 5), ("skip_connect", 0)),
        reduce_concat=(2, 3, 4, 5, 6),
    )
    assert cell_nodes(genotype.normal) == 1
    assert cell_nodes(genotype.reduce) == 5


def test_bbn_genotype_fills_missing_head_concat_with_all_nodes() -> None:
    genotype = bbn_genotype()
    assert genotype.is_bbn
    assert genotype.head_conventional_concat == (3, 2)
    assert genotype.head_rebalancing_concat == (2,)


def replace_edge(cell: str, position: int, edge: object) -> dict[str, object]:
    data = DARTS_V2.to_dict()
    data[cell][position] = edge
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            replace_edge("normal", 5, ["skip_connect", 7]),
            "genotype.normal[5]: input index 7 does not exist for node 2 (allowed 0..3).",
        ),
        (
            replace_edge("normal", 1, ["skip_connect", 2]),
            "genotype.normal[1]: input index 2 does not exist for node 0 (allowed 0..1).",
        ),
        (
            replace_edge("reduce", 3, ["max_pool_3x3", -1]),
            "genotype.reduce[3]: input index -1 does not exist for node 1 (allowed 0..2).",
        ),
        (
            replace_edge("reduce", 0, ["sep_conv_7x7", 0]),
            "genotype.reduce[0]: unknown op 'sep_conv_7x7'; allowed: none, max_pool_3x3, "
            "avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, "
            "dil_conv_5x5 (did you mean",
        ),
        (replace_edge("normal", 0, ["sep_conv_3x3", "0"]), "genotype.normal[0]: input index"),
        (replace_edge("normal", 0, ["sep_conv_3x3", True]), "input index must be an integer"),
        (replace_edge("normal", 0, ["sep_conv_3x3", 0.0]), "input index must be an integer"),
        (replace_edge("normal", 2, ["sep_conv_3x3"]), "genotype.normal[2]: expected an [op"),
        (replace_edge("normal", 2, [3, 0]), "genotype.normal[2]: op must be a string but got 3"),
        (
            {**DARTS_V2.to_dict(), "normal": DARTS_V2.to_dict()["normal"][:7]},
            "genotype.normal: a cell needs an even, non-zero number of edges (2 per node) "
            "but got 7.",
        ),
        ({**DARTS_V2.to_dict(), "reduce": []}, "genotype.reduce: a cell needs an even"),
        ({**DARTS_V2.to_dict(), "reduce": "sep_conv_3x3"}, "genotype.reduce: expected a list"),
        ({**DARTS_V2.to_dict(), "normal_concat": []}, "genotype.normal_concat: must name"),
        (
            {**DARTS_V2.to_dict(), "normal_concat": [2, 3, 6]},
            "genotype.normal_concat[2]: 6 is not an intermediate node (allowed 2..5).",
        ),
        ({**DARTS_V2.to_dict(), "reduce_concat": [1, 2]}, "genotype.reduce_concat[0]: 1 is not"),
        (
            {**DARTS_V2.to_dict(), "reduce_concat": [2, 2]},
            "genotype.reduce_concat: node indices must be unique but got [2, 2].",
        ),
        ({**DARTS_V2.to_dict(), "reduce_concat": 5}, "genotype.reduce_concat: expected a list"),
        (
            {**DARTS_V2.to_dict(), "head_conventional": DARTS_V2.to_dict()["normal"]},
            "genotype.head_rebalancing: a BBN genotype needs both head cells",
        ),
        (
            {**DARTS_V2.to_dict(), "head_rebalancing_concat": [2]},
            "genotype.head_rebalancing_concat: given as [2] but genotype.head_rebalancing is "
            "missing.",
        ),
        (
            {**DARTS_V2.to_dict(), "normal_cat": [2]},
            "genotype.normal_cat: unknown key; allowed: normal, normal_concat",
        ),
        (
            {key: value for key, value in DARTS_V2.to_dict().items() if key != "reduce"},
            "genotype: missing key(s) reduce.",
        ),
        ([["sep_conv_3x3", 0]], "genotype: expected an object but got list."),
    ],
)
def test_invalid_genotypes_are_rejected_with_a_path_like_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Genotype.from_dict(data)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_backbone_cells_are_required_even_when_built_directly() -> None:
    with pytest.raises(ConfigError, match=r"genotype\.reduce: the reduce cell is required"):
        Genotype(DARTS_V2.normal, CONCAT, None, CONCAT)  # type: ignore[arg-type]


def test_unknown_op_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'skip_connect'\?"):
        Genotype.from_dict(replace_edge("normal", 0, ["skip_conect", 0]))


# --- JSON ------------------------------------------------------------------------------------


def test_darts_v2_round_trips_through_json() -> None:
    text = DARTS_V2.to_json()
    assert Genotype.from_json(text) == DARTS_V2
    data = json.loads(text)
    assert data["normal"][7] == ["dil_conv_3x3", 2]
    assert data["reduce_concat"] == [2, 3, 4, 5]
    assert set(data) == {"normal", "normal_concat", "reduce", "reduce_concat"}


def test_bbn_genotype_round_trips_through_json_with_its_heads() -> None:
    genotype = bbn_genotype()
    restored = Genotype.from_json(genotype.to_json(indent=None))
    assert restored == genotype
    assert restored.head_conventional == (
        ("sep_conv_5x5", 0),
        ("skip_connect", 1),
        ("dil_conv_5x5", 2),
        ("max_pool_3x3", 0),
    )
    assert restored.is_bbn


def test_bad_json_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        Genotype.from_json('{"normal": [\n  ["sep_conv_3x3", 0],,\n]}')
    assert str(info.value) == "genotype: not valid JSON (line 2 column 23: Expecting value)."


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "bbn.json"
    bbn_genotype().save(path)
    assert Genotype.load(path) == bbn_genotype()
    assert Genotype.load(str(path)) == bbn_genotype()


def test_load_of_a_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=r"nope\.json") as info:
        Genotype.load(path)
    assert "does not exist" in str(info.value)


def test_load_of_an_invalid_file_names_the_path_and_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(replace_edge("normal", 5, ["skip_connect", 7])))
    with pytest.raises(ConfigError) as info:
        Genotype.load(path)
    assert str(info.value).startswith(f"{path}: genotype.normal[5]: input index 7")


# --- original DARTS format -------------------------------------------------------------------


def test_to_darts_python_writes_the_original_namedtuple_line() -> None:
    assert DARTS_V2.to_darts_python("DARTS_V2") == ORIGINAL_DARTS_V2_LINE


def test_to_darts_python_writes_only_the_backbone_of_a_bbn_genotype() -> None:
    line = bbn_genotype().to_darts_python()
    assert line.startswith("genotype = Genotype(normal=")
    assert "head" not in line


def test_darts_python_module_parses_as_python_and_round_trips() -> None:
    genotypes = {name: builtin_genotype(name) for name in BUILTIN_GENOTYPES}
    text = darts_python_module(genotypes)
    ast.parse(text)
    lines = text.splitlines()
    assert lines[0] == "from collections import namedtuple"
    assert (
        lines[2] == 'Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")'
    )
    assert parse_darts_python(text) == genotypes


def test_darts_python_module_sanitises_names_into_identifiers() -> None:
    text = darts_python_module(
        {"trial-12 best": DARTS_V2, "3rd": DARTS_V2, "class": DARTS_V2, "Genotype": DARTS_V2}
    )
    assert list(parse_darts_python(text)) == ["trial_12_best", "_3rd", "class_", "Genotype_"]


def test_darts_python_module_rejects_names_that_collide_after_sanitising() -> None:
    with pytest.raises(
        ConfigError, match="'pc-darts' and 'pc_darts' both become the Python name 'pc_darts'"
    ):
        darts_python_module({"pc-darts": DARTS_V2, "pc_darts": DARTS_V2})


def test_parse_darts_python_reads_the_original_style_with_range_and_aliases() -> None:
    text = "\n".join(
        [
            '"""Genotypes, as the original DARTS code writes them."""',
            "from collections import namedtuple",
            "",
            "Genotype = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')",
            "PRIMITIVES = ['none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect',",
            "              'sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5']",
            ORIGINAL_DARTS_V2_LINE,
            "PC_DARTS_cifar = Genotype(",
            "    normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0),",
            "            ('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1),",
            "            ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6),",
            "    reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1),",
            "            ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3),",
            "            ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))",
            "DARTS = DARTS_V2",
        ]
    )
    parsed = parse_darts_python(text)
    assert parsed == {
        "DARTS_V2": DARTS_V2,
        "PC_DARTS_cifar": BUILTIN_GENOTYPES["pc_darts"],
        "DARTS": DARTS_V2,
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("import os", "line 1: unsupported statement 'import os'"),
        ("x = eval('1')", "line 1: unsupported statement"),
        ("__import__('os').system('true')", "unsupported statement"),
        ("def f():\n    pass", "unsupported statement 'def f():'"),
        ("G = Genotype(normal=", "DARTS genotype file: not valid Python (line 1"),
        ("G = Genotype([], [2], [], [2])", "line 1 (G): pass the Genotype fields as keywords"),
        ("G = Genotype(normal=make())", "line 1 (G) normal: only literal"),
        ("G = Genotype(normal=[], heads=[])", "unknown Genotype field 'heads'"),
        ("G = OTHER", "G = OTHER refers to no genotype defined above"),
        ("Genotype = namedtuple('G', 'a b')", "Genotype fields must be normal normal_concat"),
        ("Genotype = namedtuple('G', 5)", "Genotype fields must be normal normal_concat"),
        ("PRIMITIVES = [1, 2]", "PRIMITIVES must be a list of op names"),
        (
            "\n" + ORIGINAL_DARTS_V2_LINE.replace("'dil_conv_3x3', 2", "'dil_conv_3x3', 9"),
            "line 2 (DARTS_V2): genotype.normal[7]: input index 9 does not exist",
        ),
        (
            "NASNet = Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0)], "
            "normal_concat=[2], reduce=[('skip_connect', 0), ('skip_connect', 1)], "
            "reduce_concat=[2])",
            "(NASNet): genotype.normal[1]: unknown op 'sep_conv_7x7'",
        ),
    ],
)
def test_parse_darts_python_rejects_anything_but_genotype_assignments(
    text: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_darts_python(text)
    assert fragment in str(info.value)


def test_parse_darts_python_never_executes_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    text = f"G = Genotype(normal=open({str(marker)!r}, 'w').write('x'))"
    with pytest.raises(ConfigError):
        parse_darts_python(text)
    assert not marker.exists()


# --- derivation ------------------------------------------------------------------------------


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


def test_cell_nodes_counts_two_edges_per_node_and_rejects_odd_counts() -> None:
    assert cell_nodes(DARTS_V2.normal) == 4
    with pytest.raises(ConfigError, match="but got 3"):
        cell_nodes(DARTS_V2.normal[:3])
