"""Sources: digits, CIFAR archives and ImageFolder trees written by the tests, resizing, errors."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hls_tune.engine.data.sources import DATASETS, ImageSet, load_source
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


# --- CIFAR archives -------------------------------------------------------------------


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


# --- ImageFolder ----------------------------------------------------------------------


def _write_png(image: torch.Tensor, path: Path) -> None:
    """Writes a uint8 C×H×W tensor (C = 1 or 3) as a PNG file."""
    array = image.permute(1, 2, 0).numpy()
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)


def _write_class_folder(folder: Path, count: int, start: int, size=(5, 7), channels=3) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        image = torch.full((channels, *size), start + i, dtype=torch.uint8)
        image[0, 0, 0] = 255  # asymmetric content
        _write_png(image, folder / f"{i:03d}.png")


def test_imagefolder_without_split_folders_splits_a_balanced_test_set(tmp_path: Path) -> None:
    _write_class_folder(tmp_path / "dog", 6, start=100)
    _write_class_folder(tmp_path / "cat", 9, start=10)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    data = load_source("imagefolder", tmp_path, test_per_class=2, seed=0)
    assert data.train.class_names == ("cat", "dog")
    assert data.test.class_counts().tolist() == [2, 2]
    assert data.train.class_counts().tolist() == [7, 4]
    assert data.train.images.shape[1:] == (3, 5, 7)
    # Labels follow the folders: cat images were written with values 10..18.
    cat_values = torch.cat([data.train.images, data.test.images])[:, 1, 2, 3]
    labels = torch.cat([data.train.labels, data.test.labels])
    assert ((cat_values < 100) == (labels == 0)).all()


def test_imagefolder_caps_test_per_class_at_half_the_smallest_class(tmp_path: Path) -> None:
    _write_class_folder(tmp_path / "a", 5, start=0)
    _write_class_folder(tmp_path / "b", 8, start=50)
    with pytest.warns(UserWarning, match=r"data\.test_per_class=30 capped at 2"):
        data = load_source("imagefolder", tmp_path)
    assert data.test.class_counts().tolist() == [2, 2]


def test_imagefolder_with_train_and_test_folders_keeps_them(tmp_path: Path) -> None:
    for part, count in (("train", 4), ("test", 2)):
        _write_class_folder(tmp_path / part / "b", count, start=0)
        _write_class_folder(tmp_path / part / "a", count + 1, start=50)
    data = load_source("imagefolder", tmp_path)
    assert data.train.class_names == ("a", "b")
    assert data.train.class_counts().tolist() == [5, 4]
    assert data.test.class_counts().tolist() == [3, 2]


def test_imagefolder_test_classes_must_match_train_classes(tmp_path: Path) -> None:
    _write_class_folder(tmp_path / "train" / "a", 2, start=0)
    _write_class_folder(tmp_path / "train" / "b", 2, start=0)
    _write_class_folder(tmp_path / "test" / "a", 2, start=0)
    _write_class_folder(tmp_path / "test" / "c", 2, start=0)
    with pytest.raises(ConfigError, match=r"data\.root: .*test has classes \['a', 'c'\]"):
        load_source("imagefolder", tmp_path)


def test_imagefolder_gray_images_are_read_as_rgb(tmp_path: Path) -> None:
    _write_class_folder(tmp_path / "a", 4, start=20, channels=1)
    _write_class_folder(tmp_path / "b", 4, start=40, channels=1)
    data = load_source("imagefolder", tmp_path, test_per_class=1)
    assert data.train.in_channels == 3
    assert torch.equal(data.train.images[:, 0], data.train.images[:, 2])


def test_imagefolder_reads_jpeg_and_bmp(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (6, 6), (128, 128, 128)).save(tmp_path / name / f"{i}.jpg")
            Image.new("RGB", (6, 6), (10, 20, 30)).save(tmp_path / name / f"{i}.BMP")
    data = load_source("imagefolder", tmp_path, test_per_class=1)
    assert len(data.train) + len(data.test) == 8
    bmp = torch.tensor([10, 20, 30], dtype=torch.uint8).view(3, 1, 1).expand(3, 6, 6)
    everything = torch.cat([data.train.images, data.test.images])
    assert sum(torch.equal(image, bmp) for image in everything) == 4


def test_imagefolder_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    _write_class_folder(tmp_path / "a", 3, start=0, size=(6, 6))
    _write_class_folder(tmp_path / "b", 3, start=0, size=(9, 12))
    with pytest.raises(ConfigError, match=r"data\.image_size: .*different sizes"):
        load_source("imagefolder", tmp_path, test_per_class=1)
    data = load_source("imagefolder", tmp_path, test_per_class=1, image_size=8)
    assert data.train.images.shape[1:] == data.test.images.shape[1:] == (3, 8, 8)


def test_resize_keeps_constant_images_and_averages_fine_detail(tmp_path: Path) -> None:
    stripes = torch.zeros((3, 16, 16), dtype=torch.uint8)
    stripes[:, :, ::4] = 255  # one bright column in four: antialiasing averages it to ~64
    for name, image in (("a", torch.full((3, 16, 16), 200, dtype=torch.uint8)), ("b", stripes)):
        (tmp_path / name).mkdir()
        for i in range(2):
            _write_png(image, tmp_path / name / f"{i}.png")
    data = load_source("imagefolder", tmp_path, test_per_class=1, image_size=4)
    images = torch.cat([data.train.images, data.test.images])
    labels = torch.cat([data.train.labels, data.test.labels])
    assert images.shape[1:] == (3, 4, 4)
    assert (images[labels == 0] == 200).all()
    interior = images[labels == 1][..., 1:3].float()  # the border columns see less input
    assert ((interior - 255 / 4).abs() <= 1).all()


def test_missing_imagefolder_root_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.root: directory .*absent does not exist"):
        load_source("imagefolder", tmp_path / "absent")


def test_empty_class_folder_is_a_config_error(tmp_path: Path) -> None:
    _write_class_folder(tmp_path / "a", 3, start=0)
    (tmp_path / "b").mkdir()
    with pytest.raises(ConfigError, match=r"data\.root: class folder .*b holds no image"):
        load_source("imagefolder", tmp_path)


# --- ImageSet -------------------------------------------------------------------------


def test_imageset_subset_and_class_counts_keep_every_class() -> None:
    images = torch.arange(4 * 3 * 2 * 2, dtype=torch.uint8).view(4, 3, 2, 2)
    labels = torch.tensor([0, 2, 2, 0])
    image_set = ImageSet(images, labels, ("x", "y", "z"))
    part = image_set.subset(torch.tensor([2, 0]))
    assert torch.equal(part.images, images[[2, 0]])
    assert part.class_counts().tolist() == [1, 0, 1]
    assert part.class_names == ("x", "y", "z")


def test_imageset_rejects_float_images() -> None:
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64), ("a",))
