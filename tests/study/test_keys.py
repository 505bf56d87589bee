"""hls_tune/study/keys.py: the flat study keys and the engine's schedule records, both ways."""

from __future__ import annotations

import pytest

from hls_tune.engine.schedules import PAPER_READING, HLSSchedule, LevelSchedule, MixingRatio
from hls_tune.engine.settings import SearchConfig
from hls_tune.errors import ConfigError
from hls_tune.study.keys import LEVEL_KEYS, MIX_KEYS, config_with, flat_schedule, schedule_with

SCHEDULES = [
    HLSSchedule(),
    PAPER_READING,
    HLSSchedule(
        shared=LevelSchedule("step", b1=0.3, floor=0.2),
        head_rebalancing=LevelSchedule("linear", b1=0.1, b2=0.6, floor=0.0, mult=2.0),
        backbone=LevelSchedule(mult=0.5),
        coupling="backbone_max",
        mixing=MixingRatio("sigmoid", steepness=4.0),
    ),
]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_a_schedule_survives_its_flat_keys(schedule):
    flat = flat_schedule(schedule)
    assert set(flat) == {*LEVEL_KEYS, "coupling", *MIX_KEYS}
    assert schedule_with(HLSSchedule(), flat) == schedule


def test_a_span_becomes_the_second_breakpoint_after_b1():
    config = config_with(
        SearchConfig(method="hls"),
        {"head_alpha_lr_shape": "linear", "head_alpha_lr_b1": 0.2, "head_alpha_lr_span": 0.5},
    )
    head = config.schedule.head
    assert (head.shape, head.b1, head.b2) == ("linear", 0.2, pytest.approx(0.6))


def test_a_bad_level_value_names_its_study_key():
    with pytest.raises(ConfigError, match="head_alpha_lr_b1 must be <= head_alpha_lr_b2"):
        schedule_with(HLSSchedule(), {"head_alpha_lr_b1": 0.9, "head_alpha_lr_b2": 0.5})
