"""Error types shared by every layer: usage errors exit 2, runtime errors exit 1."""

from __future__ import annotations


class HlsTuneError(Exception):
    """A failure the user can act on; the CLI prints it as one line and exits 1."""


class ConfigError(HlsTuneError, ValueError):
    """Bad input (a key, a value, a file): the CLI prints it as one line and exits 2.

    Messages name the key, the value and what is allowed, e.g.
    ``data.imbalance_ratio must be >= 1 but got 0.5.``
    """


class NonFiniteLossError(HlsTuneError, FloatingPointError):
    """The search loss became NaN or infinite; names the epoch and step."""

    def __init__(self, epoch: int, step: int, value: float) -> None:
        super().__init__(
            f"loss became non-finite ({value}) at epoch {epoch}, step {step}; "
            "lower the learning rates or check the data"
        )
        self.epoch = epoch
        self.step = step
        self.value = value


class SearchInterrupted(HlsTuneError):
    """The search was asked to stop (a signal); the last epoch checkpoint is what resumes."""

    def __init__(self, epoch: int, step: int) -> None:
        super().__init__(f"search interrupted at epoch {epoch}, step {step}")
        self.epoch = epoch
        self.step = step
