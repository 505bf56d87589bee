"""hls_tune/engine/settings.py: the settings records validate, round-trip and fingerprint."""

from __future__ import annotations

import dataclasses

import pytest

from hls_tune.engine.settings import SearchConfig
from hls_tune.errors import ConfigError
from tests.support.tiny_search import tiny_config


def test_search_config_round_trips_through_its_dict():
    config = tiny_config(method="darts_reweight", second_order=True)
    assert SearchConfig.from_dict(config.to_dict()) == config
    assert dataclasses.replace(config, device="cuda").fingerprint() == config.fingerprint()


def test_alpha_start_epoch_must_leave_an_epoch_for_alpha():
    with pytest.raises(ConfigError, match="alpha_start_epoch must be below epochs"):
        tiny_config(epochs=2, alpha_start_epoch=2)


def test_speed_settings_are_validated_and_leave_the_fingerprint_alone():
    base = SearchConfig()
    assert (base.fused, base.channels_last, base.amp, base.compile) == (True, True, "auto", False)
    with pytest.raises(ConfigError, match="amp must be one of auto, bf16, off but got 'fp16'"):
        SearchConfig(amp="fp16")
    with pytest.raises(ConfigError, match="fused must be a boolean but got 'yes'"):
        SearchConfig(fused="yes")
    slow = SearchConfig(fused=False, channels_last=False, amp="off", compile=True)
    assert slow.fingerprint() == base.fingerprint()
    assert SearchConfig.from_dict(slow.to_dict()) == slow
