"""Balanced validation from the training images the long-tailed subset leaves unused: never
an image of the weight, α or test sets (checked by image identity), the whole long-tailed set
for training, a warned fallback, the balanced metric by default, and `hls-tune train`."""

from __future__ import annotations

import json
import pickle
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hls_tune.engine.data import LongTailData, build_longtail, load_source, longtail_counts
from hls_tune.engine.datasets import prepare_data
from hls_tune.engine.epochs import RunHooks
from hls_tune.engine.nas.genotype import builtin_genotype
from hls_tune.engine.settings import DataConfig
from hls_tune.engine.train import TrainConfig, _Training
from hls_tune.errors import ConfigError
from hls_tune.study.config import load_study_file, parse_study_text
from tests.support.helpers import REPO_ROOT, hls_tune, write_study

CPU = torch.device("cpu")


def _keys(images: torch.Tensor) -> list[bytes]:
    """One key per image: its pixel bytes (the sources below hold no duplicate image)."""
    return [bytes(image) for image in images.flatten(1).numpy()]


def _check_balanced_and_disjoint(data: LongTailData, val_per_class: int) -> None:
    assert data.val.class_counts().tolist() == [val_per_class] * data.num_classes
    # The long-tailed set trains whole: weight + α hold every long-tailed image.
    trained = (data.weight.class_counts() + data.alpha.class_counts()).tolist()
    assert trained == list(data.train_counts)
    val = _keys(data.val.images)
    assert len(set(val)) == len(val)
    for part in (data.weight, data.alpha, data.test):
        assert not set(val) & set(_keys(part.images))


def _write_cifar10(folder: Path, per_class: int) -> None:
    """A CIFAR-10 python archive of 10 × per_class training and 10 test images, all distinct."""

    def rows(labels: list[int], start: int) -> np.ndarray:
        i, c, y, x = np.meshgrid(
            np.arange(len(labels)), np.arange(3), np.arange(32), np.arange(32), indexing="ij"
        )
        # Pixel (0, 0, 0) carries the image number in two bytes: every image is distinct.
        pixels = ((3 * c + 5 * y + 7 * x + i) % 256).astype(np.uint8)
        pixels[:, 0, 0, 0] = (start + np.arange(len(labels))) % 256
        pixels[:, 0, 0, 1] = (start + np.arange(len(labels))) // 256
        return pixels.reshape(len(labels), 3072)

    folder.mkdir(parents=True)
    labels = [i % 10 for i in range(10 * per_class)]
    size = len(labels) // 5
    for batch in range(5):
        part = labels[batch * size : (batch + 1) * size]
        content = {b"data": rows(part, batch * size), b"labels": part}
        (folder / f"data_batch_{batch + 1}").write_bytes(pickle.dumps(content))
    test = {b"data": rows(list(range(10)), len(labels)), b"labels": list(range(10))}
    (folder / "test_batch").write_bytes(pickle.dumps(test))
    names = [f"class{c}".encode() for c in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))


def _write_imagefolder(root: Path, counts: dict[str, int]) -> None:
    number = 0
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for _ in range(count):
            image = np.zeros((6, 6, 3), dtype=np.uint8)
            image[0, 0, 0], image[0, 0, 1] = number % 256, number // 256
            Image.fromarray(image).save(root / name / f"{number:04d}.png")
            number += 1


def test_digits_validation_is_balanced_unused_and_disjoint_from_weight_alpha_and_test():
    data = prepare_data(DataConfig(image_size=8, max_per_class=120, val_per_class=25))
    assert list(data.train_counts) == longtail_counts(120, 10, 10)
    _check_balanced_and_disjoint(data, 25)


def test_cifar_archive_validation_is_balanced_unused_and_disjoint(tmp_path):
    _write_cifar10(tmp_path / "cifar-10-batches-py", per_class=20)
    source = load_source("cifar10", tmp_path)
    assert len(set(_keys(torch.cat([source.train.images, source.test.images])))) == 210
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every class has enough unused images: no fallback
        data = build_longtail(source, imbalance_ratio=5, max_per_class=12, val_per_class=6, seed=3)
    _check_balanced_and_disjoint(data, 6)


def test_imagefolder_validation_is_balanced_unused_and_disjoint(tmp_path):
    _write_imagefolder(tmp_path, {"ant": 20, "bee": 18, "cat": 22})
    source = load_source("imagefolder", tmp_path, test_per_class=4, seed=0)
    data = build_longtail(source, imbalance_ratio=4, max_per_class=10, val_per_class=3, seed=1)
    _check_balanced_and_disjoint(data, 3)


def test_a_class_with_too_few_unused_images_falls_back_to_the_long_tailed_split_with_a_warning():
    source = load_source("digits", test_per_class=30, seed=0)
    # n_max = 144 (class 8's count); class 0 keeps 144 of its 148 images, class 1 keeps 111
    # of 152: 4 and 41 unused, fewer than 50.
    with pytest.warns(UserWarning, match=r"classes 0 \(4 unused\), 1 \(41 unused\);") as caught:
        data = build_longtail(source, imbalance_ratio=10, val_per_class=50, val_fraction=0.1)
    assert len(caught) == 1 and "data.val_per_class=50" in str(caught[0].message)
    val_counts = data.val.class_counts().tolist()
    # The fallback classes hold out 10 % of their long-tailed images; the others 50 unused.
    assert val_counts == [14, 11] + [50] * 8
    trained = (data.weight.class_counts() + data.alpha.class_counts()).tolist()
    assert trained == [144 - 14, 111 - 11, *data.train_counts[2:]]
    val = set(_keys(data.val.images))
    for part in (data.weight, data.alpha, data.test):
        assert not val & set(_keys(part.images))


def test_longtail_split_holds_out_a_share_of_the_long_tailed_images():
    data = prepare_data(DataConfig(image_size=8, val_source="longtail_split", val_fraction=0.15))
    assert data.val.class_counts().tolist() == [22, 17, 13, 10, 8, 6, 5, 4, 3, 2]
    everything = (
        data.weight.class_counts() + data.alpha.class_counts() + data.val.class_counts()
    ).tolist()
    assert everything == list(data.train_counts)


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        ('val_source = "unused"', ["data.val_source", "'unused'", "unused_balanced"]),
        ("val_per_class = 0", ["data.val_per_class", "0"]),
        ("val_per_class = 2.5", ["data.val_per_class", "2.5", "integer"]),
    ],
)
def test_bad_validation_keys_name_key_value_and_what_is_allowed(line, fragments):
    text = "[study]\nname = 't'\n[data]\n" + line + "\n[space]\nalpha_lr = 1e-3\n"
    with pytest.raises(ConfigError) as caught:
        parse_study_text(text)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_study_create_rejects_a_bad_val_source_with_one_line_and_exit_2(tmp_path):
    bad = write_study(tmp_path / "bad.toml")
    bad.write_text(bad.read_text().replace("[data]\n", '[data]\nval_source = "balanced"\n'))
    db = tmp_path / "s.db"
    result = hls_tune("study", "create", str(bad), "--storage", f"sqlite:///{db}")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.val_source" in lines[0] and "'balanced'" in lines[0]
    assert "unused_balanced" in lines[0] and not db.exists()


# studies/digits_lt_demo.toml links to the packaged demo, which `hls-tune demo` runs.
DEMO = REPO_ROOT / "hls_tune" / "studies" / "digits_lt_demo.toml"
SHIPPED = sorted({*(REPO_ROOT / "studies").glob("*.toml"), DEMO})


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_study_optimises_balanced_accuracy_on_the_balanced_validation_set(path):
    study = load_study_file(path)
    assert study.study.metric == "val_balanced_accuracy"
    assert study.default_config().data.val_source == "unused_balanced"
    assert "metric" in tomllib.loads(path.read_text())["study"]  # stated, not inherited


def test_the_demo_validates_every_class_on_unused_images():
    data_config = load_study_file(DEMO).default_config().data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback would warn
        data = prepare_data(data_config)
    _check_balanced_and_disjoint(data, data_config.val_per_class)


def test_training_uses_the_whole_long_tailed_set_and_the_balanced_validation_set():
    config = TrainConfig(data=DataConfig(max_per_class=30), epochs=1, channels=4, layers=3)
    data = prepare_data(config.data)
    run = _Training(builtin_genotype("darts_v2"), config, data, CPU, RunHooks())
    assert len(run.train_images.labels) == sum(longtail_counts(30, 10, 10))
    assert run.val is not None and len(run.val.labels) == 10 * 50


@pytest.mark.slow
def test_hls_tune_train_trains_on_the_whole_long_tailed_set_by_default(tmp_path):
    out = tmp_path / "out"
    result = hls_tune(
        "train", "darts_v2", "--epochs", "1", "--channels", "4", "--layers", "3",
        "--batch-size", "32", "--max-per-class", "30", "--device", "cpu", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_class_counts"] == longtail_counts(30, 10, 10)
    # The same balanced validation set a search on these data settings validates on.
    search_data = prepare_data(DataConfig(max_per_class=30))
    assert metrics["val_class_counts"] == search_data.val.class_counts().tolist() == [50] * 10
    assert "(unused_balanced)" in result.stderr
