"""CIFAR-10/100 from the python-version archive: found under a root (or downloaded with
torchvision), read through the restricted unpickler, checked, and turned into image sets
with the standard training and test sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hls_tune.engine.data.images import ImageSet, SourceData
from hls_tune.engine.data.safe_pickle import load_cifar_pickle
from hls_tune.errors import ConfigError

__all__ = ["load_cifar"]

_CIFAR_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "batches.meta",
        b"labels",
        b"label_names",
    ),
    "cifar100": (
        "cifar-100-python",
        ("train",),
        "test",
        "meta",
        b"fine_labels",
        b"fine_label_names",
    ),
}


def load_cifar(name: str, root: Path, download: bool) -> SourceData:
    """CIFAR `name` (`cifar10` or `cifar100`) from `root` (see `load_source`), with its
    standard test set; downloaded into `root` first when it lacks the files and `download`."""
    folder_name, train_files, test_file, meta_file, label_key, names_key = _CIFAR_LAYOUT[name]
    needed = (*train_files, test_file, meta_file)
    layout = f"{folder_name}/{{{','.join(needed)}}} (the CIFAR python-version archive, extracted)"

    folder = _find_cifar_folder(root, folder_name, needed)
    if folder is None and download:
        import torchvision

        datasets = {
            "cifar10": torchvision.datasets.CIFAR10,
            "cifar100": torchvision.datasets.CIFAR100,
        }
        try:
            datasets[name](root=str(root), train=True, download=True)
        except Exception as error:  # network, disk or checksum failures
            raise ConfigError(
                f"data.root: downloading {name} into {root} failed ({error}); "
                f"download it by hand and extract it as {root}/{layout}."
            ) from error
        folder = _find_cifar_folder(root, folder_name, needed)
    if folder is None:
        if not root.is_dir():
            raise ConfigError(
                f"data.root: directory {root} does not exist; expected the CIFAR python "
                f"archive layout {layout}, or set data.download = true."
            )
        raise ConfigError(
            f"data.root: {root} does not hold {name}; expected {layout} "
            "inside it, or that folder itself, or set data.download = true."
        )

    meta = _read_pickle(folder / meta_file)
    class_names = tuple(_decode(n) for n in _field(meta, names_key, folder / meta_file))
    train_parts = [_read_cifar_batch(folder / f, label_key) for f in train_files]
    train = ImageSet(
        torch.cat([images for images, _ in train_parts]),
        torch.cat([labels for _, labels in train_parts]),
        class_names,
    )
    test = ImageSet(*_read_cifar_batch(folder / test_file, label_key), class_names)
    for part, path in ((train, folder / train_files[0]), (test, folder / test_file)):
        if len(part) and not 0 <= int(part.labels.min()) <= int(part.labels.max()) < len(
            class_names
        ):
            raise ConfigError(
                f"data.root: {path} has labels outside [0, {len(class_names)}); the meta file "
                f"names {len(class_names)} classes."
            )
    return SourceData(train, test)


def _find_cifar_folder(root: Path, folder_name: str, needed: Sequence[str]) -> Path | None:
    for candidate in (root / folder_name, root):
        if all((candidate / f).is_file() for f in needed):
            return candidate
    return None


def _read_pickle(path: Path) -> dict:
    # The CIFAR archive is a set of pickles; a restricted unpickler rebuilds only plain data.
    content = load_cifar_pickle(path)
    if not isinstance(content, dict):
        raise ConfigError(
            f"data.root: {path} holds a {type(content).__name__}; expected a CIFAR dict."
        )
    return content


def _field(content: dict, key: bytes, path: Path):
    # Files pickled by Python 3 may use str keys; the originals use bytes.
    for candidate in (key, key.decode()):
        if candidate in content:
            return content[candidate]
    raise ConfigError(f"data.root: {path} lacks the key {key!r}; expected a CIFAR python file.")


def _decode(name: bytes | str) -> str:
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def _read_cifar_batch(path: Path, label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    content = _read_pickle(path)
    try:
        data = np.asarray(_field(content, b"data", path))
        labels = np.asarray(_field(content, label_key, path), dtype=np.int64)
    except (ValueError, TypeError, OverflowError) as error:
        raise ConfigError(
            f"data.root: {path} has data or labels that are not arrays of numbers ({error})."
        ) from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ConfigError(
            f"data.root: {path} has data of dtype {data.dtype} and shape {data.shape}; "
            "expected uint8 N×3072 (3×32×32, row-major)."
        )
    if labels.shape != (data.shape[0],):
        raise ConfigError(
            f"data.root: {path} has {labels.shape[0]} labels for {data.shape[0]} images."
        )
    images = torch.from_numpy(np.ascontiguousarray(data)).reshape(-1, 3, 32, 32)
    return images.contiguous(), torch.from_numpy(labels)
