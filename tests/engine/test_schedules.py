"""Tests for hls_tune.engine.schedules: μ(t) forms, α-LR shapes, couplings and HLSSchedule."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hls_tune.engine.schedules import (
    ALPHA_GROUPS,
    ALPHA_LR_SHAPES,
    COUPLINGS,
    MIX_FORMS,
    HLSSchedule,
    LevelSchedule,
    MixingRatio,
    alpha_lr_shape,
    default_schedule,
    group_coupling,
    is_symmetric,
    mixing_ratio,
)
from hls_tune.engine.settings import SearchConfig
from hls_tune.errors import ConfigError

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
steepness = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False)
GRID = [i / 200 for i in range(201)]


@st.composite
def breakpoints(draw: st.DrawFn) -> tuple[float, float]:
    first, second = draw(unit), draw(unit)
    return min(first, second), max(first, second)


# --- mixing ratio μ(t) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "start", "middle", "end"),
    [
        ("parabolic", 1.0, 0.75, 0.0),
        ("linear", 1.0, 0.5, 0.0),
        ("cosine", 1.0, 0.5, 0.0),
        ("sigmoid", 1 / (1 + math.exp(-5)), 0.5, 1 / (1 + math.exp(5))),
        ("step", 1.0, 0.0, 0.0),
        ("constant", 0.5, 0.5, 0.5),
        ("parabolic_increment", 0.0, 0.25, 1.0),
    ],
)
def test_mixing_forms_at_start_middle_and_end(
    form: str, start: float, middle: float, end: float
) -> None:
    assert mixing_ratio(form, 0.0) == pytest.approx(start)
    assert mixing_ratio(form, 0.5) == pytest.approx(middle)
    assert mixing_ratio(form, 1.0) == pytest.approx(end, abs=1e-12)


def test_parabolic_mixing_starts_at_one_and_ends_at_zero_following_one_minus_t_squared() -> None:
    assert mixing_ratio("parabolic", 0.0) == 1.0
    assert mixing_ratio("parabolic", 0.3) == pytest.approx(1 - 0.09)
    assert mixing_ratio("parabolic", 1.0) == 0.0


def test_cosine_mixing_is_half_a_cosine() -> None:
    assert mixing_ratio("cosine", 0.25) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)


def test_step_mixing_drops_exactly_at_the_switch() -> None:
    assert mixing_ratio("step", 0.2999, switch=0.3) == 1.0
    assert mixing_ratio("step", 0.3, switch=0.3) == 0.0
    assert mixing_ratio("step", 0.0, switch=0.0) == 0.0
    assert mixing_ratio("step", 0.9999, switch=1.0) == 1.0
    assert mixing_ratio("step", 1.0, switch=1.0) == 0.0


def test_constant_mixing_returns_its_constant() -> None:
    assert mixing_ratio("constant", 0.7, constant=0.2) == 0.2


def test_sigmoid_steepness_controls_sharpness() -> None:
    soft = mixing_ratio("sigmoid", 0.25, steepness=1.0)
    sharp = mixing_ratio("sigmoid", 0.25, steepness=50.0)
    assert 0.5 < soft < sharp < 1.0
    assert soft == pytest.approx(1 / (1 + math.exp(-0.25)))


def test_sigmoid_with_huge_steepness_does_not_overflow() -> None:
    assert mixing_ratio("sigmoid", 0.0, steepness=1e6) == 1.0
    assert mixing_ratio("sigmoid", 1.0, steepness=1e6) == 0.0


@given(form=st.sampled_from(tuple(MIX_FORMS)), t=unit, k=steepness, c=unit, b=unit)
def test_every_mixing_form_stays_in_unit_interval(
    form: str, t: float, k: float, c: float, b: float
) -> None:
    assert 0.0 <= mixing_ratio(form, t, steepness=k, constant=c, switch=b) <= 1.0


@given(t=unit, k=steepness)
def test_forms_reported_symmetric_satisfy_mu_t_plus_mu_one_minus_t_equals_one(
    t: float, k: float
) -> None:
    for form, params in [
        ("linear", {}),
        ("cosine", {}),
        ("sigmoid", {"steepness": k}),
        ("constant", {"constant": 0.5}),
        ("step", {"switch": 0.5}),
    ]:
        assert is_symmetric(form, **params)
        if form == "step" and t == 0.5:
            continue  # the documented measure-zero exception
        total = mixing_ratio(form, t, **params) + mixing_ratio(form, 1 - t, **params)
        assert total == pytest.approx(1.0, abs=1e-9), form


def test_symmetric_step_breaks_symmetry_only_at_one_half() -> None:
    assert mixing_ratio("step", 0.5) + mixing_ratio("step", 0.5) == 0.0


@pytest.mark.parametrize(
    ("form", "params"),
    [
        ("parabolic", {}),
        ("parabolic_increment", {}),
        ("constant", {"constant": 0.4}),
        ("step", {"switch": 0.3}),
    ],
)
def test_forms_reported_asymmetric_violate_the_identity_somewhere(
    form: str, params: dict[str, float]
) -> None:
    assert not is_symmetric(form, **params)
    deviations = [
        abs(mixing_ratio(form, t, **params) + mixing_ratio(form, 1 - t, **params) - 1) for t in GRID
    ]
    assert max(deviations) > 0.1


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"form": "parabolc", "t": 0.1}, ["mix_form", "'parabolc'", "did you mean 'parabolic'"]),
        ({"form": "linear", "t": 1.5}, ["t must be in [0, 1]", "1.5"]),
        ({"form": "linear", "t": float("nan")}, ["t must be a number", "nan"]),
        ({"form": "constant", "t": 0.1, "constant": 1.5}, ["mix_constant", "[0, 1]", "1.5"]),
        ({"form": "step", "t": 0.1, "switch": -0.1}, ["mix_switch", "[0, 1]", "-0.1"]),
        ({"form": "sigmoid", "t": 0.1, "steepness": 0.0}, ["mix_steepness", "> 0", "0.0"]),
        ({"form": "sigmoid", "t": 0.1, "steepness": math.inf}, ["mix_steepness", "inf"]),
    ],
)
def test_mixing_ratio_rejects_bad_input_naming_key_and_value(
    kwargs: dict[str, object], fragments: list[str]
) -> None:
    form, t = kwargs.pop("form"), kwargs.pop("t")
    with pytest.raises(ConfigError) as info:
        mixing_ratio(form, t, **kwargs)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(info.value)


# --- α learning-rate shape -------------------------------------------------------------------


def test_constant_shape_is_one_everywhere() -> None:
    assert {alpha_lr_shape("constant", t, b1=0.2, b2=0.4, floor=0.0) for t in GRID} == {1.0}


def test_step_shape_drops_to_floor_at_b1() -> None:
    assert alpha_lr_shape("step", 0.2999, b1=0.3, floor=0.1) == 1.0
    assert alpha_lr_shape("step", 0.3, b1=0.3, floor=0.1) == 0.1
    assert alpha_lr_shape("step", 1.0, b1=0.3, floor=0.1) == 0.1


@pytest.mark.parametrize("shape", ["linear", "cosine", "exponential"])
def test_ramped_shapes_are_one_until_b1_and_floor_from_b2(shape: str) -> None:
    kwargs = {"b1": 0.2, "b2": 0.6, "floor": 0.25}
    assert alpha_lr_shape(shape, 0.0, **kwargs) == 1.0
    assert alpha_lr_shape(shape, 0.2, **kwargs) == pytest.approx(1.0)
    assert alpha_lr_shape(shape, 0.6, **kwargs) == pytest.approx(0.25)
    assert alpha_lr_shape(shape, 0.9, **kwargs) == 0.25


def test_ramped_shapes_have_their_own_midpoint() -> None:
    kwargs = {"b1": 0.2, "b2": 0.6, "floor": 0.25}
    assert alpha_lr_shape("linear", 0.4, **kwargs) == pytest.approx(0.625)
    assert alpha_lr_shape("cosine", 0.4, **kwargs) == pytest.approx(0.625)  # cos(π/2) = 0
    assert alpha_lr_shape("cosine", 0.3, **kwargs) == pytest.approx(
        0.25 + 0.75 * (1 + math.cos(math.pi / 4)) / 2
    )
    assert alpha_lr_shape("exponential", 0.4, **kwargs) == pytest.approx(0.5)  # √0.25


def test_exponential_shape_with_zero_floor_is_one_at_b1_and_zero_after() -> None:
    assert alpha_lr_shape("exponential", 0.5, b1=0.5, b2=1.0, floor=0.0) == 1.0
    assert alpha_lr_shape("exponential", 0.5001, b1=0.5, b2=1.0, floor=0.0) == 0.0
    assert alpha_lr_shape("exponential", 1.0, b1=0.5, b2=1.0, floor=0.0) == 0.0


@pytest.mark.parametrize("shape", ["linear", "cosine", "exponential"])
def test_ramped_shapes_degenerate_to_a_step_when_breakpoints_coincide(shape: str) -> None:
    assert alpha_lr_shape(shape, 0.3999, b1=0.4, b2=0.4, floor=0.1) == 1.0
    assert alpha_lr_shape(shape, 0.4, b1=0.4, b2=0.4, floor=0.1) == 0.1
    assert alpha_lr_shape(shape, 0.0, b1=0.0, b2=0.0, floor=0.1) == 0.1
    assert alpha_lr_shape(shape, 0.9999, b1=1.0, b2=1.0, floor=0.1) == 1.0


def test_warmup_hold_decay_ramps_from_zero_holds_then_decays_to_floor() -> None:
    kwargs = {"b1": 0.2, "b2": 0.6, "floor": 0.1}
    assert alpha_lr_shape("warmup_hold_decay", 0.0, **kwargs) == 0.0
    assert alpha_lr_shape("warmup_hold_decay", 0.1, **kwargs) == pytest.approx(0.5)
    assert alpha_lr_shape("warmup_hold_decay", 0.2, **kwargs) == 1.0
    assert alpha_lr_shape("warmup_hold_decay", 0.6, **kwargs) == 1.0
    assert alpha_lr_shape("warmup_hold_decay", 0.8, **kwargs) == pytest.approx(0.55)
    assert alpha_lr_shape("warmup_hold_decay", 1.0, **kwargs) == pytest.approx(0.1)


def test_warmup_hold_decay_without_warmup_or_decay_is_constant_one() -> None:
    values = {alpha_lr_shape("warmup_hold_decay", t, b1=0.0, b2=1.0, floor=0.1) for t in GRID}
    assert values == {1.0}


def test_warmup_hold_decay_with_equal_breakpoints_decays_right_after_warmup() -> None:
    kwargs = {"b1": 0.5, "b2": 0.5, "floor": 0.0}
    assert alpha_lr_shape("warmup_hold_decay", 0.25, **kwargs) == pytest.approx(0.5)
    assert alpha_lr_shape("warmup_hold_decay", 0.5, **kwargs) == 1.0
    assert alpha_lr_shape("warmup_hold_decay", 0.75, **kwargs) == pytest.approx(0.5)
    assert alpha_lr_shape("warmup_hold_decay", 1.0, **kwargs) == pytest.approx(0.0)


@given(shape=st.sampled_from(ALPHA_LR_SHAPES), t=unit, bps=breakpoints(), floor=unit)
def test_any_ordered_breakpoints_give_a_bounded_shape_without_raising(
    shape: str, t: float, bps: tuple[float, float], floor: float
) -> None:
    b1, b2 = bps
    value = alpha_lr_shape(shape, t, b1=b1, b2=b2, floor=floor)
    assert math.isfinite(value)
    if shape == "warmup_hold_decay" and t < b1:
        assert 0.0 <= value <= 1.0
    else:
        assert floor - 1e-12 <= value <= 1.0 + 1e-12


@given(shape=st.sampled_from(ALPHA_LR_SHAPES), bps=breakpoints(), floor=unit)
def test_shapes_never_increase_after_b1(shape: str, bps: tuple[float, float], floor: float) -> None:
    b1, b2 = bps
    after = [t for t in GRID if t >= b1]
    values = [alpha_lr_shape(shape, t, b1=b1, b2=b2, floor=floor) for t in after]
    assert all(later <= earlier + 1e-12 for earlier, later in itertools.pairwise(values))


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"b1": 0.7, "b2": 0.3}, ["alpha_lr_b1", "alpha_lr_b2", "0.7", "0.3"]),
        ({"b1": 1.5}, ["alpha_lr_b1 must be in [0, 1] but got 1.5."]),
        ({"b1": 0.1, "b2": -0.2}, ["alpha_lr_b2", "-0.2"]),
        ({"floor": 2.0}, ["alpha_lr_floor", "[0, 1]", "2.0"]),
        ({"b1": "half"}, ["alpha_lr_b1 must be a number", "'half'"]),
        ({"b1": True}, ["alpha_lr_b1 must be a number", "True"]),
    ],
)
def test_alpha_lr_shape_rejects_bad_parameters_naming_key_and_value(
    kwargs: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        alpha_lr_shape("linear", 0.5, **kwargs)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(info.value)


def test_unknown_shape_lists_the_allowed_shapes_and_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        alpha_lr_shape("cosin", 0.5)
    message = str(info.value)
    assert "alpha_lr_shape" in message
    assert "'cosin'" in message
    assert "warmup_hold_decay" in message
    assert "did you mean 'cosine'" in message


# --- couplings -------------------------------------------------------------------------------


def test_mixing_coupling_scales_heads_by_their_branch_share() -> None:
    assert group_coupling("mixing", "head_conventional", 0.3) == 0.3
    assert group_coupling("mixing", "head_rebalancing", 0.3) == pytest.approx(0.7)
    assert group_coupling("mixing", "backbone_normal", 0.3) == 1.0
    assert group_coupling("mixing", "backbone_reduce", 0.3) == 1.0


def test_none_coupling_leaves_every_group_at_one() -> None:
    assert {group_coupling("none", g, 0.3) for g in ALPHA_GROUPS} == {1.0}


def test_backbone_max_coupling_scales_backbone_by_the_dominant_share() -> None:
    assert group_coupling("backbone_max", "backbone_normal", 0.3) == pytest.approx(0.7)
    assert group_coupling("backbone_max", "backbone_reduce", 0.8) == pytest.approx(0.8)
    assert group_coupling("backbone_max", "head_conventional", 0.3) == 0.3
    assert group_coupling("backbone_max", "head_rebalancing", 0.3) == pytest.approx(0.7)


@given(coupling=st.sampled_from(COUPLINGS), group=st.sampled_from(ALPHA_GROUPS), mu=unit)
def test_couplings_stay_in_unit_interval(coupling: str, group: str, mu: float) -> None:
    assert 0.0 <= group_coupling(coupling, group, mu) <= 1.0


def test_coupling_rejects_unknown_names_and_bad_mu() -> None:
    with pytest.raises(ConfigError, match=r"coupling.*'mix'"):
        group_coupling("mix", "backbone_normal", 0.5)
    with pytest.raises(ConfigError, match="head_conventional"):
        group_coupling("mixing", "head_conv", 0.5)
    with pytest.raises(ConfigError, match=r"mu must be in \[0, 1\] but got 1.2"):
        group_coupling("mixing", "head_conventional", 1.2)


# --- HLSSchedule -----------------------------------------------------------------------------


@given(
    shape=st.sampled_from(ALPHA_LR_SHAPES),
    bps=breakpoints(),
    floor=unit,
    coupling=st.sampled_from(COUPLINGS),
    form=st.sampled_from(tuple(MIX_FORMS)),
    t=unit,
)
def test_alpha_lrs_are_base_times_shape_times_coupling(
    shape: str,
    bps: tuple[float, float],
    floor: float,
    coupling: str,
    form: str,
    t: float,
) -> None:
    schedule = HLSSchedule(
        shared=LevelSchedule(shape, b1=bps[0], b2=bps[1], floor=floor),
        coupling=coupling,
        mixing=MixingRatio(form),
    )
    lrs = schedule.alpha_lrs(3e-4, t)
    assert list(lrs) == list(ALPHA_GROUPS)
    mu = mixing_ratio(form, t)
    factor = alpha_lr_shape(shape, t, b1=bps[0], b2=bps[1], floor=floor)
    for group, lr in lrs.items():
        assert lr == pytest.approx(3e-4 * factor * group_coupling(coupling, group, mu))


def test_alpha_lrs_concrete_example() -> None:
    schedule = HLSSchedule(
        shared=LevelSchedule("linear", b1=0.0, b2=1.0, floor=0.0),
        coupling="mixing",
        mixing=MixingRatio("linear"),
    )
    lrs = schedule.alpha_lrs(1e-3, 0.25)  # shape 0.75, μ 0.75
    assert lrs["backbone_normal"] == pytest.approx(7.5e-4)
    assert lrs["backbone_reduce"] == pytest.approx(7.5e-4)
    assert lrs["head_conventional"] == pytest.approx(7.5e-4 * 0.75)
    assert lrs["head_rebalancing"] == pytest.approx(7.5e-4 * 0.25)


def test_alpha_lrs_for_a_subset_of_groups() -> None:
    lrs = HLSSchedule().alpha_lrs(1e-3, 0.5, groups=("backbone_normal", "backbone_reduce"))
    assert lrs == {"backbone_normal": 1e-3, "backbone_reduce": 1e-3}


def test_alpha_lrs_rejects_a_negative_base_rate() -> None:
    with pytest.raises(ConfigError, match=r"alpha_lr must be >= 0.*-0\.1"):
        HLSSchedule().alpha_lrs(-0.1, 0.5)


def test_schedule_methods_agree_with_module_functions() -> None:
    schedule = HLSSchedule(
        mixing=MixingRatio("sigmoid", steepness=4.0), shared=LevelSchedule("cosine")
    )
    assert schedule.mixing(0.3) == mixing_ratio("sigmoid", 0.3, steepness=4.0)
    assert schedule.shape(0.75) == alpha_lr_shape("cosine", 0.75, b1=0.5, b2=1.0, floor=0.1)
    assert schedule.mixing.is_symmetric
    assert not HLSSchedule().mixing.is_symmetric  # default parabolic, BBN's schedule


# Each case: the study key whose value is bad, the schedule's arguments that carry it (built
# inside the check: a MixingRatio validates its fields as it is made), and the message.
@pytest.mark.parametrize(
    ("field", "arguments", "fragment"),
    [
        (
            "alpha_lr_shape",
            lambda: {"shared": LevelSchedule("sigmoid")},
            "alpha_lr_shape must be one of",
        ),
        (
            "alpha_lr_b1",
            lambda: {"shared": LevelSchedule("constant", b1=0.9, b2=0.8)},
            "alpha_lr_b1 must be <= alpha_lr_b2",
        ),
        (
            "alpha_lr_b2",
            lambda: {"shared": LevelSchedule("constant", b2=1.1)},
            "alpha_lr_b2 must be in [0, 1] but got 1.1.",
        ),
        (
            "alpha_lr_floor",
            lambda: {"shared": LevelSchedule("constant", floor=-0.5)},
            "alpha_lr_floor must be in [0, 1] but got -0.5.",
        ),
        (
            "coupling",
            lambda: {"coupling": "max"},
            "coupling must be one of mixing, none, backbone_max but got 'max'",
        ),
        ("mix_form", lambda: {"mixing": MixingRatio("cos")}, "mix_form must be one of"),
        (
            "mix_steepness",
            lambda: {"mixing": MixingRatio(steepness=-1.0)},
            "mix_steepness must be > 0 and finite but got -1.0.",
        ),
        (
            "mix_constant",
            lambda: {"mixing": MixingRatio(constant=1.01)},
            "mix_constant must be in [0, 1] but got 1.01.",
        ),
        (
            "mix_switch",
            lambda: {"mixing": MixingRatio(switch=2)},
            "mix_switch must be in [0, 1] but got 2.",
        ),
    ],
)
def test_schedule_validates_every_field_at_construction(
    field: str, arguments: Callable[[], dict[str, object]], fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        HLSSchedule(**arguments())  # type: ignore[arg-type]
    assert fragment in str(info.value)


def test_schedule_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        HLSSchedule().mixing = MixingRatio("linear")  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        HLSSchedule().mixing.form = "linear"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        HLSSchedule().shared.b1 = 0.2  # type: ignore[misc]


def test_curves_sample_every_group_on_an_even_grid() -> None:
    schedule = HLSSchedule(coupling="mixing", mixing=MixingRatio("parabolic"))
    curves = schedule.curves(1e-3, points=5)
    assert set(curves) == {"t", "mixing_ratio", *ALPHA_GROUPS}
    assert curves["t"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert curves["mixing_ratio"] == pytest.approx([1.0, 0.9375, 0.75, 0.4375, 0.0])
    assert curves["head_conventional"] == pytest.approx([1e-3, 9.375e-4, 7.5e-4, 4.375e-4, 0])
    assert curves["head_rebalancing"][0] == 0.0
    assert curves["backbone_normal"] == pytest.approx([1e-3] * 5)


def test_curves_need_at_least_two_points() -> None:
    with pytest.raises(ConfigError, match="points must be an integer >= 2 but got 1"):
        HLSSchedule().curves(1e-3, points=1)


# --- per-group shapes and the paper-reading preset --------------------------------------


def test_a_shared_decay_gives_the_rebalancing_head_half_the_conventional_heads_alpha_rate():
    """The issue's figure: the former study defaults (one cosine shape from 0.3 to 0.1 for
    every group, cosine μ) give the re-balancing head about half the cumulative α rate of
    the conventional head although μ is symmetric."""
    tied = HLSSchedule(
        shared=LevelSchedule("cosine", b1=0.3, floor=0.1), mixing=MixingRatio("cosine")
    )
    rates = tied.cumulative_rates()
    assert rates["head_conventional"] == pytest.approx(0.456, abs=5e-4)
    assert rates["head_rebalancing"] == pytest.approx(0.229, abs=5e-4)


@pytest.mark.parametrize("form", ["cosine", "linear", "sigmoid"])
def test_the_paper_reading_preset_gives_both_heads_equal_cumulative_rates(form):
    preset = dataclasses.replace(default_schedule("hls"), mixing=MixingRatio(form))
    assert preset.mixing.is_symmetric
    rates = preset.cumulative_rates()
    assert rates["head_conventional"] == pytest.approx(rates["head_rebalancing"], abs=1e-6)
    # the backbone decays; the heads carry no shared decay (μ and 1 − μ only)
    assert preset.shape(1.0, "backbone_normal") == pytest.approx(0.1)
    assert preset.shape(0.0, "backbone_reduce") == 1.0
    assert {preset.shape(t, "head_rebalancing") for t in (0.0, 0.5, 1.0)} == {1.0}
    assert preset.alpha_lrs(1.0, 0.25)["head_conventional"] == pytest.approx(preset.mixing(0.25))


def test_hls_defaults_to_the_preset_and_bbn_darts_to_parabolic_mu():
    assert SearchConfig(method="hls").schedule == default_schedule("hls")
    assert default_schedule("hls").backbone.shape == "cosine"
    assert SearchConfig(method="bbn_darts").schedule.mixing.form == "parabolic"


def test_each_group_follows_its_most_specific_level_with_its_multiplier():
    schedule = HLSSchedule(
        shared=LevelSchedule("step", b1=0.5, floor=0.2),
        head=LevelSchedule("linear", b1=0.0, floor=0.0, mult=2.0),
        head_rebalancing=LevelSchedule("constant", mult=1.5),
        coupling="none",
    )
    lrs = schedule.alpha_lrs(1.0, 0.75)
    assert lrs["backbone_normal"] == lrs["backbone_reduce"] == pytest.approx(0.2)  # shared
    assert lrs["head_conventional"] == pytest.approx(2.0 * 0.25)  # head family, × 2
    assert lrs["head_rebalancing"] == pytest.approx(2.0 * 1.5 * 1.0)  # own level, × 2 × 1.5


def test_a_level_setting_out_of_range_names_its_key():
    with pytest.raises(ConfigError, match="head_alpha_lr_b1 must be <= head_alpha_lr_b2"):
        HLSSchedule(head=LevelSchedule(b1=0.9, b2=0.5))
    with pytest.raises(ConfigError, match="backbone_reduce_alpha_lr_shape must be one of"):
        HLSSchedule(backbone_reduce=LevelSchedule("cosin"))
    with pytest.raises(ConfigError, match="head_alpha_lr_mult must be >= 0"):
        HLSSchedule(head=LevelSchedule(mult=-1.0))
