"""hls_tune/study/evaluate_settings.py: the [evaluate] table's settings and defaults."""

from __future__ import annotations

import pytest

from hls_tune.errors import ConfigError
from hls_tune.study.config import parse_study_text
from tests.support.evaluate_study import _text


def test_trains_on_defaults_to_the_long_tailed_set_and_orders_the_sets():
    assert parse_study_text(_text()).evaluate.trains_on == ("longtail",)
    both = _text(evaluate='[evaluate]\ntrains_on = ["balanced", "longtail"]\n')
    assert parse_study_text(both).evaluate.trains_on == ("longtail", "balanced")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'network = "resnet"\n',
            "evaluate.network must be one of plain, bbn, own but got 'resn",
        ),
        ('network = "bbn"\nmix_form = "cosin"\n', "did you mean 'cosine'?"),
        (
            'mix_form = "cosine"\n',
            'mix_form has no effect unless evaluate.network = "bbn"',
        ),
        ('network = "own"\nmix_form = "cosine"\n', "but network is 'own'"),
    ],
)
def test_a_bad_evaluate_network_names_the_key_value_and_what_is_allowed(table, message):
    with pytest.raises(ConfigError) as error:
        parse_study_text(_text(evaluate="[evaluate]\n" + table))
    assert message in str(error.value) and "\n" not in str(error.value)
