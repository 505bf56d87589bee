"""hls_tune/engine/records.py: every settings field says its role, and what is derived
from the roles (the source settings, the fingerprints) follows them."""

from __future__ import annotations

import dataclasses

import pytest

from hls_tune.engine import source
from hls_tune.engine.records import ROLES, digest, fields_with_role, role_of
from hls_tune.engine.schedules import MixingRatio
from hls_tune.engine.settings import DataConfig, SearchConfig, TrainConfig

RECORDS = (SearchConfig, DataConfig, TrainConfig)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_every_settings_field_declares_a_known_role(record):
    missing = [f.name for f in dataclasses.fields(record) if role_of(f) not in ROLES]
    assert not missing, f"{record.__name__} fields without a role: {missing}"


def test_the_source_settings_are_derived_from_the_roles():
    assert set(source.SOURCE_SETTINGS) == set(
        fields_with_role(SearchConfig, "source", "precision")
    )
    assert "eval_batch_size" in source.EXECUTION_SETTINGS
    assert "eval_batch_size" not in source.SOURCE_SETTINGS
    # a target-only setting never shares a source wrongly
    assert not set(fields_with_role(SearchConfig, "target")) & set(source.SOURCE_SETTINGS)


@pytest.mark.parametrize(
    ("change", "same"),
    [
        ({"device": "cuda"}, True),
        ({"eval_batch_size": 7}, True),
        ({"channels": 8}, False),
        ({"seed": 1}, False),
        ({"data": DataConfig(imbalance_ratio=50)}, False),
    ],
)
def test_the_search_fingerprint_drops_execution_settings_only(change, same):
    base = SearchConfig()
    assert (base.fingerprint() == dataclasses.replace(base, **change).fingerprint()) is same


@pytest.mark.parametrize(
    ("change", "recipe_same", "run_same"),
    [
        ({"device": "cpu"}, True, True),
        ({"seed": 3}, True, False),
        ({"data": DataConfig(imbalance_ratio=50)}, True, False),
        ({"epochs": 7}, False, False),
        ({"mixing": MixingRatio("cosine")}, False, False),
    ],
)
def test_the_recipe_fingerprint_is_the_recipe_alone(change, recipe_same, run_same):
    base, other = TrainConfig(), dataclasses.replace(TrainConfig(), **change)
    assert (base.recipe_fingerprint() == other.recipe_fingerprint()) is recipe_same
    assert (base.fingerprint() == other.fingerprint()) is run_same


def test_digest_reaches_into_nested_records():
    a, b = TrainConfig(), TrainConfig(data=DataConfig(val_per_class=7))
    assert digest(a) != digest(b)
    assert digest(a, drop=("record",)) == digest(b, drop=("record",))
