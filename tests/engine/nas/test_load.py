"""hls_tune/engine/nas/load.py: every form a genotype arrives in, and bad ones refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from hls_tune.engine.nas.genotype import Genotype
from hls_tune.engine.nas.load import load_genotype
from hls_tune.errors import ConfigError
from tests.support.genotypes import (
    DARTS_GENOTYPES_PY,
    DARTS_V1,
    DARTS_V2,
    PC_DARTS,
    SEARCH_LOG,
    _darts_v2_with,
    darts_repr,
)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"normal": [["sep_conv_9x9", 0]]}', "missing key(s)"),
        (_darts_v2_with(normal=[["sep_conv_9x9", 0]] * 8), "unknown op 'sep_conv_9x9'"),
        (_darts_v2_with(reduce=[["skip_connect", 0]] * 3), "even, non-zero number of edges"),
        (_darts_v2_with(normal=[["skip_connect", 5]] * 8), "input index 5 does not exist"),
        ("normal = [sep_conv_3x3]", "not valid JSON"),
    ],
)
def test_a_malformed_genotype_file_names_the_problem(tmp_path, content, fragment):
    path = tmp_path / "g.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"g\.json") as error:
        load_genotype(str(path))
    assert fragment in str(error.value)


def test_unknown_genotype_names_and_missing_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'darts_v2'"):
        load_genotype("darts_v3")
    with pytest.raises(ConfigError, match="does not exist"):
        load_genotype(str(tmp_path / "missing.json"))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("DARTS_V1", DARTS_V1),
        ("DARTS_V2", DARTS_V2),
        ("DARTS", DARTS_V2),
        ("darts", DARTS_V2),
        ("PC_DARTS", PC_DARTS),
        ("Pc_Darts", PC_DARTS),
        (f"genotype = {darts_repr(PC_DARTS)}", PC_DARTS),
        (darts_repr(DARTS_V1), DARTS_V1),
    ],
)
def test_darts_names_and_a_logged_genotype_text_load(spec: str, expected: Genotype) -> None:
    assert load_genotype(spec) == expected


def test_a_darts_search_log_loads_its_last_genotype(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text(SEARCH_LOG)
    assert load_genotype(str(log)) == DARTS_V1  # the last epoch's, not the first


def test_a_file_holding_one_logged_genotype_line_loads(tmp_path: Path) -> None:
    line = tmp_path / "genotype.txt"
    line.write_text(f"genotype = {darts_repr(PC_DARTS)}\n")
    assert load_genotype(str(line)) == PC_DARTS
    bare = tmp_path / "bare.txt"
    bare.write_text(darts_repr(DARTS_V2))
    assert load_genotype(str(bare)) == DARTS_V2


@pytest.mark.parametrize(("name", "expected"), [("DARTS_V2", DARTS_V2), ("DARTS", DARTS_V2)])
def test_a_darts_genotypes_py_loads_the_named_genotype(
    tmp_path: Path, name: str, expected: Genotype
) -> None:
    path = tmp_path / "genotypes.py"
    path.write_text(DARTS_GENOTYPES_PY)
    assert load_genotype(str(path), name=name) == expected
    assert load_genotype(str(path), name="DARTS_V1") == DARTS_V1


def test_a_genotypes_py_is_refused_without_a_name_or_with_an_unusable_one(tmp_path: Path) -> None:
    path = tmp_path / "genotypes.py"
    path.write_text(DARTS_GENOTYPES_PY)
    with pytest.raises(ConfigError) as ambiguous:
        load_genotype(str(path))
    assert "choose one with --name: NASNet, DARTS_V1, DARTS_V2, DARTS" in str(ambiguous.value)
    with pytest.raises(ConfigError, match="did you mean 'DARTS_V2'"):
        load_genotype(str(path), name="DARTS_V3")
    with pytest.raises(ConfigError, match=r"\(NASNet\): genotype.normal\[1\]: unknown op"):
        load_genotype(str(path), name="NASNet")


def test_a_genotypes_py_with_one_genotype_and_its_alias_needs_no_name(tmp_path: Path) -> None:
    path = tmp_path / "genotypes.py"
    path.write_text(f"PC_DARTS_cifar = {darts_repr(PC_DARTS)}\nPCDARTS = PC_DARTS_cifar\n")
    assert load_genotype(str(path)) == PC_DARTS


def test_a_genotypes_py_is_read_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "genotypes.py"
    path.write_text(f"import os\nos.mkdir({str(marker)!r})\nG = {darts_repr(DARTS_V2)}\n")
    with pytest.raises(ConfigError, match="line 1: unsupported statement 'import os'"):
        load_genotype(str(path), name="G")
    assert not marker.exists()
