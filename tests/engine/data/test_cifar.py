"""hls_tune/engine/data/cifar.py: CIFAR-10/100 python archives, their errors, download."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from hls_tune.engine.data.sources import load_source
from hls_tune.errors import ConfigError


def _cifar_rows(n: int, start: int) -> np.ndarray:
    """n images whose pixel (c, y, x) = (start + i + 3c + 5y + 7x) mod 256, as N×3072 rows."""
    i, c, y, x = np.meshgrid(
        np.arange(n), np.arange(3), np.arange(32), np.arange(32), indexing="ij"
    )
    pixels = ((start + i + 3 * c + 5 * y + 7 * x) % 256).astype(np.uint8)
    return pixels.reshape(n, 3072)


def _pickle(path: Path, content: dict) -> None:
    with path.open("wb") as f:
        pickle.dump(content, f)


def _write_cifar10(folder: Path) -> None:
    folder.mkdir(parents=True)
    for batch in range(1, 6):
        _pickle(
            folder / f"data_batch_{batch}",
            {b"data": _cifar_rows(2, 10 * batch), b"labels": [batch, (batch + 3) % 10]},
        )
    _pickle(folder / "test_batch", {b"data": _cifar_rows(3, 100), b"labels": [0, 9, 4]})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    _pickle(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": 2})


def _expected_image(start: int) -> torch.Tensor:
    c, y, x = torch.meshgrid(torch.arange(3), torch.arange(32), torch.arange(32), indexing="ij")
    return ((start + 3 * c + 5 * y + 7 * x) % 256).to(torch.uint8)


@pytest.mark.parametrize("point_at", ["parent", "folder"])
def test_cifar10_loads_the_python_archive_layout(tmp_path: Path, point_at: str) -> None:
    _write_cifar10(tmp_path / "cifar-10-batches-py")
    root = tmp_path if point_at == "parent" else tmp_path / "cifar-10-batches-py"
    data = load_source("cifar10", root)
    assert data.train.images.shape == (10, 3, 32, 32)
    assert data.train.labels.tolist() == [1, 4, 2, 5, 3, 6, 4, 7, 5, 8]
    assert data.test.labels.tolist() == [0, 9, 4]
    assert data.train.class_names[:2] == ("airplane", "automobile")
    assert data.train.num_classes == data.test.num_classes == 10
    # Row-major 3×32×32: the first train image of batch 3 starts at 30, channel planes first.
    assert torch.equal(data.train.images[4], _expected_image(30))
    assert torch.equal(data.test.images[2], _expected_image(102))


def test_cifar100_uses_fine_labels_from_train_test_and_meta(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _pickle(
        folder / "train",
        {b"data": _cifar_rows(4, 0), b"fine_labels": [99, 0, 50, 7], b"coarse_labels": [1] * 4},
    )
    _pickle(
        folder / "test",
        {b"data": _cifar_rows(2, 9), b"fine_labels": [3, 98], b"coarse_labels": [2, 2]},
    )
    _pickle(
        folder / "meta",
        {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        },
    )
    data = load_source("cifar100", tmp_path, image_size=16)
    assert data.train.labels.tolist() == [99, 0, 50, 7]
    assert data.test.labels.tolist() == [3, 98]
    assert data.train.class_names[99] == "fine99"
    assert data.train.images.shape == (4, 3, 16, 16)


def test_missing_cifar_directory_is_a_config_error_naming_data_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=r"data\.root: directory .*nowhere does not exist"):
        load_source("cifar10", missing)


def test_cifar_directory_without_the_files_names_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.root.*cifar-10-batches-py.*data_batch_1"):
        load_source("cifar10", tmp_path)


def test_cifar_root_is_required() -> None:
    with pytest.raises(ConfigError, match=r"data\.root: required"):
        load_source("cifar100")


def test_cifar_batch_with_wrong_row_length_is_a_config_error(tmp_path: Path) -> None:
    _write_cifar10(tmp_path / "cifar-10-batches-py")
    _pickle(
        tmp_path / "cifar-10-batches-py" / "test_batch",
        {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]},
    )
    with pytest.raises(ConfigError, match=r"test_batch.*expected uint8 N×3072"):
        load_source("cifar10", tmp_path)


def test_cifar_download_fetches_with_torchvision_then_reads_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    class FakeCIFAR10:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, download))
            _write_cifar10(Path(root) / "cifar-10-batches-py")

    # A stand-in torchvision module: no network, and no slow torchvision import.
    fake_torchvision = types.ModuleType("torchvision")
    fake_torchvision.datasets = types.SimpleNamespace(CIFAR10=FakeCIFAR10, CIFAR100=None)
    monkeypatch.setitem(sys.modules, "torchvision", fake_torchvision)
    with pytest.raises(ConfigError):
        load_source("cifar10", tmp_path)  # download=False never fetches
    assert calls == []
    data = load_source("cifar10", tmp_path, download=True)
    assert calls == [(str(tmp_path), True)]
    assert len(data.train) == 10
