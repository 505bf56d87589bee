"""The run contract of the search, adapt and train loops: one hooks record, one epoch loop.

Each loop keeps its own step (`EpochRunner.train_epoch`); `run_epochs` owns everything
around it, the same for all three: resume (the checkpoint header, the parts' state dicts,
the random state), the epoch loop, the checkpoint after every epoch, and the callback rule
(the run goes on only while `RunHooks.on_epoch` returns a true value: False, or a
callback that returns nothing, stops it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from hls_tune.engine.checkpoint import (
    CheckpointFile,
    UnusableCheckpoint,
    check_header,
    check_random_state,
    load_checkpoint,
    random_state,
    restore_parts,
    restore_random_state,
    save_checkpoint,
    set_aside,
)
from hls_tune.engine.progress import StepHook
from hls_tune.errors import NonFiniteLossError, SearchInterrupted

__all__ = ["EpochRunner", "RunHooks", "RunOutcome", "epoch_means", "run_epochs"]

_log = logging.getLogger("hls_tune")


@dataclass(frozen=True)
class RunHooks:
    """How a caller follows and steers one run; passed once, to any of the three loops.

    Args:
        on_epoch: called with each finished epoch's record ("keep going?"): the run goes on
            only when it returns a true value. The epoch's checkpoint is already written.
        on_resume: called once with the restored epochs' records when a checkpoint is
            resumed, so a caller can re-report what an interrupted run had measured.
        on_step: called after every step with (epoch, step, steps, images); for progress
            bars, so it must be cheap.
        should_stop: polled before every step (no device synchronisation); True raises
            SearchInterrupted and the last epoch checkpoint stands.
        on_notice: one line for the user (a checkpoint set aside, ...); default: logged.
    """

    on_epoch: Callable[[Any], object] | None = None
    on_resume: Callable[[list[Any]], None] | None = None
    on_step: StepHook | None = None
    should_stop: Callable[[], bool] | None = None
    on_notice: Callable[[str], None] | None = None

    def keep_going(self, record: Any) -> bool:
        """The callback rule: without `on_epoch` every epoch runs, else only a true value
        from it lets the next one start."""
        return self.on_epoch is None or bool(self.on_epoch(record))

    def before_step(self, epoch: int, step: int) -> None:
        """Raises SearchInterrupted when `should_stop` says so."""
        if self.should_stop is not None and self.should_stop():
            raise SearchInterrupted(epoch, step)

    def after_step(self, epoch: int, step: int, steps: int, images: int) -> None:
        """Reports step `step` (1-based) of `steps` of `epoch`, trained on `images` images."""
        if self.on_step is not None:
            self.on_step(epoch, step, steps, images)

    def notice(self, line: str) -> None:
        """Tells the user one line."""
        if self.on_notice is not None:
            self.on_notice(line)
        else:
            _log.warning(line)


class EpochRunner(Protocol):
    """What a loop gives `run_epochs`: its step and what a checkpoint must hold."""

    kind: str  # the checkpoint's kind ("search", "adapt_head", "train")
    format: int  # bumped whenever the kind's checkpoint content changes meaning
    hooks: RunHooks
    generator: torch.Generator
    device: torch.device

    def identity(self) -> dict[str, Any]:
        """Header entries a resumed checkpoint must match (the fingerprint, ...)."""

    def parts(self) -> Mapping[str, torch.nn.Module | torch.optim.Optimizer]:
        """The modules and optimizers whose state dicts the checkpoint holds."""

    def record_from_dict(self, values: Mapping[str, Any]) -> Any:
        """An epoch record from its `to_dict` form."""

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """Trains one epoch (calling `hooks.before_step`/`after_step`); returns the mean
        loss and accuracy (`epoch_means`)."""

    def epoch_record(self, epoch: int, loss: float, accuracy: float, seconds: float) -> Any:
        """The finished epoch's record (validated on the run's validation set)."""


@dataclass(frozen=True)
class RunOutcome:
    """What the epoch loop hands back to its loop, which builds its own result from it.

    Args:
        history: one record per epoch run (restored ones included).
        stopped_early: `on_epoch` stopped the run before the last epoch.
        resumed_from_epoch: the first epoch this process ran after a resume (None: fresh).
        seconds: wall time of every epoch, over all sessions of a resumed run.
    """

    history: tuple[Any, ...]
    stopped_early: bool
    resumed_from_epoch: int | None
    seconds: float


def epoch_means(epoch: int, losses: torch.Tensor, accuracies: torch.Tensor) -> tuple[float, float]:
    """The epoch's mean loss and accuracy from its per-step values, kept on the device
    until now: one host synchronisation per epoch.

    Raises:
        NonFiniteLossError: naming the epoch and the first step whose loss was NaN/inf.
    """
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0])
        raise NonFiniteLossError(epoch, bad, float(losses[bad]))
    return float(losses.mean()), float(accuracies.mean())


def _header(runner: EpochRunner) -> dict[str, Any]:
    return {"format": runner.format, "kind": runner.kind, **runner.identity()}


def _resume(runner: EpochRunner, file: CheckpointFile) -> tuple[int, list[Any], float]:
    """(next epoch, history, elapsed) from the checkpoint, validated whole before anything
    of the runner changes."""
    path = file.path
    state = load_checkpoint(path)
    check_header(state, _header(runner), path)
    try:
        history = [runner.record_from_dict(m) for m in state["history"]]
        epoch, elapsed = state["epoch"], float(state["elapsed"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UnusableCheckpoint(f"checkpoint {path} has a damaged history.") from None
    if not isinstance(epoch, int) or len(history) != epoch + 1:
        raise UnusableCheckpoint(f"checkpoint {path} has a damaged history.")
    check_random_state(state.get("random"), runner.generator, path)
    restore_parts(runner.parts(), state.get("parts"), path)
    restore_random_state(state["random"], runner.generator, runner.device)
    return epoch + 1, history, elapsed


def _start(runner: EpochRunner, file: CheckpointFile | None) -> tuple[int, list[Any], float]:
    if file is None or not (file.path.exists() or file.path.is_symlink()):
        return 0, [], 0.0
    try:
        return _resume(runner, file)
    except UnusableCheckpoint as error:
        if not file.restart_unusable:
            raise
        aside = set_aside(file.path)
        runner.hooks.notice(f"{error} It was set aside as {aside.name}; the run starts over.")
        return 0, [], 0.0


def run_epochs(
    runner: EpochRunner, total_epochs: int, checkpoint: CheckpointFile | None
) -> RunOutcome:
    """Runs (or resumes) `runner` for `total_epochs` epochs under its hooks' callback rule.

    The checkpoint, when given, is written after every epoch and resumed when it exists;
    an unusable one is refused (`UnusableCheckpoint`) or set aside (`restart_unusable`).
    """
    start, history, elapsed = _start(runner, checkpoint)
    resumed_from = start if history else None
    hooks = runner.hooks
    if history and hooks.on_resume is not None:
        hooks.on_resume(list(history))
    stopped = False
    for epoch in range(start, total_epochs):
        started = time.perf_counter()
        loss, accuracy = runner.train_epoch(epoch)
        record = runner.epoch_record(epoch, loss, accuracy, time.perf_counter() - started)
        history.append(record)
        elapsed += time.perf_counter() - started
        if checkpoint is not None:
            state = _header(runner) | {
                "epoch": epoch,
                "history": [m.to_dict() for m in history],
                "elapsed": elapsed,
                "random": random_state(runner.generator, runner.device),
                "parts": {name: part.state_dict() for name, part in runner.parts().items()},
            }
            save_checkpoint(state, checkpoint.path)
        if not hooks.keep_going(record):
            stopped = epoch + 1 < total_epochs
            break
    return RunOutcome(tuple(history), stopped, resumed_from, elapsed)
