"""hls_tune/study/evaluate_settings.py: the [evaluate] table's settings and defaults."""

from __future__ import annotations

from hls_tune.study.config import parse_study_text
from tests.support.evaluate_study import _text


def test_trains_on_defaults_to_the_long_tailed_set_and_orders_the_sets():
    assert parse_study_text(_text()).evaluate.trains_on == ("longtail",)
    both = _text(evaluate='[evaluate]\ntrains_on = ["balanced", "longtail"]\n')
    assert parse_study_text(both).evaluate.trains_on == ("longtail", "balanced")
