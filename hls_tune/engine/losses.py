"""Class-weighted losses shared by the loops (SPEC §5 re-weighting)."""

from __future__ import annotations

import torch


def class_loss_weights(train_counts: torch.Tensor, kind: str, beta: float) -> torch.Tensor:
    """Per-class loss weights normalised to mean 1: inverse frequency or effective number."""
    counts = train_counts.double()
    if kind == "inverse":
        weights = 1.0 / counts
    else:
        weights = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    return (weights / weights.mean()).float()
