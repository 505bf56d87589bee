"""HLS schedules as pure functions of training progress t ∈ [0, 1].

Mixing-ratio forms μ(t) (BBN), α learning-rate shapes and per-group couplings (SPEC §2, §4).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hls_tune.errors import ConfigError

if TYPE_CHECKING:
    from hls_tune.engine.settings import SearchConfig

__all__ = [
    "ALPHA_GROUPS",
    "ALPHA_LR_SHAPES",
    "COUPLINGS",
    "FAMILIES",
    "GROUP_LEVELS",
    "MIX_FORMS",
    "PAPER_READING",
    "HLSSchedule",
    "alpha_lr_shape",
    "default_schedule",
    "group_coupling",
    "is_symmetric",
    "mixing_ratio",
    "schedule_level",
]

MIX_FORMS = (
    "parabolic",
    "linear",
    "cosine",
    "sigmoid",
    "step",
    "constant",
    "parabolic_increment",
)
ALPHA_LR_SHAPES = ("constant", "step", "linear", "cosine", "exponential", "warmup_hold_decay")
ALPHA_GROUPS = ("backbone_normal", "backbone_reduce", "head_conventional", "head_rebalancing")
# The two families that tie groups: the backbone pair and the head pair.
FAMILIES = {
    "backbone_normal": "backbone",
    "backbone_reduce": "backbone",
    "head_conventional": "head",
    "head_rebalancing": "head",
}
# Levels that can carry their own α-LR shape (prefix of `<level>_alpha_lr_shape` etc.),
# the families first; the shared level has no prefix (`alpha_lr_shape`).
GROUP_LEVELS = ("backbone", "head", *ALPHA_GROUPS)
COUPLINGS = ("mixing", "none", "backbone_max")


# ---------------------------------------------------------------------------------------------
# validation helpers


def _check_choice(key: str, value: object, allowed: Sequence[str]) -> str:
    if isinstance(value, str) and value in allowed:
        return value
    message = f"{key} must be one of {', '.join(allowed)} but got {value!r}."
    if isinstance(value, str):
        close = difflib.get_close_matches(value, allowed, n=1)
        if close:
            message = f"{message[:-1]} (did you mean {close[0]!r}?)."
    raise ConfigError(message)


def _check_number(key: str, value: object) -> float:
    # bool is an int subclass, but `alpha_lr_b1 = true` in a study file is a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number but got {value!r}.")
    return float(value)


def _check_unit(key: str, value: object) -> float:
    number = _check_number(key, value)
    if not 0.0 <= number <= 1.0:  # also rejects NaN
        raise ConfigError(f"{key} must be in [0, 1] but got {value!r}.")
    return number


def _check_breakpoints(b1: object, b2: object, prefix: str = "") -> tuple[float, float]:
    k1, k2 = f"{prefix}alpha_lr_b1", f"{prefix}alpha_lr_b2"
    first = _check_unit(k1, b1)
    second = _check_unit(k2, b2)
    if first > second:
        raise ConfigError(f"{k1} must be <= {k2} but got {k1}={b1!r}, {k2}={b2!r}.")
    return first, second


def _check_multiplier(key: str, value: object) -> float:
    number = _check_number(key, value)
    if not (number >= 0.0 and math.isfinite(number)):
        raise ConfigError(f"{key} must be >= 0 and finite but got {value!r}.")
    return number


def _check_steepness(value: object) -> float:
    number = _check_number("mix_steepness", value)
    if not (number > 0.0 and math.isfinite(number)):
        raise ConfigError(f"mix_steepness must be > 0 and finite but got {value!r}.")
    return number


def _check_mix_params(form: object, steepness: object, constant: object, switch: object) -> str:
    checked = _check_choice("mix_form", form, MIX_FORMS)
    _check_steepness(steepness)
    _check_unit("mix_constant", constant)
    _check_unit("mix_switch", switch)
    return checked


# ---------------------------------------------------------------------------------------------
# mixing ratio μ(t)


def _sigmoid_decay(x: float) -> float:
    """1 / (1 + e^x) without overflow for large |x|."""
    if x >= 0.0:
        e = math.exp(-x)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(x))


def mixing_ratio(
    form: str,
    t: float,
    *,
    steepness: float = 10.0,
    constant: float = 0.5,
    switch: float = 0.5,
) -> float:
    """BBN mixing ratio μ(t): the weight of the conventional branch at progress ``t``.

    ``parabolic`` 1 − t² (BBN's default); ``linear`` 1 − t; ``cosine`` (1 + cos πt)/2;
    ``sigmoid`` 1/(1 + e^{k(t − ½)}) with k = ``steepness`` (it reaches neither 1 at t = 0
    nor 0 at t = 1); ``step`` 1 for t < ``switch`` and 0 from ``switch`` on; ``constant``
    ``constant``; ``parabolic_increment`` t² (also tried in BBN's code).

    Args:
        form: one of ``MIX_FORMS``.
        t: training progress, the fraction of the epoch budget done, in [0, 1].
        steepness: k of the ``sigmoid`` form, > 0.
        constant: value of the ``constant`` form, in [0, 1].
        switch: progress at which the ``step`` form drops from 1 to 0, in [0, 1].

    Returns:
        μ(t) in [0, 1].

    Raises:
        ConfigError: an unknown form or a parameter out of range (every parameter is
            checked, whichever form uses it).

    Example:
        >>> mixing_ratio("parabolic", 0.5)
        0.75
    """
    form = _check_mix_params(form, steepness, constant, switch)
    t = _check_unit("t", t)
    if form == "parabolic":
        return 1.0 - t * t
    if form == "linear":
        return 1.0 - t
    if form == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if form == "sigmoid":
        return _sigmoid_decay(steepness * (t - 0.5))
    if form == "step":
        return 1.0 if t < switch else 0.0
    if form == "constant":
        return float(constant)
    return t * t  # parabolic_increment


def is_symmetric(
    form: str,
    *,
    steepness: float = 10.0,
    constant: float = 0.5,
    switch: float = 0.5,
) -> bool:
    """Whether μ(t) + μ(1 − t) = 1 for all t, the property HLS asks of the mixing form.

    True for ``linear``, ``cosine``, ``sigmoid`` (any steepness), ``constant`` with c = ½ and
    ``step`` with switch = ½. The step is symmetric everywhere except at t = ½ itself, where
    μ(½) + μ(½) = 0 + 0 = 0 (a single point, measure zero); we still call it symmetric.
    ``parabolic`` and ``parabolic_increment`` are not symmetric.

    Args:
        form: one of ``MIX_FORMS``.
        steepness: k of the ``sigmoid`` form (any valid value keeps it symmetric).
        constant: value of the ``constant`` form.
        switch: switch point of the ``step`` form.

    Example:
        >>> is_symmetric("cosine"), is_symmetric("parabolic")
        (True, False)
    """
    form = _check_mix_params(form, steepness, constant, switch)
    if form in ("linear", "cosine", "sigmoid"):
        return True
    if form == "step":
        return switch == 0.5
    if form == "constant":
        return constant == 0.5
    return False


# ---------------------------------------------------------------------------------------------
# α learning-rate shape


def _cosine_ramp(fraction: float, floor: float) -> float:
    """1 at fraction 0, ``floor`` at fraction 1, half a cosine in between."""
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * fraction))


def alpha_lr_shape(
    shape: str,
    t: float,
    *,
    b1: float = 0.5,
    b2: float = 1.0,
    floor: float = 0.1,
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

    When b1 = b2 the ramped shapes (``linear``, ``cosine``, ``exponential``) become a step
    at b1; every 0 ≤ b1 ≤ b2 ≤ 1 is valid.

    Args:
        shape: one of ``ALPHA_LR_SHAPES``.
        t: training progress in [0, 1].
        b1: first breakpoint, a fraction of the epoch budget in [0, 1].
        b2: second breakpoint, in [b1, 1].
        floor: the value the decaying shapes reach, in [0, 1].

    Returns:
        The multiplier, in [floor, 1] for every shape except ``warmup_hold_decay``, which
        starts its warm-up at 0.

    Raises:
        ConfigError: unknown shape, breakpoints out of order or out of [0, 1], or floor
            outside [0, 1].

    Example:
        >>> alpha_lr_shape("linear", 0.75, b1=0.5, b2=1.0, floor=0.0)
        0.5
    """
    shape = _check_choice("alpha_lr_shape", shape, ALPHA_LR_SHAPES)
    b1, b2 = _check_breakpoints(b1, b2)
    floor = _check_unit("alpha_lr_floor", floor)
    t = _check_unit("t", t)

    if shape == "constant":
        return 1.0
    if shape == "warmup_hold_decay":
        if t < b1:
            return t / b1  # b1 > 0 here, since t >= 0
        if t <= b2:  # covers b2 = 1: no decay
            return 1.0
        return _cosine_ramp((t - b2) / (1.0 - b2), floor)
    if t < b1:
        return 1.0
    if shape == "step" or t >= b2:
        # t >= b2 also covers b1 == b2: the ramp collapses into a step at b1.
        return floor
    fraction = (t - b1) / (b2 - b1)  # b1 <= t < b2, so b2 > b1
    if shape == "linear":
        return 1.0 - (1.0 - floor) * fraction
    if shape == "cosine":
        return _cosine_ramp(fraction, floor)
    # exponential; Python's float power already gives 0.0**0 = 1 and 0.0**x = 0 for x > 0.
    return floor**fraction


# ---------------------------------------------------------------------------------------------
# coupling of α groups to μ(t)


def group_coupling(coupling: str, group: str, mu: float) -> float:
    """Factor tying the learning rate of α group ``group`` to the mixing ratio μ.

    - ``mixing``: ``head_conventional`` × μ, ``head_rebalancing`` × (1 − μ), backbone × 1,
      so each head's α moves at the pace of the gradient share its branch receives.
    - ``none``: every group × 1.
    - ``backbone_max`` (our choice): heads as in ``mixing``, backbone groups × max(μ, 1 − μ),
      i.e. the backbone follows whichever branch currently dominates the loss.

    Args:
        coupling: one of ``COUPLINGS``.
        group: one of ``ALPHA_GROUPS``.
        mu: the mixing ratio μ(t), in [0, 1].

    Example:
        >>> group_coupling("mixing", "head_rebalancing", 0.25)
        0.75
    """
    coupling = _check_choice("coupling", coupling, COUPLINGS)
    group = _check_choice("alpha group", group, ALPHA_GROUPS)
    mu = _check_unit("mu", mu)
    if coupling == "none":
        return 1.0
    if group == "head_conventional":
        return mu
    if group == "head_rebalancing":
        return 1.0 - mu
    if coupling == "backbone_max":
        return max(mu, 1.0 - mu)
    return 1.0


# ---------------------------------------------------------------------------------------------
# the whole schedule


@dataclass(frozen=True)
class HLSSchedule:
    """Heterogeneous α learning rates:
    lr_g(t) = lr_α · m_g · shape_g(t) · coupling_g(μ(t)) for each α group g.

    Field names match the study keys; every field is validated at construction.

    Each group's shape (with its breakpoints and floor) comes from the most specific level
    that sets a shape: the group's own ``<group>_alpha_lr_shape``, else its family's
    (``backbone_alpha_lr_shape`` for the two backbone groups, ``head_alpha_lr_shape`` for
    the two heads), else the shared ``alpha_lr_shape``. A level without a shape (None) is
    tied to the next one, and its breakpoints and floor have no effect; with every level
    unset all four groups share one shape (the single-shape schedule). The multiplier is
    m_g = ``<family>_alpha_lr_mult`` · ``<group>_alpha_lr_mult``.

    Args:
        alpha_lr_shape: the shared shape, one of ``ALPHA_LR_SHAPES``.
        alpha_lr_b1: first breakpoint of the shape, fraction of the epoch budget.
        alpha_lr_b2: second breakpoint, ``alpha_lr_b1`` ≤ ``alpha_lr_b2`` ≤ 1.
        alpha_lr_floor: the value the decaying shapes reach, in [0, 1].
        coupling: one of ``COUPLINGS``.
        mix_form: one of ``MIX_FORMS``.
        mix_steepness: k of the ``sigmoid`` form.
        mix_constant: c of the ``constant`` form.
        mix_switch: switch point of the ``step`` form.
        <level>_alpha_lr_shape, _b1, _b2, _floor: the same for each level in
            ``GROUP_LEVELS`` (shape None: tied to the next level).
        <level>_alpha_lr_mult: base-rate multiplier of the level, >= 0.

    Example:
        >>> schedule = HLSSchedule(mix_form="linear")
        >>> schedule.alpha_lrs(3e-4, 0.25)["head_conventional"]
        0.000225
    """

    alpha_lr_shape: str = "constant"
    alpha_lr_b1: float = 0.5
    alpha_lr_b2: float = 1.0
    alpha_lr_floor: float = 0.1
    coupling: str = "mixing"
    mix_form: str = "parabolic"
    mix_steepness: float = 10.0
    mix_constant: float = 0.5
    mix_switch: float = 0.5
    backbone_alpha_lr_shape: str | None = None
    backbone_alpha_lr_b1: float = 0.5
    backbone_alpha_lr_b2: float = 1.0
    backbone_alpha_lr_floor: float = 0.1
    backbone_alpha_lr_mult: float = 1.0
    head_alpha_lr_shape: str | None = None
    head_alpha_lr_b1: float = 0.5
    head_alpha_lr_b2: float = 1.0
    head_alpha_lr_floor: float = 0.1
    head_alpha_lr_mult: float = 1.0
    backbone_normal_alpha_lr_shape: str | None = None
    backbone_normal_alpha_lr_b1: float = 0.5
    backbone_normal_alpha_lr_b2: float = 1.0
    backbone_normal_alpha_lr_floor: float = 0.1
    backbone_normal_alpha_lr_mult: float = 1.0
    backbone_reduce_alpha_lr_shape: str | None = None
    backbone_reduce_alpha_lr_b1: float = 0.5
    backbone_reduce_alpha_lr_b2: float = 1.0
    backbone_reduce_alpha_lr_floor: float = 0.1
    backbone_reduce_alpha_lr_mult: float = 1.0
    head_conventional_alpha_lr_shape: str | None = None
    head_conventional_alpha_lr_b1: float = 0.5
    head_conventional_alpha_lr_b2: float = 1.0
    head_conventional_alpha_lr_floor: float = 0.1
    head_conventional_alpha_lr_mult: float = 1.0
    head_rebalancing_alpha_lr_shape: str | None = None
    head_rebalancing_alpha_lr_b1: float = 0.5
    head_rebalancing_alpha_lr_b2: float = 1.0
    head_rebalancing_alpha_lr_floor: float = 0.1
    head_rebalancing_alpha_lr_mult: float = 1.0

    def __post_init__(self) -> None:
        _check_choice("alpha_lr_shape", self.alpha_lr_shape, ALPHA_LR_SHAPES)
        _check_breakpoints(self.alpha_lr_b1, self.alpha_lr_b2)
        _check_unit("alpha_lr_floor", self.alpha_lr_floor)
        for level in GROUP_LEVELS:
            shape = getattr(self, f"{level}_alpha_lr_shape")
            if shape is not None:
                _check_choice(f"{level}_alpha_lr_shape", shape, ALPHA_LR_SHAPES)
            _check_breakpoints(
                getattr(self, f"{level}_alpha_lr_b1"),
                getattr(self, f"{level}_alpha_lr_b2"),
                prefix=f"{level}_",
            )
            _check_unit(f"{level}_alpha_lr_floor", getattr(self, f"{level}_alpha_lr_floor"))
            _check_multiplier(f"{level}_alpha_lr_mult", getattr(self, f"{level}_alpha_lr_mult"))
        _check_choice("coupling", self.coupling, COUPLINGS)
        _check_mix_params(self.mix_form, self.mix_steepness, self.mix_constant, self.mix_switch)

    @property
    def is_symmetric(self) -> bool:
        """Whether the mixing form satisfies μ(t) + μ(1 − t) = 1 (see ``is_symmetric``)."""
        return is_symmetric(
            self.mix_form,
            steepness=self.mix_steepness,
            constant=self.mix_constant,
            switch=self.mix_switch,
        )

    def mixing_ratio(self, t: float) -> float:
        """μ(t) of this schedule's mixing form.

        Args:
            t: training progress in [0, 1].
        """
        return mixing_ratio(
            self.mix_form,
            t,
            steepness=self.mix_steepness,
            constant=self.mix_constant,
            switch=self.mix_switch,
        )

    def level(self, group: str) -> str:
        """The level whose shape ``group`` follows: the group, its family, or "" (shared)."""
        group = _check_choice("alpha group", group, ALPHA_GROUPS)
        for level in (group, FAMILIES[group]):
            if getattr(self, f"{level}_alpha_lr_shape") is not None:
                return level
        return ""

    def shape(self, t: float, group: str | None = None) -> float:
        """The α learning-rate multiplier shape_g(t), before multiplier and coupling.

        Args:
            t: training progress in [0, 1].
            group: the α group (None: the shared shape).
        """
        prefix = "" if group is None else schedule_level(self, group)
        return alpha_lr_shape(
            getattr(self, f"{prefix}alpha_lr_shape"),
            t,
            b1=getattr(self, f"{prefix}alpha_lr_b1"),
            b2=getattr(self, f"{prefix}alpha_lr_b2"),
            floor=getattr(self, f"{prefix}alpha_lr_floor"),
        )

    def multiplier(self, group: str) -> float:
        """m_g: the family's multiplier times the group's own."""
        group = _check_choice("alpha group", group, ALPHA_GROUPS)
        family = FAMILIES[group]
        return getattr(self, f"{family}_alpha_lr_mult") * getattr(self, f"{group}_alpha_lr_mult")

    def alpha_lrs(
        self, alpha_lr: float, t: float, groups: Sequence[str] = ALPHA_GROUPS
    ) -> dict[str, float]:
        """Learning rate of each α group at progress ``t``.

        Args:
            alpha_lr: the base α learning rate lr_α (Adam's lr), >= 0.
            t: training progress in [0, 1].
            groups: the α groups present (a plain DARTS supernet has only the backbone ones).

        Returns:
            ``{group: lr_α · m_g · shape_g(t) · coupling_g(μ(t))}`` in the order of
            ``groups``.
        """
        base = _check_number("alpha_lr", alpha_lr)
        if not (base >= 0.0 and math.isfinite(base)):
            raise ConfigError(f"alpha_lr must be >= 0 and finite but got {alpha_lr!r}.")
        mu = self.mixing_ratio(t)
        return {
            group: base
            * self.multiplier(group)
            * self.shape(t, group)
            * group_coupling(self.coupling, group, mu)
            for group in groups
        }

    def cumulative_rates(self, points: int = 2001) -> dict[str, float]:
        """Each group's mean relative α rate over the run, ∫₀¹ lr_g(t)/lr_α dt
        (trapezoid rule on ``points`` samples): how far each group's α may move in total.
        """
        curves = self.curves(1.0, points)
        step = 1.0 / (points - 1)
        return {
            group: step * (sum(curves[group]) - 0.5 * (curves[group][0] + curves[group][-1]))
            for group in ALPHA_GROUPS
        }

    def curves(self, alpha_lr: float, points: int = 101) -> dict[str, list[float]]:
        """The schedule sampled on an even grid of progress values, for plots.

        Args:
            alpha_lr: the base α learning rate lr_α.
            points: number of samples from t = 0 to t = 1 inclusive, >= 2.

        Returns:
            ``"t"``, ``"mixing_ratio"`` and one list per name in ``ALPHA_GROUPS``.
        """
        if isinstance(points, bool) or not isinstance(points, int) or points < 2:
            raise ConfigError(f"points must be an integer >= 2 but got {points!r}.")
        ts = [i / (points - 1) for i in range(points)]
        result: dict[str, list[float]] = {"t": ts, "mixing_ratio": []}
        result.update({group: [] for group in ALPHA_GROUPS})
        for t in ts:
            result["mixing_ratio"].append(self.mixing_ratio(t))
            for group, lr in self.alpha_lrs(alpha_lr, t).items():
                result[group].append(lr)
        return result


def schedule_level(schedule: HLSSchedule, group: str) -> str:
    """The key prefix of the level whose shape ``group`` follows ("" for the shared one):
    ``"head_conventional_"``, ``"head_"`` or ``""`` for the conventional head."""
    level = schedule.level(group)
    return f"{level}_" if level else ""


# The paper's reading (SPEC §4, our reading of the abstract and figure captions): the backbone
# groups' α rate decays with the epoch (cosine from the start to 0.1), each head follows only
# its branch weight (conventional × μ, re-balancing × (1 − μ), no shared decay), and μ is
# symmetric (cosine), so both heads get the same cumulative α rate.
PAPER_READING: dict[str, object] = {
    "backbone_alpha_lr_shape": "cosine",
    "backbone_alpha_lr_b1": 0.0,
    "backbone_alpha_lr_b2": 1.0,
    "backbone_alpha_lr_floor": 0.1,
    "head_alpha_lr_shape": "constant",
    "coupling": "mixing",
    "mix_form": "cosine",
}


def default_schedule(method: str) -> HLSSchedule:
    """The schedule a method gets when none is given (SPEC §4, §6).

    ``hls``: the paper-reading preset ``PAPER_READING``; ``bbn_darts`` ("BBN simply combined
    with DARTS"): BBN's parabolic μ with one α learning rate (``HLSSchedule()``); the plain
    methods ignore the schedule and get ``HLSSchedule()`` as well.
    """
    if method == "hls":
        return HLSSchedule(**PAPER_READING)  # type: ignore[arg-type]
    return HLSSchedule()


def alpha_learning_rates(
    config: SearchConfig, progress: float, groups: tuple[str, ...]
) -> dict[str, float]:
    """Each α group's learning rate at training progress t (SPEC §4, §6).

    `hls` follows the schedule (shape × coupling); every other method uses one constant
    α learning rate for all groups.
    """
    if config.method == "hls":
        return config.schedule.alpha_lrs(config.alpha_lr, progress, groups)
    return dict.fromkeys(groups, config.alpha_lr)
