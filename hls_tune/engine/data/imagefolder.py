"""ImageFolder sources: `root/<class>/<image>`, or `root/train/...` plus `root/test/...`,
each image decoded once with Pillow (decompression bombs refused) into uint8 RGB.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hls_tune.engine.data.images import ImageSet, SourceData, resize_images
from hls_tune.engine.data.splits import split_balanced_test
from hls_tune.errors import ConfigError

__all__ = ["IMAGE_EXTENSIONS", "load_imagefolder"]

# Files are decoded with Pillow (a torchvision dependency): torchvision.io's decoders are
# deprecated since torchvision 0.29. Decoding happens once, at load time, never per batch.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def load_imagefolder(
    root: Path, image_size: int | None, test_per_class: int, seed: int
) -> SourceData:
    """The class folders under `root` (see `load_source`); a root without `train/` and
    `test/` gets a balanced test set of `test_per_class` images per class split off with
    `seed`. Images are resized to `image_size` as they are read, when it is given."""
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
    return split_balanced_test(everything, test_per_class, seed)


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
                image = resize_images(image.unsqueeze(0), image_size)[0]
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
