"""hls_tune/engine/train.py: training a genotype reports every metric and resumes, and
`hls-tune train` trains an exported record and exits 2 with one line for a bad genotype file."""

from __future__ import annotations

import json

import pytest

from hls_tune.engine.nas.genotype import builtin_genotype
from hls_tune.engine.train import TrainConfig, load_genotype, train
from tests.support.genotypes import BBN_GENOTYPE, _darts_v2_with
from tests.support.helpers import hls_tune
from tests.support.tiny_search import TINY_DATA

TINY = dict(data=TINY_DATA, epochs=1, channels=4, layers=3, batch_size=32, device="cpu")


def _check_metrics(result, data) -> None:
    metrics = result.metrics()
    for key in ("test_accuracy", "test_balanced_accuracy", "val_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert len(metrics["test_per_class_accuracy"]) == data.num_classes
    assert set(metrics["shot_accuracy"]) == {"many", "medium", "few"}
    assert metrics["params"] == result.params > 0
    assert metrics["multiply_adds"] > 0
    assert len(result.history) == 1 and result.history[0].train_loss > 0


def test_a_builtin_genotype_trains_one_epoch_and_reports_every_metric(data, tmp_path):
    result = train(load_genotype("darts_v2"), TrainConfig(**TINY), data=data, out=tmp_path)
    _check_metrics(result, data)
    assert result.history[0].mixing_ratio is None
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["test_accuracy"] == result.test_accuracy
    assert written["augmentation"] == {"crop_padding": 1, "flip": False, "cutout": 4}
    assert (tmp_path / "checkpoint.pt").exists()
    # Resuming a finished run trains nothing more and reports the same model.
    again = train(load_genotype("darts_v2"), TrainConfig(**TINY), data=data, out=tmp_path)
    assert again.resumed_from_epoch == 1 and again.test_accuracy == result.test_accuracy


def test_an_exported_bbn_genotype_trains_one_epoch_with_cumulative_learning(data, tmp_path):
    record = tmp_path / "best.json"
    record.write_text(json.dumps({"study": "s", "trial": 3, "genotype": BBN_GENOTYPE}))
    genotype = load_genotype(str(record))
    assert genotype.is_bbn
    result = train(genotype, TrainConfig(**TINY, network="bbn"), data=data)
    _check_metrics(result, data)
    assert result.history[0].mixing_ratio == pytest.approx(1.0)  # parabolic μ at t = 0


@pytest.mark.slow
def test_hls_tune_train_exits_2_with_one_line_for_a_bad_genotype_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(_darts_v2_with(normal=[["conv_7x7", 0]] * 8))
    result = hls_tune("train", str(bad), "--epochs", "1")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    assert lines[0].startswith("error: genotype file") and "unknown op 'conv_7x7'" in lines[0]


@pytest.mark.slow
def test_hls_tune_train_trains_an_exported_record_and_writes_its_metrics(tmp_path):
    record = tmp_path / "best.json"
    record.write_text(json.dumps({"genotype": builtin_genotype("pc_darts").to_dict()}))
    out = tmp_path / "out"
    result = hls_tune(
        "train", str(record), "--epochs", "1", "--channels", "4", "--layers", "3",
        "--batch-size", "32", "--max-per-class", "30", "--val-per-class", "10", "--device",
        "cpu", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and "multiply-adds" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["network"] == "plain" and metrics["epochs_run"] == 1
