"""Image sources (digits, CIFAR-10/100, ImageFolder) loaded once into uint8 CPU tensors.

Every source yields a training set and a balanced test set; long-tailing happens later.
This module holds `load_source`, which checks the settings and dispatches, and the digits
source; CIFAR is read in `cifar`, ImageFolder data in `imagefolder`, the records and the
resize in `images` and the balanced test split in `splits`. The names other modules import
from here (`ImageSet`, `SourceData`, `concat_images`, `class_grouped_order`,
`IMAGE_EXTENSIONS`) are re-exported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from hls_tune.engine.data.cifar import load_cifar
from hls_tune.engine.data.imagefolder import IMAGE_EXTENSIONS, load_imagefolder
from hls_tune.engine.data.images import ImageSet, SourceData, concat_images, resize_set
from hls_tune.engine.data.splits import class_grouped_order, split_balanced_test
from hls_tune.errors import ConfigError, did_you_mean

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "ImageSet",
    "SourceData",
    "class_grouped_order",
    "concat_images",
    "digits_arrays",
    "load_source",
]

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")


def load_source(
    name: str,
    root: str | Path | None = None,
    *,
    image_size: int | None = None,
    download: bool = False,
    test_per_class: int = 30,
    seed: int = 0,
) -> SourceData:
    """Loads a dataset into uint8 CPU tensors.

    ``digits`` (scikit-learn's 8×8 handwritten digits, no download) and single-folder
    ImageFolder data get a balanced test set split off with ``seed``; CIFAR keeps its
    standard test set, and an ImageFolder root with ``train/`` and ``test/`` keeps those.

    Args:
        name: one of ``DATASETS``.
        root: dataset directory; ignored for ``digits``. For CIFAR, the folder holding
            ``cifar-10-batches-py/`` (``cifar-100-python/``) or that folder itself. For
            ``imagefolder``, ``root/<class>/<image>`` or ``root/{train,test}/<class>/<image>``.
        image_size: when given, every image is resized to ``image_size``×``image_size``
            (bilinear, antialiased); must be >= 4.
        download: fetch CIFAR with torchvision when ``root`` lacks the files.
        test_per_class: test images per class for sources without a test split (capped at
            half of the smallest class, with a warning).
        seed: seed of the test-set draw.

    Returns:
        The training set and the balanced test set.

    Raises:
        ConfigError: unknown name, missing or malformed files, bad ``image_size``.

    Example:
        >>> data = load_source("digits", test_per_class=10)
        >>> data.train.images.shape[1:], data.test.class_counts().tolist()
        (torch.Size([1, 8, 8]), [10, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    """
    if name not in DATASETS:
        raise ConfigError(
            f"data.dataset must be one of {', '.join(DATASETS)} but got {name!r}"
            f"{did_you_mean(name, DATASETS)}."
        )
    if image_size is not None and not _is_int_at_least(image_size, 4):
        raise ConfigError(
            f"data.image_size must be an integer >= 4 (or unset) but got {image_size!r}."
        )
    if not _is_int_at_least(test_per_class, 1):
        raise ConfigError(
            f"data.test_per_class must be an integer >= 1 but got {test_per_class!r}."
        )

    if name == "digits":
        data = _load_digits(test_per_class, seed)
    else:
        if root is None:
            raise ConfigError(f"data.root: required for dataset {name!r} but got None.")
        root = Path(root).expanduser()
        if name == "imagefolder":
            data = load_imagefolder(root, image_size, test_per_class, seed)
        else:
            data = load_cifar(name, root, download)
    if image_size is not None:
        data = SourceData(resize_set(data.train, image_size), resize_set(data.test, image_size))
    return data


def _is_int_at_least(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


# --- digits -----------------------------------------------------------------------------


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits: (N×8×8 pixels in 0..16, N labels).

    Read straight from the CSV file scikit-learn ships (`sklearn/datasets/data/
    digits.csv.gz`, 64 pixels then the label per row), which is what `load_digits` parses:
    importing `sklearn.datasets` costs about 0.7 s per process, paid by every worker, for a
    file that numpy reads in milliseconds. Falls back to `load_digits` when the file is not
    where scikit-learn keeps it.
    """
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.asarray(bunch.images, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)


def _load_digits(test_per_class: int, seed: int) -> SourceData:
    pixels_0_16, targets = digits_arrays()
    pixels = torch.from_numpy(np.asarray(pixels_0_16, dtype=np.float64))  # N×8×8, 0..16
    images = torch.round(pixels * (255.0 / 16.0)).to(torch.uint8).unsqueeze(1).contiguous()
    labels = torch.from_numpy(targets)
    everything = ImageSet(images, labels, tuple(str(d) for d in range(10)))
    return split_balanced_test(everything, test_per_class, seed)
