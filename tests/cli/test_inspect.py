"""`hls-tune inspect`: parameters and multiply-adds of a genotype without training, counted
as DARTS counts them (the test-time network, no auxiliary head)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hls_tune.engine.nas.genotype import BUILTIN_GENOTYPES
from tests.support.helpers import hls_tune

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("genotype", "params"),
    [("darts_v2", "3,349,342"), ("PC_DARTS", "3,634,678")],  # the DARTS / PC-DARTS papers' code
)
def test_inspect_prints_the_darts_parameter_count_at_c36_l20(genotype: str, params: str) -> None:
    result = hls_tune("inspect", genotype, "--channels", "36", "--layers", "20")
    assert result.returncode == 0, result.stderr
    assert f"parameters     {params} " in result.stdout
    assert "multiply-adds" in result.stdout and "auxiliary head 476,426" in result.stdout


def test_inspect_draws_every_cell_of_a_bbn_genotype_with_out(tmp_path: Path) -> None:
    darts_v2 = BUILTIN_GENOTYPES["darts_v2"].to_dict()
    bbn = darts_v2 | {
        "head_conventional": darts_v2["normal"],
        "head_rebalancing": darts_v2["reduce"],
    }
    (tmp_path / "best.json").write_text(json.dumps({"study": "s", "trial": 0, "genotype": bbn}))
    out = tmp_path / "cells"
    result = hls_tune(
        "inspect", str(tmp_path / "best.json"), "--dataset", "digits", "--channels", "4",
        "--layers", "3", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "BBN network" in result.stdout
    for cell in ("normal", "reduce", "head_conventional", "head_rebalancing"):
        path = out / f"cell_{cell}.png"
        assert str(path) in result.stdout and path.stat().st_size > 0, cell
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "cells"]


def test_inspect_refuses_an_unknown_genotype_in_one_line_and_writes_nothing(tmp_path) -> None:
    result = hls_tune("inspect", "darts_v3", "--out", str(tmp_path / "cells"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "did you mean 'darts_v2'" in lines[0], lines
    assert not (tmp_path / "cells").exists()
