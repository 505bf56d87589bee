"""Image sources (digits, CIFAR-10/100, ImageFolder) loaded once into uint8 CPU tensors.

Every source yields a training set and a balanced test set; long-tailing happens later.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hls_tune.engine.data.safe_pickle import load_cifar_pickle
from hls_tune.errors import ConfigError, did_you_mean

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")

# Files are decoded with Pillow (a torchvision dependency): torchvision.io's decoders are
# deprecated since torchvision 0.29. Decoding happens once, at load time, never per batch.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

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

# Images per resize chunk: bounds the float32 copy (4096 CIFAR images ≈ 50 MB).
_RESIZE_CHUNK = 4096


@dataclass(frozen=True)
class ImageSet:
    """Images and integer labels held as CPU tensors.

    Attributes:
        images: ``uint8`` tensor of shape N×C×H×W, contiguous.
        labels: ``int64`` tensor of shape N with values in ``[0, num_classes)``.
        class_names: one name per class; its length defines ``num_classes``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 N×C×H×W tensor but got {self.images.dtype} "
                f"of shape {tuple(self.images.shape)}."
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be an int64 tensor of shape ({self.images.shape[0]},) but got "
                f"{self.labels.dtype} of shape {tuple(self.labels.shape)}."
            )
        if not self.images.is_contiguous():
            object.__setattr__(self, "images", self.images.contiguous())
        object.__setattr__(self, "class_names", tuple(self.class_names))

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, indices: torch.Tensor) -> ImageSet:
        """Returns the images at ``indices`` (in that order), keeping every class name.

        Args:
            indices: ``int64`` index tensor into this set.
        """
        return ImageSet(self.images[indices], self.labels[indices], self.class_names)

    @property
    def num_classes(self) -> int:
        """Number of classes, including any with no image in this set."""
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        """Number of image channels (C)."""
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        """Image height H (sources produce square images unless the folder's are not)."""
        return self.images.shape[2]

    def class_counts(self) -> torch.Tensor:
        """Returns the ``int64`` number of images per class, length ``num_classes``."""
        return torch.bincount(self.labels, minlength=self.num_classes)


def concat_images(first: ImageSet, second: ImageSet) -> ImageSet:
    """Two image sets over the same classes, one after the other."""
    return ImageSet(
        torch.cat([first.images, second.images]),
        torch.cat([first.labels, second.labels]),
        first.class_names,
    )


@dataclass(frozen=True)
class SourceData:
    """A training set and a balanced test set over the same classes."""

    train: ImageSet
    test: ImageSet


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
            data = _load_imagefolder(root, image_size, test_per_class, seed)
        else:
            data = _load_cifar(name, root, download)
    if image_size is not None:
        data = SourceData(_resize_set(data.train, image_size), _resize_set(data.test, image_size))
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
    return _split_balanced_test(everything, test_per_class, seed)


def _split_balanced_test(images: ImageSet, test_per_class: int, seed: int) -> SourceData:
    """Moves the same number of randomly chosen images of every class into a test set."""
    counts = images.class_counts()
    smallest = int(counts.min())
    if smallest < 2:
        empty = [images.class_names[c] for c in range(len(counts)) if counts[c] < 2]
        raise ConfigError(
            f"data.root: classes {empty} have fewer than 2 images; a train/test split needs "
            "at least 2 per class (or provide train/ and test/ folders)."
        )
    per_class = min(test_per_class, smallest // 2)
    if per_class < test_per_class:
        warnings.warn(
            f"data.test_per_class={test_per_class} capped at {per_class}: the smallest class "
            f"has {smallest} images and keeps at least half of them for training.",
            stacklevel=4,  # the caller of load_source
        )
    order, rank = class_grouped_order(images.labels, images.num_classes, seed)
    test_index = order[rank < per_class].sort().values
    train_index = order[rank >= per_class].sort().values
    return SourceData(images.subset(train_index), images.subset(test_index))


def class_grouped_order(
    labels: torch.Tensor, num_classes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns a seeded random order grouped by class, and each entry's rank in its class.

    ``order`` lists every index once, class 0 first, in a random order within each class;
    ``rank[j]`` is the position of ``order[j]`` among the indices of its class. Taking
    ``rank < k`` selects k random images per class without a Python loop over images.

    Args:
        labels: ``int64`` labels, shape N.
        num_classes: number of classes (labels must be smaller).
        seed: seed of the permutation.
    """
    generator = torch.Generator().manual_seed(seed)
    permutation = torch.randperm(labels.numel(), generator=generator)
    by_class = torch.argsort(labels[permutation], stable=True)
    order = permutation[by_class]
    counts = torch.bincount(labels, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(labels.numel()) - starts[labels[order]]
    return order, rank


# --- CIFAR ------------------------------------------------------------------------------


def _load_cifar(name: str, root: Path, download: bool) -> SourceData:
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


# --- ImageFolder ------------------------------------------------------------------------


def _load_imagefolder(
    root: Path, image_size: int | None, test_per_class: int, seed: int
) -> SourceData:
    if not root.is_dir():
        raise ConfigError(
            f"data.root: directory {root} does not exist; expected root/<class>/<image> or "
            f"root/train/<class>/<image> plus root/test/<class>/<image> "
            f"(extensions {IMAGE_EXTENSIONS})."
        )
    if (root / "train").is_dir() and (root / "test").is_dir():
        class_names = _class_folders(root / "train")
        test_names = _class_folders(root / "test")
        if test_names != class_names:
            raise ConfigError(
                f"data.root: {root / 'test'} has classes {list(test_names)} but "
                f"{root / 'train'} has {list(class_names)}; expected the same class folders."
            )
        train = _read_class_folders(root / "train", class_names, image_size)
        test = _read_class_folders(root / "test", class_names, image_size)
        if train.images.shape[1:] != test.images.shape[1:]:
            raise ConfigError(
                f"data.image_size: train images are {tuple(train.images.shape[2:])} but test "
                f"images are {tuple(test.images.shape[2:])}; set data.image_size to resize both."
            )
        return SourceData(train, test)
    class_names = _class_folders(root)
    everything = _read_class_folders(root, class_names, image_size)
    return _split_balanced_test(everything, test_per_class, seed)


def _class_folders(folder: Path) -> tuple[str, ...]:
    names = tuple(
        sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    )
    if len(names) < 2:
        raise ConfigError(
            f"data.root: {folder} has {len(names)} class folder(s) {list(names)}; expected at "
            "least 2 folders, one per class, holding the images."
        )
    return names


def _read_class_folders(
    folder: Path, class_names: Sequence[str], image_size: int | None
) -> ImageSet:
    images: list[torch.Tensor] = []
    labels: list[int] = []
    for label, class_name in enumerate(class_names):
        files = sorted(
            p
            for p in (folder / class_name).iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise ConfigError(
                f"data.root: class folder {folder / class_name} holds no image; "
                f"expected files with extensions {IMAGE_EXTENSIONS}."
            )
        for path in files:
            image = _read_image(path)
            if image_size is not None and image.shape[1:] != (image_size, image_size):
                image = _resize(image.unsqueeze(0), image_size)[0]
            images.append(image)
            labels.append(label)
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) > 1:
        raise ConfigError(
            f"data.image_size: images under {folder} have different sizes "
            f"{sorted(shapes)[:4]}; set data.image_size to resize them to one square size."
        )
    return ImageSet(
        torch.stack(images), torch.tensor(labels, dtype=torch.int64), tuple(class_names)
    )


def _read_image(path: Path) -> torch.Tensor:
    """Reads one file as uint8 3×H×W RGB (gray is replicated, alpha dropped)."""
    from PIL import Image, UnidentifiedImageError

    try:
        # A decompression bomb (a small file of huge dimensions) is refused before it is
        # decoded: Pillow's size check, its warning made an error.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as picture:
                array = np.array(picture.convert("RGB"), dtype=np.uint8)  # H×W×3, a copy
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ConfigError(
            f"data.root: image {path} is too large to decode safely ({error})."
        ) from None
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ConfigError(f"data.root: cannot decode image {path} ({error}).") from error
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


# --- resizing ---------------------------------------------------------------------------


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resizes uint8 N×C×H×W to N×C×size×size: bilinear with antialias on float, rounded."""
    resized = F.interpolate(
        images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def _resize_set(images: ImageSet, size: int) -> ImageSet:
    if images.images.shape[2:] == (size, size):
        return images
    chunks = [
        _resize(images.images[start : start + _RESIZE_CHUNK], size)
        for start in range(0, len(images), _RESIZE_CHUNK)
    ]
    resized = (
        torch.cat(chunks)
        if chunks
        else images.images.new_zeros((0, images.in_channels, size, size))
    )
    return ImageSet(resized.contiguous(), images.labels, images.class_names)
