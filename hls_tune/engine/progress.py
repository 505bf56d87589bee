"""Progress of a run on stderr: a bar inside each epoch on a terminal, one line per epoch
otherwise.

On a terminal the bar counts the epoch's steps and shows images per second, the epoch's ETA
and the whole run's; each finished epoch leaves one summary line above it. When stderr is
not a terminal (a batch log, a pipe) there is no bar and no carriage return: only the
summary line per epoch. The mode is chosen from the stream, never configured.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["RunProgress", "StepHook", "epoch_summary", "format_seconds"]

# on_step(epoch, step, steps, images): `step` of `steps` (1-based) of `epoch` is done and
# trained on `images` images.
StepHook = Callable[[int, int, int, int], None]


DEFAULT_WIDTH = 100
DEFAULT_ROWS = 24


def _terminal_width(stream: TextIO) -> int:
    """The terminal's width in columns, 0 when it reports none."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def format_seconds(seconds: float) -> str:
    """`1:02:03`, `2:03` or `45 s`."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    if minutes:
        return f"{minutes}:{secs:02d}"
    return f"{secs} s"


class RunProgress:
    """The progress of one run (a search, a training or one trial) over its epochs.

    Args:
        label: what runs, e.g. `search` or `trial 3`.
        total_epochs: epochs of the whole run.
        stream: where to write (default: stderr).
        tty: bar or lines (default: whether `stream` is a terminal).
        leave_summary: on a terminal, keep each epoch's summary line above the bar.
    """

    def __init__(
        self,
        label: str,
        total_epochs: int,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        leave_summary: bool = True,
    ) -> None:
        self.label = label
        self.total_epochs = total_epochs
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self.leave_summary = leave_summary
        self.bar: Any = None
        self.epoch: int | None = None
        # Rates are measured from the end of the first step (of the run, of the epoch), so
        # that data loading and model building before it do not count.
        self.run_clock: tuple[float, int] | None = None  # (time, steps done) at that point
        self.epoch_clock: tuple[float, int] | None = None  # (time, images) at that point
        self.images = 0  # in the current epoch
        self.steps_done = 0  # in this process

    # --- inside an epoch ---------------------------------------------------------------
    def on_step(self, epoch: int, step: int, steps: int, images: int) -> None:
        """Called after every step; cheap (no device synchronisation)."""
        if epoch != self.epoch:
            self._start_epoch(epoch, steps)
        now = time.perf_counter()
        self.images += images
        self.steps_done += 1
        if self.run_clock is None:
            self.run_clock = (now, self.steps_done)
        if self.epoch_clock is None:
            self.epoch_clock = (now, self.images)
        if self.bar is None:
            return
        postfix = []
        rate = self.image_rate(now)
        if rate is not None:
            postfix.append(f"{rate:.0f} img/s")
        run_eta = self._run_eta(now, epoch, step, steps)
        if run_eta is not None:
            postfix.append(f"run ETA {format_seconds(run_eta)}")
        self.bar.set_postfix_str(", ".join(postfix), refresh=False)
        self.bar.update(1)

    def image_rate(self, now: float) -> float | None:
        """Images per second in the current epoch (after its first step)."""
        if self.epoch_clock is None or now <= self.epoch_clock[0]:
            return None
        return (self.images - self.epoch_clock[1]) / (now - self.epoch_clock[0])

    def _start_epoch(self, epoch: int, steps: int) -> None:
        self._close_bar()
        self.epoch = epoch
        self.epoch_clock = None
        self.images = 0
        if self.tty:
            from tqdm import tqdm

            # A terminal that reports no width (a fresh pty) would get an empty bar.
            width = _terminal_width(self.stream)
            self.bar = tqdm(
                total=steps,
                desc=f"{self.label} epoch {epoch + 1}/{self.total_epochs}",
                unit="step",
                file=self.stream,
                dynamic_ncols=bool(width),
                ncols=None if width else DEFAULT_WIDTH,
                nrows=None if width else DEFAULT_ROWS,
                leave=False,
            )

    def _run_eta(self, now: float, epoch: int, step: int, steps: int) -> float | None:
        """Seconds left in the run at the mean step time so far (validation included)."""
        if self.run_clock is None or self.steps_done <= self.run_clock[1]:
            return None
        per_step = (now - self.run_clock[0]) / (self.steps_done - self.run_clock[1])
        remaining = (self.total_epochs - epoch - 1) * steps + (steps - step)
        return per_step * remaining

    # --- after an epoch ----------------------------------------------------------------
    def on_epoch(self, epoch: int, summary: str, seconds: float | None = None) -> None:
        """One line for the finished epoch: `<label> epoch e/E: <summary>, <time>, img/s`.

        Args:
            epoch: the finished epoch (0-based).
            summary: its figures (see `epoch_summary`).
            seconds: how long its training took (the engine measures it).
        """
        parts = [summary] if summary else []
        if seconds is not None:
            parts.append(format_seconds(seconds))
            if seconds > 0 and self.images and self.epoch == epoch:
                parts.append(f"{self.images / seconds:.0f} img/s")
        line = f"{self.label} epoch {epoch + 1}/{self.total_epochs}: " + ", ".join(parts)
        self._close_bar()
        self.epoch = None
        if self.tty and not self.leave_summary:
            return
        self.stream.write(line + "\n")
        self.stream.flush()

    def show_epoch(self, record: Any) -> bool:
        """`on_epoch` with the summary of a finished epoch's record (`epoch_summary`);
        returns True, so as a `RunHooks.on_epoch` it never stops the run."""
        self.on_epoch(record.epoch, epoch_summary(record), record.seconds)
        return True

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        """Removes a bar left open (the run stopped inside an epoch)."""
        self._close_bar()

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def epoch_summary(metrics: Any) -> str:
    """`loss 1.234, val 0.456 (balanced 0.400), mu 0.80` from an epoch's metrics."""
    parts = [f"loss {metrics.train_loss:.3f}"]
    val = getattr(metrics, "val_accuracy", None)
    if val is not None:
        balanced = getattr(metrics, "val_balanced_accuracy", None)
        parts.append(
            f"val {val:.3f}" + (f" (balanced {balanced:.3f})" if balanced is not None else "")
        )
    mixing = getattr(metrics, "mixing_ratio", None)
    if mixing is not None:
        parts.append(f"mu {mixing:.2f}")
    return ", ".join(parts)
