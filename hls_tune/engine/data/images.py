"""The image-set records every source yields, and the operations on them.

`ImageSet` (uint8 CPU images with labels and class names), `SourceData` (a training set and
a balanced test set), `concat_images`, and the antialiased resize of uint8 images
(`resize_images`, `resize_set`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["ImageSet", "SourceData", "concat_images", "resize_images", "resize_set"]

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


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resizes uint8 N×C×H×W to N×C×size×size: bilinear with antialias on float, rounded."""
    resized = F.interpolate(
        images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def resize_set(images: ImageSet, size: int) -> ImageSet:
    """The set with every image resized to size×size (unchanged when already that size)."""
    if images.images.shape[2:] == (size, size):
        return images
    chunks = [
        resize_images(images.images[start : start + _RESIZE_CHUNK], size)
        for start in range(0, len(images), _RESIZE_CHUNK)
    ]
    resized = (
        torch.cat(chunks)
        if chunks
        else images.images.new_zeros((0, images.in_channels, size, size))
    )
    return ImageSet(resized.contiguous(), images.labels, images.class_names)
