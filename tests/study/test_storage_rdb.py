"""hls_tune/study/storage_rdb.py: SQLite (WAL, locks, read checks) and PostgreSQL (pool)."""

from __future__ import annotations

import socket
import sqlite3
import threading

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.storage import open_storage
from tests.support.optuna_logs import _quiet_optuna  # noqa: F401  (an autouse fixture)
from tests.support.storage_workers import _run_workers_concurrently, _trial_states


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- SQLite -----------------------------------------------------------------------------------


def test_sqlite_storage_switches_the_file_to_wal_journal_mode(tmp_path):
    path = tmp_path / "study.db"

    storage = open_storage(f"sqlite:///{path}", create=True)
    optuna.create_study(study_name="shared", storage=storage)

    with sqlite3.connect(path) as conn:  # a new connection sees the mode stored in the file
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_connections_wait_for_locks_and_sync_normally(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/study.db", create=True)
    assert isinstance(storage, RDBStorage)

    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


@pytest.mark.slow
def test_two_worker_processes_share_one_sqlite_study_without_failures(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="shared", storage=open_storage(url, create=True))

    _run_workers_concurrently(url, n_workers=2, n_trials=15)

    states = _trial_states(url)
    assert states.count(TrialState.COMPLETE) == 30
    assert len(states) == 30


def test_sqlite_worker_refuses_a_missing_database_and_creates_no_file(tmp_path):
    path = tmp_path / "missing.db"

    with pytest.raises(HlsTuneError, match=r"no study database at .*missing\.db; create a study"):
        open_storage(f"sqlite:///{path}")

    assert not path.exists()


def test_sqlite_worker_refuses_a_database_without_study_tables(tmp_path):
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()

    with pytest.raises(HlsTuneError, match="no Optuna study tables"):
        open_storage(f"sqlite:///{path}")


def test_sqlite_in_a_missing_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"--storage .*does not exist"):
        open_storage(f"sqlite:///{tmp_path}/no/such/dir/study.db", create=True)


def test_sqlite_in_memory_is_only_for_creating(tmp_path):
    with pytest.raises(ConfigError, match="--storage"):
        open_storage("sqlite:///:memory:")

    storage = open_storage("sqlite:///:memory:", create=True)
    study = optuna.create_study(storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=2)
    assert len(study.trials) == 2


def test_sqlite_storage_passes_the_heartbeat_settings_to_optuna(tmp_path):
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
        storage = open_storage(
            f"sqlite:///{tmp_path}/study.db",
            heartbeat_interval=5,
            grace_period=20,
            failed_trial_callback=retry,
            create=True,
        )

    assert isinstance(storage, RDBStorage)
    assert storage.get_heartbeat_interval() == 5
    assert storage.grace_period == 20
    assert storage.get_heartbeat_stale_trial_callback() is retry


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.timeout(20)  # connect_timeout is 10 s; a refused port must not hang or retry
def test_unreachable_postgres_is_a_runtime_error_without_the_password():
    url = f"postgresql://tuner:s3cret@127.0.0.1:{_free_port()}/hls"

    with pytest.raises(HlsTuneError) as caught:
        open_storage(url)

    message = str(caught.value)
    assert not isinstance(caught.value, ConfigError)
    assert "s3cret" not in message
    assert "tuner:***@127.0.0.1" in message
    assert "\n" not in message
    assert caught.value.__suppress_context__  # no chained driver traceback carrying the URL


@pytest.mark.postgres
def test_postgres_storage_uses_psycopg_and_a_one_plus_one_pool_by_default(postgres_url):
    storage = open_storage(postgres_url, create=True)

    assert isinstance(storage, RDBStorage)
    assert storage.engine.dialect.driver == "psycopg"
    assert storage.engine.pool.size() == 1
    storage.engine.dispose()


@pytest.mark.postgres
def test_postgres_storage_never_opens_more_connections_than_its_pool(postgres_url, postgres_server):
    # No overflow here: a closed overflow connection lingers in pg_stat_activity for a moment,
    # which would blur the server-side count this test relies on.
    storage = open_storage(postgres_url, pool_size=2, max_overflow=0, create=True)
    assert isinstance(storage, RDBStorage)
    database = storage.engine.url.database
    peak = 0
    stop = threading.Event()

    def watch_connections() -> None:
        nonlocal peak
        with postgres_server.connect() as admin:
            while not stop.is_set():
                (count,) = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
                ).fetchone()
                peak = max(peak, count)
                stop.wait(0.002)

    watcher = threading.Thread(target=watch_connections)
    watcher.start()
    try:
        study = optuna.create_study(study_name="shared", storage=storage)
        # Four threads want four connections at once (an unbounded pool reaches 4 here).
        study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=40, n_jobs=4)
    finally:
        stop.set()
        watcher.join()
        storage.engine.dispose()

    assert 1 <= peak <= 2
    reopened = open_storage(postgres_url)
    study = optuna.load_study(study_name="shared", storage=reopened)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 40
    reopened.engine.dispose()


@pytest.mark.postgres
def test_postgres_worker_refuses_a_database_without_study_tables(postgres_url):
    with pytest.raises(HlsTuneError, match="no Optuna study tables"):
        open_storage(postgres_url)


@pytest.mark.postgres
def test_postgres_storage_survives_a_server_restart(
    restartable_postgres_url, restartable_postgres_server
):
    storage = open_storage(restartable_postgres_url, create=True)
    study = optuna.create_study(study_name="shared", storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=3)

    restartable_postgres_server.restart()  # every pooled connection is now dead

    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=3)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    storage.engine.dispose()
