"""The optimizers and the learning-rate schedule of the weights, shared by every loop.

DARTS' recipe (SPEC §1): SGD with momentum on the weights, cosine-annealed per epoch; Adam
on the architecture parameters, one parameter group per α group so that HLS can give each
group its own rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["alpha_optimizer", "cosine_lr", "search_optimizers", "set_lr", "weight_optimizer"]


def weight_optimizer(
    params: Iterable[nn.Parameter], *, lr: float, momentum: float, weight_decay: float
) -> torch.optim.SGD:
    """SGD over a network's weights."""
    return torch.optim.SGD(
        list(params),
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        # One fused update over the supernet's ~900 weight tensors instead of a Python
        # loop (PyTorch picks foreach only on CUDA by default): 4x less optimizer time
        # per step on CPU.
        foreach=True,
    )


def alpha_optimizer(
    alphas: dict[str, list[nn.Parameter]],
    groups: Iterable[str],
    *,
    lr: float,
    betas: tuple[float, float],
    weight_decay: float,
) -> torch.optim.Adam:
    """Adam over the α of each group in `groups`, one parameter group per α group, named
    after it (the per-group HLS rates set each group's `lr`; `set_lr` does it)."""
    return torch.optim.Adam(
        [{"params": alphas[g], "name": g} for g in groups],
        lr=lr,
        betas=betas,
        weight_decay=weight_decay,
    )


def search_optimizers(
    config: Any,
    weights: Iterable[nn.Parameter],
    alphas: dict[str, list[nn.Parameter]],
    groups: Iterable[str],
) -> tuple[torch.optim.SGD, torch.optim.Adam]:
    """The weight SGD and the per-group α Adam of a search-like run, with `config`'s
    (a `SearchConfig`'s) rates, momentum, betas and weight decays."""
    weight = weight_optimizer(
        weights, lr=config.weight_lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    alpha = alpha_optimizer(
        alphas,
        groups,
        lr=config.alpha_lr,
        betas=config.alpha_betas,
        weight_decay=config.alpha_weight_decay,
    )
    return weight, alpha


def set_lr(optimizer: torch.optim.Optimizer, lr: float | dict[str, float]) -> None:
    """Sets every parameter group's rate: one rate, or one per group name."""
    for group in optimizer.param_groups:
        group["lr"] = lr[group["name"]] if isinstance(lr, dict) else lr


def cosine_lr(lr: float, lr_min: float, epoch: int, epochs: int) -> float:
    """The rate of `epoch` (0-based) of `epochs`, stepped per epoch like DARTS'
    CosineAnnealingLR(T_max=epochs, eta_min=lr_min): `lr` at epoch 0.

    Example:
        >>> cosine_lr(0.1, 0.0, 5, 10)
        0.05
    """
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * epoch / epochs))
