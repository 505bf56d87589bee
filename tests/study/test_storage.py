"""Tests for hls_tune.study.storage: URL resolution, redaction, each backend under many workers."""

from __future__ import annotations

import os
import queue
import socket
import sqlite3
import subprocess
import sys
import threading

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import TrialState

from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.storage import (
    STORAGE_ENV_VARS,
    describe,
    open_storage,
    redact,
    resolve_storage_url,
)
from tests.support.helpers import REPO_ROOT

# A worker process: opens the storage as `hls-tune launch` workers do (create=False), says
# "ready", waits for "go" on stdin so that all workers start optimizing at the same moment,
# then runs its trials.
WORKER_SCRIPT = """
import sys, time
import optuna
from hls_tune.study.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
url, n_trials = sys.argv[1], int(sys.argv[2])
study = optuna.load_study(study_name="shared", storage=open_storage(url))
print("ready", flush=True)
sys.stdin.readline()

def objective(trial):
    time.sleep(0.005)  # interleave the workers' writes
    return trial.suggest_float("x", 0.0, 1.0)

study.optimize(objective, n_trials=n_trials)
"""


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    """The first line `process` prints, waiting for it at most `timeout` seconds (a worker
    that hangs before saying "ready" fails the test instead of blocking it)."""
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no line from the worker within {timeout:.0f} s") from None


def _run_workers_concurrently(url: str, n_workers: int, n_trials: int) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    for name in STORAGE_ENV_VARS:
        env.pop(name, None)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, url, str(n_trials)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n_workers)
    ]
    try:
        for worker in workers:
            line = _first_line(worker, timeout=120)
            assert line.strip() == "ready", (line, worker.communicate(timeout=30)[1])
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        for worker in workers:
            _, stderr = worker.communicate(timeout=60)
            assert worker.returncode == 0, stderr
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def _trial_states(url: str) -> list[TrialState]:
    study = optuna.load_study(study_name="shared", storage=open_storage(url))
    return [trial.state for trial in study.get_trials(deepcopy=False)]


# --- resolve_storage_url ----------------------------------------------------------------------


def test_explicit_storage_url_wins_over_both_environment_variables(monkeypatch):
    monkeypatch.setenv("HLS_TUNE_STORAGE", "sqlite:///from_hls.db")
    monkeypatch.setenv("OPTUNA_STORAGE", "sqlite:///from_optuna.db")

    assert resolve_storage_url("sqlite:///explicit.db") == "sqlite:///explicit.db"


def test_hls_tune_storage_wins_over_optuna_storage(monkeypatch):
    monkeypatch.setenv("HLS_TUNE_STORAGE", "sqlite:///from_hls.db")
    monkeypatch.setenv("OPTUNA_STORAGE", "sqlite:///from_optuna.db")

    assert resolve_storage_url(None) == "sqlite:///from_hls.db"


def test_optuna_storage_is_used_when_hls_tune_storage_is_unset_or_empty(monkeypatch):
    monkeypatch.setenv("HLS_TUNE_STORAGE", "")
    monkeypatch.setenv("OPTUNA_STORAGE", "sqlite:///from_optuna.db")

    assert resolve_storage_url(None) == "sqlite:///from_optuna.db"
    monkeypatch.delenv("HLS_TUNE_STORAGE")
    assert resolve_storage_url("") == "sqlite:///from_optuna.db"


def test_no_storage_anywhere_is_a_config_error_that_says_how_to_give_one(monkeypatch):
    for name in STORAGE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(ConfigError, match=r"no storage given: pass --storage URL or set HLS_TUNE"):
        resolve_storage_url(None)


# --- redact -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "postgresql://tuner:s3cret@db.example:5432/hls",
            "postgresql://tuner:***@db.example:5432/hls",
        ),
        (  # unencoded special characters, '@' and '/' included
            "postgresql+psycopg://tuner:p@ss:w/rd!#$@db:5432/hls?sslmode=require",
            "postgresql+psycopg://tuner:***@db:5432/hls?sslmode=require",
        ),
        (  # percent-encoded, as SQLAlchemy renders it
            "postgresql://tuner:p%40ss%3Aw%2Frd@db/hls",
            "postgresql://tuner:***@db/hls",
        ),
        (  # nothing to hide
            "postgresql://postgres@127.0.0.1:5432/postgres",
            "postgresql://postgres@127.0.0.1:5432/postgres",
        ),
        (
            "sqlite:////tmp/study.db and journal:study.log",
            "sqlite:////tmp/study.db and journal:study.log",
        ),
        (
            "host=db port=5432 user=tuner password=s3cret dbname=hls",
            "host=db port=5432 user=tuner password=*** dbname=hls",
        ),
        ("password = 'two words \\' quote' host=db", "password = *** host=db"),
        (
            "postgresql://db/hls?user=tuner&password=s3cret&x=1",
            "postgresql://db/hls?user=tuner&password=***&x=1",
        ),
        ("PGPASSWORD=s3cret psql -h db", "PGPASSWORD=*** psql -h db"),
        (
            "from 'postgresql://a:one@h1/d', to mysql://b:two@h2/d,grpc://c:three@h3:1 done",
            "from 'postgresql://a:***@h1/d', to mysql://b:***@h2/d,grpc://c:***@h3:1 done",
        ),
    ],
)
def test_redact_hides_every_password_and_keeps_the_rest(text, expected):
    redacted = redact(text)

    assert redacted == expected
    for secret in ("s3cret", "p@ss", "two words", "one@", "two@", "three@"):
        assert secret not in redacted


def test_describe_names_the_backend_and_target_without_the_password(tmp_path):
    assert describe(f"sqlite:///{tmp_path}/study.db") == f"sqlite ({tmp_path}/study.db)"
    assert describe(f"journal:{tmp_path}/study.log") == f"journal ({tmp_path}/study.log)"
    assert describe("postgresql://tuner:s3cret@db:5432/hls") == "postgresql (tuner@db:5432/hls)"
    assert describe("grpc://proxy") == "grpc (proxy:13000)"


# --- URL validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "mysql://tuner:s3cret@db/hls",
        "redis://:s3cret@localhost:6379",
        "study.db",
        "journal://study.log",
        "postgresql+psycopg2://tuner:s3cret@db/hls",
        "postgresql://tuner:s3cret@db",
    ],
)
def test_unsupported_storage_is_a_config_error_naming_the_option_and_redacted_value(url):
    with pytest.raises(ConfigError) as caught:
        open_storage(url, create=True)

    message = str(caught.value)
    assert "--storage" in message
    assert "s3cret" not in message
    assert redact(url) in message


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
