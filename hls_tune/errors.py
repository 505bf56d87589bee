"""Error types shared by every layer (usage errors exit 2, runtime errors exit 1) and the
one "did you mean" hint their messages use."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(value: object, allowed: Iterable[str]) -> str:
    """A `` (did you mean 'x'?)`` suffix when `value` is close to one allowed word, else "".

    Example:
        >>> did_you_mean("cosin", ["linear", "cosine"])
        " (did you mean 'cosine'?)"
    """
    close = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
