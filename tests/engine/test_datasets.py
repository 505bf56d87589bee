"""hls_tune/engine/datasets.py: the data a run trains on, and its balanced counterpart."""

from __future__ import annotations

import torch

from tests.support.tiny_search import TINY_DATA


def test_the_balanced_counterpart_trains_on_balanced_images_and_validates_like_the_target(data):
    from hls_tune.engine.datasets import balanced_counterpart

    balanced = balanced_counterpart(TINY_DATA)
    counts = balanced.weight.class_counts().tolist()
    assert len(set(counts)) == 1 and counts[0] == 60  # every class at the (capped) head count
    assert balanced.train_counts == tuple(counts) and len(balanced.alpha) == 0
    # the same validation and test images and many/medium/few groups as the target
    assert torch.equal(balanced.val.images, data.val.images)
    assert torch.equal(balanced.test.labels, data.test.labels)
    assert balanced.shot_group == data.shot_group
    held_out = {bytes(img.numpy()) for img in torch.cat([data.val.images, data.test.images])}
    assert not any(bytes(img.numpy()) in held_out for img in balanced.weight.images)
    assert sum(counts) > sum(data.train_counts)  # more images than the long-tailed set
