"""hls_tune/engine/nas/genotype.py: the record, its validation, its JSON and its DARTS line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hls_tune.engine.nas.genotype import (
    BUILTIN_GENOTYPES,
    PRIMITIVES,
    Genotype,
    builtin_genotype,
    cell_nodes,
)
from hls_tune.errors import ConfigError
from tests.support.genotypes import CONCAT, ORIGINAL_DARTS_V2_LINE

DARTS_V2 = BUILTIN_GENOTYPES["darts_v2"]

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


def test_cell_nodes_counts_two_edges_per_node_and_rejects_odd_counts() -> None:
    assert cell_nodes(DARTS_V2.normal) == 4
    with pytest.raises(ConfigError, match="but got 3"):
        cell_nodes(DARTS_V2.normal[:3])
