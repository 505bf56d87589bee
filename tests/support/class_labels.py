"""Shuffled class labels with a given count per class, for the data tests."""

from __future__ import annotations

import torch


def _shuffled_labels(counts: list[int], seed: int = 0) -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]
