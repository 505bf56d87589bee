"""hls_tune/engine/data/sources.py: the dataset names, and digits read, split and resized."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from hls_tune.engine.data.sources import DATASETS, load_source
from hls_tune.errors import ConfigError
from tests.support.helpers import cli_env

# --- digits ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_source("digits", test_per_class=30, seed=0)


def test_digits_are_uint8_one_channel_8x8_with_int64_labels(digits) -> None:
    for part in (digits.train, digits.test):
        assert part.images.dtype == torch.uint8
        assert part.images.shape[1:] == (1, 8, 8)
        assert part.images.is_contiguous()
        assert part.labels.dtype == torch.int64
        assert part.class_names == tuple(str(d) for d in range(10))
    assert (digits.train.num_classes, digits.train.in_channels, digits.train.image_size) == (
        10,
        1,
        8,
    )


def test_digits_pixels_are_scaled_from_0_16_to_0_255(digits) -> None:
    allowed = {round(v * 255 / 16) for v in range(17)}
    values = set(torch.cat([digits.train.images, digits.test.images]).unique().tolist())
    assert values <= allowed
    assert {0, 255} <= values


def test_digits_test_set_is_balanced_and_the_rest_is_training(digits) -> None:
    from sklearn.datasets import load_digits

    assert digits.test.class_counts().tolist() == [30] * 10
    full = torch.bincount(torch.from_numpy(load_digits().target), minlength=10)
    assert (digits.train.class_counts() + digits.test.class_counts()).tolist() == full.tolist()
    # Every image of the dataset is in exactly one part (multiset of image bytes).
    bunch_images = torch.round(torch.from_numpy(load_digits().images) * 255 / 16).to(torch.uint8)
    assert sorted(map(bytes, bunch_images.reshape(len(bunch_images), -1).numpy())) == sorted(
        map(bytes, torch.cat([digits.train.images, digits.test.images]).flatten(1).numpy())
    )


def test_digits_read_from_the_shipped_file_equal_load_digits_and_skip_importing_sklearn():
    """`digits_arrays` parses scikit-learn's CSV itself (no 0.7 s `sklearn.datasets` import
    per worker): the same pixels and labels as `load_digits`, in order."""
    import subprocess

    from sklearn.datasets import load_digits

    from hls_tune.engine.data.sources import digits_arrays

    pixels, labels = digits_arrays()
    bunch = load_digits()
    assert np.array_equal(pixels, bunch.images) and np.array_equal(labels, bunch.target)
    assert labels.dtype == np.int64 and pixels.shape == (1797, 8, 8)
    probe = (
        "import sys; from hls_tune.engine.data.sources import load_source; "
        "load_source('digits', test_per_class=30, seed=0); "
        "print(sorted(m for m in sys.modules if m.startswith('sklearn')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=cli_env()
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_digits_fall_back_to_load_digits_without_the_csv_file(monkeypatch, tmp_path) -> None:
    """Where scikit-learn's file cannot be located, `load_digits` reads it; a file of the
    same name under the current directory is never taken for it."""
    import gzip
    import importlib.util

    from hls_tune.engine.data import sources

    planted = tmp_path / "datasets" / "data" / "digits.csv.gz"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(gzip.compress(b",".join([b"16"] * 64) + b",7\n"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    pixels, labels = sources.digits_arrays()
    assert pixels.shape == (1797, 8, 8) and labels.shape == (1797,)


def test_digits_test_set_depends_only_on_the_seed(digits) -> None:
    again = load_source("digits", test_per_class=30, seed=0)
    other = load_source("digits", test_per_class=30, seed=1)
    assert torch.equal(digits.test.images, again.test.images)
    assert not torch.equal(digits.test.images, other.test.images)


def test_digits_resize_gives_image_size_squares_in_both_parts() -> None:
    data = load_source("digits", image_size=16, test_per_class=5)
    assert data.train.images.shape[1:] == (1, 16, 16)
    assert data.test.images.shape[1:] == (1, 16, 16)
    assert data.train.images.dtype == torch.uint8


@pytest.mark.parametrize("size", [3, 0, 8.0, True])
def test_image_size_below_four_or_not_an_integer_is_a_config_error(size) -> None:
    with pytest.raises(ConfigError, match=r"data\.image_size.*>= 4"):
        load_source("digits", image_size=size)


def test_unknown_dataset_is_a_config_error_suggesting_the_close_name() -> None:
    with pytest.raises(ConfigError, match=r"data\.dataset.*'cifar-10'.*did you mean 'cifar10'"):
        load_source("cifar-10")
    with pytest.raises(
        ConfigError, match=r"data\.dataset must be one of digits\b.* but got 'mnist'"
    ) as error:
        load_source("mnist")
    assert "did you mean" not in str(error.value)
    assert DATASETS == ("digits", "cifar10", "cifar100", "imagefolder")
