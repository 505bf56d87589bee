"""hls_tune/engine/data/images.py: the ImageSet record of uint8 images and labels."""

from __future__ import annotations

import pytest
import torch

from hls_tune.engine.data.images import ImageSet


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
