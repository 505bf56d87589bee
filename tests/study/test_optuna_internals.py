"""hls_tune/study/optuna_internals.py: the private parts of Optuna hls-tune relies on.

Each test pins one behaviour the rest of the package takes for granted, on a real
in-memory and a real SQLite storage, so an Optuna release that moves it fails here.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.storages import RDBStorage

from hls_tune.study import optuna_internals as internals


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path) -> optuna.storages.BaseStorage:
    if request.param == "memory":
        return optuna.storages.InMemoryStorage()
    return RDBStorage(f"sqlite:///{tmp_path / 'internals.db'}")


def test_study_storage_and_id_are_the_ones_the_storage_knows(storage) -> None:
    study = optuna.create_study(study_name="pinned", storage=storage)
    inner = internals.study_storage(study)  # Optuna may put its cache in front of an RDB
    assert inner.get_study_name_from_id(internals.study_id(study)) == "pinned"
    assert internals.study_id(study) == storage.get_study_id_from_name("pinned")
    [summary] = storage.get_all_studies()
    assert internals.study_id(summary) == internals.study_id(study)


def test_trial_id_of_a_running_and_a_frozen_trial(storage) -> None:
    study = optuna.create_study(study_name="pinned", storage=storage)
    study.optimize(lambda t: 0.0, n_trials=1)
    trial = study.ask()
    expected = storage.get_trial_id_from_study_id_trial_number(
        internals.study_id(study), trial.number
    )
    assert internals.trial_id(trial) == expected
    frozen = study.get_trials(deepcopy=False)[trial.number]
    assert internals.trial_id(frozen) == expected


def test_system_attrs_set_on_a_running_trial_are_stored(storage) -> None:
    study = optuna.create_study(study_name="pinned", storage=storage)
    trial = study.ask()
    internals.set_trial_system_attr(trial, "hls_tune:pinned", {"a": [1, 2]})
    assert study.get_trials()[0].system_attrs["hls_tune:pinned"] == {"a": [1, 2]}
    storage.set_study_system_attr(internals.study_id(study), "hls_tune:study", "x")
    assert internals.study_system_attrs(study)["hls_tune:study"] == "x"


def test_heartbeat_base_class_is_what_rdb_storage_implements() -> None:
    # resilient.RetryingStorage must stay a BaseHeartbeat for Optuna to send heartbeats.
    assert issubclass(RDBStorage, internals.BaseHeartbeat)
    assert not issubclass(optuna.storages.InMemoryStorage, internals.BaseHeartbeat)
