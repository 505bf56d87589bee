"""hls_tune/study/storage.py: open_storage's options, the journal and the gRPC backends."""

from __future__ import annotations

import sys

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.storage import open_storage
from tests.support.optuna_logs import _quiet_optuna  # noqa: F401  (an autouse fixture)
from tests.support.storage_workers import _run_workers_concurrently, _trial_states


@pytest.mark.parametrize(
    ("option", "value"),
    [("heartbeat_interval", 0), ("grace_period", -1), ("pool_size", 0), ("max_overflow", -1)],
)
def test_out_of_range_option_is_a_config_error_naming_it_and_its_value(tmp_path, option, value):
    with pytest.raises(ConfigError, match=rf"{option} must be .* but got {value}"):
        open_storage(f"sqlite:///{tmp_path}/study.db", create=True, **{option: value})


# --- journal ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_worker_processes_share_one_journal_study(tmp_path):
    url = f"journal:{tmp_path / 'study.log'}"
    storage = open_storage(url, create=True)
    assert isinstance(storage, JournalStorage)
    optuna.create_study(study_name="shared", storage=storage)

    _run_workers_concurrently(url, n_workers=2, n_trials=10)

    assert _trial_states(url) == [TrialState.COMPLETE] * 20


def test_journal_worker_refuses_a_missing_file_and_creates_none(tmp_path):
    path = tmp_path / "missing.log"

    with pytest.raises(HlsTuneError, match=r"no study database at .*missing\.log"):
        open_storage(f"journal:{path}")

    assert not path.exists()


def test_journal_storage_with_a_heartbeat_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="heartbeat_interval is supported only by"):
        open_storage(f"journal:{tmp_path}/study.log", heartbeat_interval=10, create=True)


def test_grpc_storage_without_grpcio_is_a_config_error(monkeypatch):
    # grpcio is a dev dependency: hide it (a None entry makes the import system report the
    # module as absent) rather than skip where it is installed.
    monkeypatch.setitem(sys.modules, "grpc", None)
    with pytest.raises(ConfigError, match="grpcio"):
        open_storage("grpc://127.0.0.1:13000")
