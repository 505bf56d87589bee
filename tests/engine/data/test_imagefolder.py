"""hls_tune/engine/data/imagefolder.py: class folders of image files, read and checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from hls_tune.engine.data.sources import load_source
from hls_tune.errors import ConfigError


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


@pytest.mark.parametrize("scale", [1.5, 3.0])  # Pillow's warning band, and past its error
def test_a_decompression_bomb_in_an_imagefolder_is_one_config_error(
    tmp_path: Path, scale: float
) -> None:
    """A small PNG whose dimensions would decode to gigabytes is refused before decoding."""
    from PIL import Image

    from hls_tune.engine.data.sources import load_source

    side = int((Image.MAX_IMAGE_PIXELS * scale) ** 0.5) + 1
    for label in ("a", "b"):
        (tmp_path / "train" / label).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "train" / label / "ok.png")
    bomb = tmp_path / "train" / "a" / "bomb.png"
    Image.new("1", (side, side)).save(bomb)  # one bit a pixel: a few hundred kilobytes
    assert bomb.stat().st_size < 2**21
    with pytest.raises(ConfigError, match="too large to decode safely") as error:
        load_source("imagefolder", str(tmp_path / "train"), image_size=4, test_per_class=1)
    assert "bomb.png" in str(error.value) and "\n" not in str(error.value)
