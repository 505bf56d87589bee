"""hls_tune/study/trial_artifacts.py: the rows of a trial's genotype table."""

from __future__ import annotations

from hls_tune.engine.nas.genotype import builtin_genotype
from hls_tune.study.trial_artifacts import genotype_rows


def test_genotype_rows_name_each_edge_and_its_weight():
    genotype = builtin_genotype("darts_v2")
    uniform = {g: [[1 / 8] * 8 for _ in range(14)] for g in ("backbone_normal", "backbone_reduce")}
    rows = genotype_rows(genotype, uniform)
    assert len(rows) == 16
    assert rows[0] == {
        "cell": "normal",
        "node": 0,
        "input": 0,
        "input_state": "c_{k-2}",
        "op": "sep_conv_3x3",
        "in_output": True,
        "op_weight": 0.125,
    }
    assert rows[14]["input_state"] == "node 0" and rows[14]["op"] == "skip_connect"
