"""Training a genotype: the discrete networks, every reported metric, adapt_head's source,
and clear exit-2 errors for bad genotype files."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from hls_tune.engine.datasets import prepare_data
from hls_tune.engine.nas.genotype import Genotype, builtin_genotype
from hls_tune.engine.nas.network import (
    BbnGenotypeNetwork,
    GenotypeNetwork,
    count_multiply_adds,
    count_parameters,
)
from hls_tune.engine.nas.primitives import DilConv, SepConv
from hls_tune.engine.settings import DataConfig, SearchConfig
from hls_tune.engine.source import balanced_source
from hls_tune.engine.train import TrainConfig, load_genotype, train
from hls_tune.errors import ConfigError
from tests.support.helpers import hls_tune

TINY_DATA = DataConfig(
    dataset="digits",
    image_size=8,
    imbalance_ratio=10,
    val_fraction=0.15,
    many_above=30,
    few_below=10,
    max_per_class=60,
    val_per_class=10,
)
TINY = dict(data=TINY_DATA, epochs=1, channels=4, layers=3, batch_size=32, device="cpu")
BBN_GENOTYPE = builtin_genotype("darts_v2").to_dict() | {
    "head_conventional": [["sep_conv_5x5", 0], ["dil_conv_3x3", 1]] * 4,
    "head_rebalancing": [["skip_connect", 0], ["max_pool_3x3", 1]] * 4,
}


@pytest.fixture(scope="module")
def data():
    return prepare_data(TINY_DATA)


def _check_metrics(result, data) -> None:
    metrics = result.metrics()
    for key in ("test_accuracy", "test_balanced_accuracy", "val_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert len(metrics["test_per_class_accuracy"]) == data.num_classes
    assert set(metrics["shot_accuracy"]) == {"many", "medium", "few"}
    assert metrics["params"] == result.params > 0
    assert metrics["multiply_adds"] > 0
    assert len(result.history) == 1 and result.history[0].train_loss > 0


def test_the_darts_v2_evaluation_network_has_the_published_size_and_an_auxiliary_head():
    net = GenotypeNetwork(builtin_genotype("darts_v2"), 3, 10, image_size=32)
    assert net.has_auxiliary
    assert count_parameters(net) == pytest.approx(3.3e6, rel=0.03)  # SPEC §1: 3.3 M
    small = GenotypeNetwork(builtin_genotype("darts_v2"), 1, 10, image_size=8, channels=4, layers=3)
    assert not small.has_auxiliary  # 8×8 digits are 2×2 at cell 2L//3: too small


def test_multiply_adds_count_convolutions_and_linear_layers():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(32, 3))
    assert count_multiply_adds(model, (1, 4, 4)) == 1 * 2 * 9 * 16 + 32 * 3


def test_bbn_heads_use_the_genotype_head_cells_and_average_the_branches_at_test_time():
    genotype = Genotype.from_dict(BBN_GENOTYPE)
    torch.manual_seed(0)
    net = BbnGenotypeNetwork(genotype, 1, 10, image_size=8, channels=4, layers=3).eval()
    conventional = net.head_conventional.cells[0].ops
    assert isinstance(conventional[0], SepConv) and isinstance(conventional[1], DilConv)
    assert not any(isinstance(op, SepConv) for op in net.head_rebalancing.cells[0].ops)
    x = torch.randn(3, 1, 8, 8)
    z_c, z_r, aux = net.branch_logits(x, x)
    assert aux is None
    torch.testing.assert_close(net(x), 0.5 * z_c + 0.5 * z_r)
    plain = BbnGenotypeNetwork(builtin_genotype("darts_v2"), 1, 10, 8, channels=4, layers=3)
    assert len(plain.head_conventional.cells[0].ops) == 8  # the normal cell in both heads


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


def _darts_v2_with(**cells) -> str:
    return json.dumps(builtin_genotype("darts_v2").to_dict() | cells)


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


def test_the_balanced_counterpart_trains_on_balanced_images_and_validates_like_the_target(data):
    from hls_tune.engine.datasets import balanced_counterpart

    balanced = balanced_counterpart(TINY_DATA)
    counts = balanced.weight.class_counts().tolist()
    assert len(set(counts)) == 1 and counts[0] == 60  # every class at the (capped) head count
    assert balanced.train_counts == tuple(counts) and len(balanced.alpha) == 0
    # the same validation and test images and many/medium/few groups as the target
    assert torch.equal(balanced.val.images, data.val.images)
    assert torch.equal(balanced.test.labels, data.test.labels)
    assert balanced.shot_group == data.shot_group
    held_out = {bytes(img.numpy()) for img in torch.cat([data.val.images, data.test.images])}
    assert not any(bytes(img.numpy()) in held_out for img in balanced.weight.images)
    assert sum(counts) > sum(data.train_counts)  # more images than the long-tailed set


def test_the_balanced_source_leaves_out_the_target_validation_and_test_images(data):
    config = SearchConfig(method="adapt_head", data=TINY_DATA, device="cpu")
    source = balanced_source(config, data)
    counts = set(source.train_counts)
    assert len(counts) == 1 and counts.pop() == 60  # every class at the (capped) head count
    assert len(source.test) == len(data.test)
    held_out = {bytes(img.numpy()) for img in torch.cat([data.val.images, data.test.images])}
    for part in (source.weight, source.alpha, source.val):
        assert not any(bytes(img.numpy()) in held_out for img in part.images)
