"""BBN's mixing ratio μ(t): the forms, each with the parameters it reads, and the record.

SPEC §2 and §4: μ(t) is the weight of the conventional branch at progress t ∈ [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from hls_tune.engine.checks import check_choice, check_number, check_unit
from hls_tune.errors import ConfigError

__all__ = ["MIX_FORMS", "MIX_PARAMS", "MixForm", "MixingRatio", "is_symmetric", "mixing_ratio"]


def _sigmoid_decay(x: float) -> float:
    """1 / (1 + e^x) without overflow for large |x|."""
    if x >= 0.0:
        e = math.exp(-x)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(x))


@dataclass(frozen=True)
class MixForm:
    """One μ(t) form: its formula and which of the record's parameters it reads.

    Args:
        formula: μ(t, ratio) for a `MixingRatio` ratio.
        reads: the `MixingRatio` fields the formula reads (the study samples only those).
        symmetric: whether μ(t) + μ(1 − t) = 1 for every t, given the record.
    """

    formula: Callable[[float, MixingRatio], float]
    reads: tuple[str, ...]
    symmetric: Callable[[MixingRatio], bool]


def _always(_: MixingRatio) -> bool:
    return True


def _never(_: MixingRatio) -> bool:
    return False


# The registry: BBN's parabolic decay and the forms BBN's code also tried (SPEC §2).
MIX_FORMS: dict[str, MixForm] = {
    "parabolic": MixForm(lambda t, _: 1.0 - t * t, (), _never),
    "linear": MixForm(lambda t, _: 1.0 - t, (), _always),
    "cosine": MixForm(lambda t, _: 0.5 * (1.0 + math.cos(math.pi * t)), (), _always),
    "sigmoid": MixForm(
        lambda t, r: _sigmoid_decay(r.steepness * (t - 0.5)), ("steepness",), _always
    ),
    # The step is symmetric everywhere except at t = ½ itself (μ(½) + μ(½) = 0), a single
    # point of measure zero: we still call it symmetric.
    "step": MixForm(
        lambda t, r: 1.0 if t < r.switch else 0.0, ("switch",), lambda r: r.switch == 0.5
    ),
    "constant": MixForm(lambda _, r: float(r.constant), ("constant",), lambda r: r.constant == 0.5),
    "parabolic_increment": MixForm(lambda t, _: t * t, (), _never),
}
MIX_PARAMS = ("steepness", "constant", "switch")


@dataclass(frozen=True)
class MixingRatio:
    """μ(t) of one mixing form, validated at construction.

    ``parabolic`` 1 − t² (BBN's default); ``linear`` 1 − t; ``cosine`` (1 + cos πt)/2;
    ``sigmoid`` 1/(1 + e^{k(t − ½)}) with k = ``steepness`` (it reaches neither 1 at t = 0
    nor 0 at t = 1); ``step`` 1 for t < ``switch`` and 0 from ``switch`` on; ``constant``
    ``constant``; ``parabolic_increment`` t² (also tried in BBN's code).

    Args:
        form: one of ``MIX_FORMS``.
        steepness: k of the ``sigmoid`` form, > 0.
        constant: value of the ``constant`` form, in [0, 1].
        switch: progress at which the ``step`` form drops from 1 to 0, in [0, 1].

    Example:
        >>> MixingRatio("parabolic")(0.5)
        0.75
    """

    form: str = "parabolic"
    steepness: float = 10.0
    constant: float = 0.5
    switch: float = 0.5

    def __post_init__(self) -> None:
        check_choice("mix_form", self.form, MIX_FORMS)
        steepness = check_number("mix_steepness", self.steepness)
        if not (steepness > 0.0 and math.isfinite(steepness)):
            raise ConfigError(f"mix_steepness must be > 0 and finite but got {self.steepness!r}.")
        check_unit("mix_constant", self.constant)
        check_unit("mix_switch", self.switch)

    def __call__(self, t: float) -> float:
        """μ(t) in [0, 1] at progress t ∈ [0, 1]."""
        return MIX_FORMS[self.form].formula(check_unit("t", t), self)

    @property
    def reads(self) -> tuple[str, ...]:
        """The parameters this record's form reads."""
        return MIX_FORMS[self.form].reads

    @property
    def is_symmetric(self) -> bool:
        """Whether μ(t) + μ(1 − t) = 1 for all t, the property HLS asks of the mixing form:
        linear, cosine, sigmoid (any steepness), constant ½ and step at ½."""
        return MIX_FORMS[self.form].symmetric(self)


def mixing_ratio(
    form: str, t: float, *, steepness: float = 10.0, constant: float = 0.5, switch: float = 0.5
) -> float:
    """μ(t) of a form (see `MixingRatio`); every parameter is checked, whichever form uses it.

    Example:
        >>> mixing_ratio("parabolic", 0.5)
        0.75
    """
    return MixingRatio(form, steepness, constant, switch)(t)


def is_symmetric(
    form: str, *, steepness: float = 10.0, constant: float = 0.5, switch: float = 0.5
) -> bool:
    """Whether a form satisfies μ(t) + μ(1 − t) = 1 (see `MixingRatio.is_symmetric`).

    Example:
        >>> is_symmetric("cosine"), is_symmetric("parabolic")
        (True, False)
    """
    return MixingRatio(form, steepness, constant, switch).is_symmetric
