"""The epoch loop shared by the search and adapt_head: resume, train, checkpoint, test."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hls_tune.engine.checkpoint import load_checkpoint, save_checkpoint
from hls_tune.engine.results import EpochMetrics, SearchResult
from hls_tune.engine.settings import SearchConfig
from hls_tune.errors import NonFiniteLossError


def epoch_means(epoch: int, losses: torch.Tensor, accuracies: torch.Tensor) -> tuple[float, float]:
    """The epoch's mean loss and accuracy from its per-step values, kept on the device
    until now: one host synchronisation per epoch. Shared by the search, adapt and train
    loops.

    Raises:
        NonFiniteLossError: naming the epoch and the first step whose loss was NaN/inf.
    """
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0])
        raise NonFiniteLossError(epoch, bad, float(losses[bad]))
    return float(losses.mean()), float(accuracies.mean())


def run_epochs(
    runner: Any,
    config: SearchConfig,
    total_epochs: int,
    *,
    checkpoint: str | Path | None,
    on_epoch: Callable[[EpochMetrics], bool | None] | None,
    on_resume: Callable[[list[EpochMetrics]], None] | None,
    test_metrics: Callable[[], dict[str, Any]],
    before_epoch: Callable[[int], None] | None = None,
) -> SearchResult:
    """The epoch loop shared by the search and adapt_head: resume, train, checkpoint, test.

    `runner` has `load(state) -> (start, history, elapsed)`, `train_epoch(epoch)`,
    `epoch_metrics(epoch, loss, accuracy, seconds)`, `state(epoch, history, elapsed)` and
    `model.genotype()`. The test set is evaluated (`test_metrics`) only when every epoch
    ran, never after `on_epoch` stopped the run.
    """
    start_epoch, history, elapsed = 0, [], 0.0
    checkpoint_path = Path(checkpoint) if checkpoint is not None else None
    resumed_from = None
    if checkpoint_path is not None and checkpoint_path.exists():
        start_epoch, history, elapsed = runner.load(load_checkpoint(checkpoint_path))
        resumed_from = start_epoch
        if on_resume is not None:
            on_resume(list(history))
    stopped = False
    for epoch in range(start_epoch, total_epochs):
        if before_epoch is not None:
            before_epoch(epoch)
        started = time.perf_counter()
        train_loss, train_accuracy = runner.train_epoch(epoch)
        metrics = runner.epoch_metrics(
            epoch, train_loss, train_accuracy, time.perf_counter() - started
        )
        history.append(metrics)
        elapsed += time.perf_counter() - started
        if checkpoint_path is not None:
            save_checkpoint(runner.state(epoch, history, elapsed), checkpoint_path)
        if on_epoch is not None and not on_epoch(metrics):
            stopped = epoch + 1 < total_epochs
            break
    genotype = history[-1].genotype if history else runner.model.genotype()
    test = {} if stopped or not history else test_metrics()
    return SearchResult(
        config=config,
        genotype=genotype,
        history=tuple(history),
        stopped_early=stopped,
        resumed_from_epoch=resumed_from,
        seconds=elapsed,
        **test,
    )
