"""α learning-rate shapes (SPEC §4): the registry of formulas, each with the parameters it
reads, and the schedule of one level (shape, breakpoints, floor, multiplier)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from hls_tune.engine.checks import check_choice, check_number, check_unit
from hls_tune.errors import ConfigError

__all__ = ["ALPHA_LR_SHAPES", "LEVEL_PARAMS", "SHAPES", "LevelSchedule", "Shape", "alpha_lr_shape"]


def _cosine_ramp(fraction: float, floor: float) -> float:
    """1 at fraction 0, ``floor`` at fraction 1, half a cosine in between."""
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * fraction))


def _ramp(ramp: Callable[[float, float], float]) -> Callable[[float, float, float, float], float]:
    """A shape that is 1 before b1, `ramp(fraction, floor)` on [b1, b2), `floor` from b2."""

    def shape(t: float, b1: float, b2: float, floor: float) -> float:
        if t < b1:
            return 1.0
        if t >= b2:  # also covers b1 == b2: the ramp collapses into a step at b1
            return floor
        return ramp((t - b1) / (b2 - b1), floor)  # b1 <= t < b2, so b2 > b1

    return shape


def _step(t: float, b1: float, _b2: float, floor: float) -> float:
    return 1.0 if t < b1 else floor


def _warmup_hold_decay(t: float, b1: float, b2: float, floor: float) -> float:
    if t < b1:
        return t / b1  # b1 > 0 here, since t >= 0
    if t <= b2:  # covers b2 = 1: no decay
        return 1.0
    return _cosine_ramp((t - b2) / (1.0 - b2), floor)


@dataclass(frozen=True)
class Shape:
    """One α-LR shape: its formula `(t, b1, b2, floor) -> multiplier` and the parameters it
    reads (a study samples a level's breakpoints and floor only when its shape reads them)."""

    formula: Callable[[float, float, float, float], float]
    reads: tuple[str, ...]


SHAPES: dict[str, Shape] = {
    "constant": Shape(lambda t, b1, b2, floor: 1.0, ()),
    "step": Shape(_step, ("b1", "floor")),
    "linear": Shape(_ramp(lambda f, floor: 1.0 - (1.0 - floor) * f), ("b1", "b2", "floor")),
    "cosine": Shape(_ramp(_cosine_ramp), ("b1", "b2", "floor")),
    # Python's float power gives 0.0**0 = 1 and 0.0**x = 0 for x > 0, so floor 0 is valid.
    "exponential": Shape(_ramp(lambda f, floor: floor**f), ("b1", "b2", "floor")),
    "warmup_hold_decay": Shape(_warmup_hold_decay, ("b1", "b2", "floor")),
}
ALPHA_LR_SHAPES = tuple(SHAPES)
LEVEL_PARAMS = ("shape", "b1", "b2", "floor", "mult")


@dataclass(frozen=True)
class LevelSchedule:
    """The α-LR schedule of one level (the shared one, a family or a group).

    Args:
        shape: one of ``ALPHA_LR_SHAPES``; None ties the level to the next one up (its
            breakpoints and floor then have no effect).
        b1: first breakpoint, a fraction of the α-active epochs in [0, 1].
        b2: second breakpoint, in [b1, 1].
        floor: the value the decaying shapes reach, in [0, 1].
        mult: multiplier of the base rate (family and group levels), >= 0.

    A record is checked by the schedule that holds it (`HLSSchedule`), whose messages name
    the level's study keys (``head_alpha_lr_b1``); `check` does it for one level.
    """

    shape: str | None = None
    b1: float = 0.5
    b2: float = 1.0
    floor: float = 0.1
    mult: float = 1.0

    def check(self, key: Callable[[str], str]) -> None:
        """Validates every field; `key(field)` names it in messages."""
        if self.shape is not None:
            check_choice(key("shape"), self.shape, ALPHA_LR_SHAPES)
        b1, b2 = check_unit(key("b1"), self.b1), check_unit(key("b2"), self.b2)
        if b1 > b2:
            raise ConfigError(
                f"{key('b1')} must be <= {key('b2')} but got {key('b1')}={self.b1!r}, "
                f"{key('b2')}={self.b2!r}."
            )
        check_unit(key("floor"), self.floor)
        mult = check_number(key("mult"), self.mult)
        if not (mult >= 0.0 and math.isfinite(mult)):
            raise ConfigError(f"{key('mult')} must be >= 0 and finite but got {self.mult!r}.")

    def value(self, t: float) -> float:
        """The shape's multiplier at progress t (the level must have a shape)."""
        assert self.shape is not None, "a tied level has no shape of its own"
        return SHAPES[self.shape].formula(check_unit("t", t), self.b1, self.b2, self.floor)


def alpha_lr_shape(
    shape: str, t: float, *, b1: float = 0.5, b2: float = 1.0, floor: float = 0.1
) -> float:
    """Multiplier of the α learning rate at progress ``t`` (SPEC §4 ``shape``).

    The value is 1 before ``b1`` unless stated otherwise:

    - ``constant``: 1 throughout.
    - ``step``: ``floor`` from ``b1`` on.
    - ``linear``: linear from 1 at ``b1`` to ``floor`` at ``b2``, ``floor`` after.
    - ``cosine``: half cosine from 1 at ``b1`` to ``floor`` at ``b2``, ``floor`` after.
    - ``exponential``: floor^((t − b1)/(b2 − b1)) on [b1, b2], ``floor`` after
      (with 0⁰ = 1, so ``floor`` = 0 is valid).
    - ``warmup_hold_decay``: linear 0 → 1 on [0, b1] (1 from the start when b1 = 0),
      1 on [b1, b2], half cosine from 1 at ``b2`` to ``floor`` at t = 1 (1 throughout
      when b2 = 1).

    When b1 = b2 the ramped shapes become a step at b1; every 0 ≤ b1 ≤ b2 ≤ 1 is valid.

    Raises:
        ConfigError: unknown shape, breakpoints out of order or out of [0, 1], or floor
            outside [0, 1].

    Example:
        >>> alpha_lr_shape("linear", 0.75, b1=0.5, b2=1.0, floor=0.0)
        0.5
    """
    check_choice("alpha_lr_shape", shape, ALPHA_LR_SHAPES)
    level = LevelSchedule(shape, b1, b2, floor)
    level.check(lambda field: f"alpha_lr_{field}")
    return level.value(t)
