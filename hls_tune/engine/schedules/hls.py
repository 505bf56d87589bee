"""Heterogeneous α learning rates (SPEC §4): per-level schedules, couplings to μ, the
paper-reading preset, and α-progress (the clock the α-LR schedule runs on)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from hls_tune.engine.checks import check_choice, check_number, check_unit
from hls_tune.engine.schedules.mixing import MixingRatio
from hls_tune.engine.schedules.shapes import LevelSchedule
from hls_tune.errors import ConfigError

if TYPE_CHECKING:
    from hls_tune.engine.settings import SearchConfig

__all__ = [
    "ALPHA_GROUPS",
    "COUPLINGS",
    "FAMILIES",
    "GROUP_LEVELS",
    "LEVELS",
    "PAPER_READING",
    "HLSSchedule",
    "alpha_learning_rates",
    "alpha_progress",
    "default_schedule",
    "group_coupling",
    "level_key",
    "mix_key",
]

ALPHA_GROUPS = ("backbone_normal", "backbone_reduce", "head_conventional", "head_rebalancing")
# The two families that tie groups: the backbone pair and the head pair.
FAMILIES = {
    "backbone_normal": "backbone",
    "backbone_reduce": "backbone",
    "head_conventional": "head",
    "head_rebalancing": "head",
}
# Levels that can carry their own α-LR shape, the families first; "shared" is the level
# every group falls back to.
GROUP_LEVELS = ("backbone", "head", *ALPHA_GROUPS)
LEVELS = ("shared", *GROUP_LEVELS)
COUPLINGS = ("mixing", "none", "backbone_max")


def level_key(level: str, param: str) -> str:
    """The study key of a level's parameter, the name users see for it everywhere:
    ``alpha_lr_shape`` (shared), ``head_alpha_lr_b1``, ``backbone_normal_alpha_lr_mult``."""
    prefix = "" if level == "shared" else f"{level}_"
    return f"{prefix}alpha_lr_{param}"


def mix_key(param: str) -> str:
    """The study key of a `MixingRatio` field: ``mix_form``, ``mix_steepness``, ..."""
    return f"mix_{param}"


def group_coupling(coupling: str, group: str, mu: float) -> float:
    """Factor tying the learning rate of α group ``group`` to the mixing ratio μ.

    - ``mixing``: ``head_conventional`` × μ, ``head_rebalancing`` × (1 − μ), backbone × 1,
      so each head's α moves at the pace of the gradient share its branch receives.
    - ``none``: every group × 1.
    - ``backbone_max`` (our choice): heads as in ``mixing``, backbone groups × max(μ, 1 − μ),
      i.e. the backbone follows whichever branch currently dominates the loss.

    Example:
        >>> group_coupling("mixing", "head_rebalancing", 0.25)
        0.75
    """
    coupling = check_choice("coupling", coupling, COUPLINGS)
    group = check_choice("alpha group", group, ALPHA_GROUPS)
    mu = check_unit("mu", mu)
    if coupling == "none":
        return 1.0
    if group == "head_conventional":
        return mu
    if group == "head_rebalancing":
        return 1.0 - mu
    return max(mu, 1.0 - mu) if coupling == "backbone_max" else 1.0


def _shared() -> LevelSchedule:
    return LevelSchedule("constant")


@dataclass(frozen=True)
class HLSSchedule:
    """Heterogeneous α learning rates:
    lr_g(t_α) = lr_α · m_g · shape_g(t_α) · coupling_g(μ(t_α)) for each α group g.

    The schedule runs on α-progress t_α (`alpha_progress`): 0 at the first epoch with α
    steps, 1 at the end of the run. Each group's shape (with its breakpoints and floor) is
    that of the most specific level with a shape: the group's own, else its family's
    (`backbone` for the two backbone groups, `head` for the two heads), else `shared`. With
    no group or family shape all four groups share one shape. The multiplier is
    m_g = family.mult · group.mult. Every field is validated at construction; messages name
    the study keys (``head_alpha_lr_b1``, ``mix_form``).

    Args:
        shared: the shared level (it must have a shape; its `mult` stays 1: `alpha_lr` is
            its rate).
        backbone, head: the family levels.
        backbone_normal, backbone_reduce, head_conventional, head_rebalancing: the groups.
        coupling: one of ``COUPLINGS``.
        mixing: the μ(t) form the couplings follow.

    Example:
        >>> schedule = HLSSchedule(mixing=MixingRatio("linear"))
        >>> schedule.alpha_lrs(3e-4, 0.25)["head_conventional"]
        0.000225
    """

    shared: LevelSchedule = field(default_factory=_shared)
    backbone: LevelSchedule = field(default_factory=LevelSchedule)
    head: LevelSchedule = field(default_factory=LevelSchedule)
    backbone_normal: LevelSchedule = field(default_factory=LevelSchedule)
    backbone_reduce: LevelSchedule = field(default_factory=LevelSchedule)
    head_conventional: LevelSchedule = field(default_factory=LevelSchedule)
    head_rebalancing: LevelSchedule = field(default_factory=LevelSchedule)
    coupling: str = "mixing"
    mixing: MixingRatio = field(default_factory=MixingRatio)

    def __post_init__(self) -> None:
        for name in LEVELS:
            level = getattr(self, name)
            if not isinstance(level, LevelSchedule):
                raise ConfigError(f"schedule.{name} must be a LevelSchedule but got {level!r}.")
            level.check(lambda param, name=name: level_key(name, param))
        if self.shared.shape is None:
            raise ConfigError("alpha_lr_shape must be set: the shared level has no level above.")
        if self.shared.mult != 1.0:
            raise ConfigError(
                f"the shared level has no multiplier (alpha_lr is its rate) but got "
                f"{self.shared.mult!r}; set backbone or head multipliers instead."
            )
        check_choice("coupling", self.coupling, COUPLINGS)
        if not isinstance(self.mixing, MixingRatio):
            raise ConfigError(f"schedule.mixing must be a MixingRatio but got {self.mixing!r}.")

    def levels(self) -> dict[str, LevelSchedule]:
        """Every level's record, by name (``LEVELS`` order)."""
        return {name: getattr(self, name) for name in LEVELS}

    def level(self, group: str) -> str:
        """The level whose shape ``group`` follows: the group, its family, or "shared"."""
        group = check_choice("alpha group", group, ALPHA_GROUPS)
        for name in (group, FAMILIES[group]):
            if getattr(self, name).shape is not None:
                return name
        return "shared"

    def follows(self, group: str) -> LevelSchedule:
        """The record of the level whose shape ``group`` follows."""
        return getattr(self, self.level(group))

    def shape(self, t: float, group: str | None = None) -> float:
        """shape_g(t), before multiplier and coupling (``group`` None: the shared shape)."""
        return (self.shared if group is None else self.follows(group)).value(t)

    def multiplier(self, group: str) -> float:
        """m_g: the family's multiplier times the group's own."""
        group = check_choice("alpha group", group, ALPHA_GROUPS)
        return getattr(self, FAMILIES[group]).mult * getattr(self, group).mult

    def alpha_lrs(
        self, alpha_lr: float, t: float, groups: Sequence[str] = ALPHA_GROUPS
    ) -> dict[str, float]:
        """Learning rate of each α group at α-progress ``t``.

        Args:
            alpha_lr: the base α learning rate lr_α (Adam's lr), >= 0.
            t: α-progress in [0, 1] (`alpha_progress`).
            groups: the α groups present (a plain DARTS supernet has only the backbone ones).
        """
        base = check_number("alpha_lr", alpha_lr)
        if not (base >= 0.0 and math.isfinite(base)):
            raise ConfigError(f"alpha_lr must be >= 0 and finite but got {alpha_lr!r}.")
        mu = self.mixing(t)
        return {
            group: base
            * self.multiplier(group)
            * self.shape(t, group)
            * group_coupling(self.coupling, group, mu)
            for group in groups
        }

    def cumulative_rates(self, points: int = 2001) -> dict[str, float]:
        """Each group's mean relative α rate over the α-active epochs, ∫₀¹ lr_g(t)/lr_α dt
        (trapezoid rule on ``points`` samples): how far each group's α may move in total."""
        curves = self.curves(1.0, points)
        step = 1.0 / (points - 1)
        return {
            group: step * (sum(curves[group]) - 0.5 * (curves[group][0] + curves[group][-1]))
            for group in ALPHA_GROUPS
        }

    def curves(self, alpha_lr: float, points: int = 101) -> dict[str, list[float]]:
        """The schedule sampled on an even grid of α-progress values, for plots:
        ``"t"``, ``"mixing_ratio"`` and one list per name in ``ALPHA_GROUPS``."""
        if isinstance(points, bool) or not isinstance(points, int) or points < 2:
            raise ConfigError(f"points must be an integer >= 2 but got {points!r}.")
        ts = [i / (points - 1) for i in range(points)]
        result: dict[str, list[float]] = {"t": ts, "mixing_ratio": [self.mixing(t) for t in ts]}
        for group in ALPHA_GROUPS:
            result[group] = []
        for t in ts:
            for group, lr in self.alpha_lrs(alpha_lr, t).items():
                result[group].append(lr)
        return result


SCHEDULE_FIELDS = tuple(f.name for f in fields(HLSSchedule))

# The paper's reading (SPEC §4, our reading of the abstract and figure captions): the backbone
# groups' α rate decays (cosine from the start to 0.1), each head follows only its branch
# weight (conventional × μ, re-balancing × (1 − μ), no shared decay), and μ is symmetric
# (cosine), so both heads get the same cumulative α rate over the α-active epochs.
PAPER_READING = HLSSchedule(
    backbone=LevelSchedule("cosine", b1=0.0, b2=1.0, floor=0.1),
    head=LevelSchedule("constant"),
    coupling="mixing",
    mixing=MixingRatio("cosine"),
)


def default_schedule(method: str) -> HLSSchedule:
    """The schedule a method gets when none is given (SPEC §4, §6): ``hls`` the
    paper-reading preset; ``bbn_darts`` ("BBN simply combined with DARTS") BBN's parabolic
    μ with one α learning rate (``HLSSchedule()``), as the plain methods (which ignore it)."""
    return PAPER_READING if method == "hls" else HLSSchedule()


def alpha_progress(epoch: int, step: int, steps: int, epochs: int, start: int) -> float | None:
    """α-progress t_α of step `step` (0-based, of `steps`) of `epoch`, with α updated from
    epoch `start` of `epochs` on: ((epoch − start)·steps + step) / ((epochs − start)·steps),
    or None before `start` (α frozen). Every α-LR shape and the couplings' μ run on it, so an
    α warm-up shifts the whole α schedule instead of cutting its start off (SPEC §4)."""
    if epoch < start:
        return None
    return ((epoch - start) * steps + step) / ((epochs - start) * steps)


def alpha_learning_rates(
    config: SearchConfig, t_alpha: float, groups: tuple[str, ...]
) -> dict[str, float]:
    """Each α group's learning rate at α-progress `t_alpha` (SPEC §4, §6): `hls` follows the
    schedule; every other method uses one constant α learning rate for all groups."""
    if config.method == "hls":
        assert config.schedule is not None
        return config.schedule.alpha_lrs(config.alpha_lr, t_alpha, groups)
    return dict.fromkeys(groups, config.alpha_lr)
