"""The losses shared by the loops: class weights (SPEC §5 re-weighting) and BBN's
cumulative-learning loss (SPEC §2)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F


def class_loss_weights(train_counts: torch.Tensor, kind: str, beta: float) -> torch.Tensor:
    """Per-class loss weights normalised to mean 1: inverse frequency or effective number."""
    counts = train_counts.double()
    if kind == "inverse":
        weights = 1.0 / counts
    else:
        weights = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    return (weights / weights.mean()).float()


class MixedLoss(NamedTuple):
    """BBN's loss of one step: the mixture, its accuracy, and each branch's term.

    Args:
        loss: μ·CE(z, y_c) + (1 − μ)·CE(z, y_r), to back-propagate.
        accuracy: μ·acc(z, y_c) + (1 − μ)·acc(z, y_r) (detached).
        branches: (CE(z, y_c), CE(z, y_r)) (detached): the conventional and the
            re-balancing branch's loss before mixing.
    """

    loss: torch.Tensor
    accuracy: torch.Tensor
    branches: torch.Tensor


def bbn_mixed_loss(
    logits: torch.Tensor, y_c: torch.Tensor, y_r: torch.Tensor, mu: float
) -> MixedLoss:
    """BBN's cumulative-learning loss μ·CE(z, y_c) + (1 − μ)·CE(z, y_r) on the mixed logits
    z, the same mixture of the two label sets' accuracies, and the two branch terms.

    Args:
        logits: the mixed logits z (one row per pair of a conventional and a re-balancing
            image).
        y_c: labels of the conventional (instance-sampled) batch.
        y_r: labels of the re-balancing (reversed-sampled) batch.
        mu: the mixing ratio μ.
    """
    conventional, rebalancing = F.cross_entropy(logits, y_c), F.cross_entropy(logits, y_r)
    predicted = logits.argmax(1)
    accuracy = mu * (predicted == y_c).float().mean() + (1.0 - mu) * (
        (predicted == y_r).float().mean()
    )
    return MixedLoss(
        mu * conventional + (1.0 - mu) * rebalancing,
        accuracy.detach(),
        torch.stack([conventional, rebalancing]).detach(),
    )
