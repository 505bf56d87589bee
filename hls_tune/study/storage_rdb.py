"""The SQL storages: SQLite (WAL, busy timeout, ``BEGIN IMMEDIATE``, read-only opens) and
PostgreSQL (psycopg, pre-ping, bounded pool) opened as Optuna ``RDBStorage``, with their
connection and schema failures turned into one-line, password-free `HlsTuneError`s.

`hls_tune.study.storage.open_storage` picks the backend; this module opens the SQL ones.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages import RDBStorage

from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.redact import redact, redact_url
from hls_tune.study.storage_url import StorageSpec, bad_storage, check_database_file

# The storage module's logger: its messages keep the name they had before this module split off.
_logger = logging.getLogger("hls_tune.study.storage")

# How long an SQLite connection waits for another process's write lock before failing.
# Trials write rarely (ask, report, tell), so a long wait costs nothing and a failure costs a trial.
SQLITE_BUSY_TIMEOUT_S = 60
# How long a PostgreSQL connection attempt may take before the worker reports the server
# as unreachable (libpq's connect_timeout).
POSTGRES_CONNECT_TIMEOUT_S = 10


def open_sqlite(
    spec: StorageSpec, *, create: bool, heartbeat: dict[str, Any], read_only: bool = False
) -> RDBStorage:
    """Opens an SQLite storage: WAL and ``synchronous=NORMAL`` for a file, transactions opened
    with ``BEGIN IMMEDIATE``; with ``read_only``, a ``mode=ro`` connection that changes nothing.

    Args:
        spec: the parsed ``sqlite://`` URL.
        create: whether a missing file (or ``:memory:``) may be created.
        heartbeat: ``heartbeat_interval``, ``grace_period`` and ``failed_trial_callback``.
        read_only: open the file for reading only.
    """
    assert spec.sqlalchemy_url is not None
    if read_only and spec.path is not None:
        check_database_file(spec, create=False)
        path = spec.path
        # mode=ro: SQLite refuses every write on this connection, and nothing switches the
        # file to WAL; no BEGIN IMMEDIATE either (it would take the write lock).
        uri = f"file:{quote(str(path))}?mode=ro"
        engine_kwargs = {
            "creator": lambda: sqlite3.connect(
                uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None
            )
        }
        return _open_rdb(spec, engine_kwargs=engine_kwargs, create=False, heartbeat=heartbeat)
    # pysqlite's timeout is SQLite's busy timeout: wait for a lock instead of failing.
    # isolation_level=None stops pysqlite from opening transactions itself (it would open them
    # only before a write, so a read-then-write such as claiming a WAITING trial would not be
    # atomic); every transaction is opened by _begin_immediate instead.
    connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "isolation_level": None}
    if spec.path is None:
        if not create:
            raise bad_storage(
                spec.url, "may be sqlite:///:memory: only when creating a study (nothing persists)"
            )
    else:
        check_database_file(spec, create=create)
        if _enable_wal(spec.path):
            connect_args["factory"] = _WalConnection
    storage = _open_rdb(
        spec, engine_kwargs={"connect_args": connect_args}, create=create, heartbeat=heartbeat
    )
    sqlalchemy.event.listen(storage.engine, "begin", _begin_immediate)
    return storage


def _begin_immediate(connection: sqlalchemy.engine.Connection) -> None:
    """Opens each SQLite transaction with the write lock held (``BEGIN IMMEDIATE``).

    Two workers then cannot both read a WAITING trial and both mark it RUNNING (Optuna's
    ``SELECT ... FOR UPDATE`` is a no-op on SQLite), and a read-then-write transaction never
    fails with "database is locked" on upgrading its lock: it waits for the busy timeout
    at the start instead. Transactions are milliseconds long, so serialising them costs
    little for the handful of workers one machine runs.
    """
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class _WalConnection(sqlite3.Connection):
    """An SQLite connection with ``synchronous=NORMAL``, the setting SQLite advises for WAL.

    In WAL mode it cannot corrupt the database; a power loss (not a crashed process) may undo
    the last commits. It halves a trial's storage time (one fsync per checkpoint instead of one
    per commit), which also shortens the time other workers wait for the write lock.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute("PRAGMA synchronous=NORMAL")


def _enable_wal(path: Path) -> bool:
    """Switches the SQLite file at ``path`` (created if missing) to WAL journal mode.

    WAL lets readers and one writer work at the same time, so the workers' frequent reads
    (sampling needs all finished trials) do not block on each other's writes. The mode is stored
    in the file, so setting it once with the stdlib driver holds for Optuna's connections too.

    Returns:
        Whether the file is now in WAL mode.
    """
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)) as conn:
            (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
    except sqlite3.Error as error:
        raise HlsTuneError(f"cannot open SQLite database {path}: {error}") from None
    if str(mode).lower() != "wal":
        # e.g. a file system without shared memory support; still usable, just less concurrent.
        _logger.warning("SQLite database %s stays in %s journal mode, not WAL", path, mode)
        return False
    return True


def open_postgres(
    spec: StorageSpec,
    *,
    create: bool,
    heartbeat: dict[str, Any],
    pool_size: int,
    max_overflow: int,
) -> RDBStorage:
    """Opens a PostgreSQL storage with the psycopg (v3) driver, pre-pinged pooled connections
    (at most ``pool_size + max_overflow``) and a connect timeout."""
    if importlib.util.find_spec("psycopg") is None:
        raise ConfigError(
            f"--storage {redact_url(spec.url)!r} needs the psycopg (v3) driver: "
            "pip install 'psycopg[binary]'"
        )
    engine_kwargs = {
        "pool_pre_ping": True,  # a connection dropped by a server restart is replaced, not used
        "pool_size": pool_size,
        "max_overflow": max_overflow,
        "connect_args": {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    }
    return _open_rdb(spec, engine_kwargs=engine_kwargs, create=create, heartbeat=heartbeat)


def _open_rdb(
    spec: StorageSpec, *, engine_kwargs: dict[str, Any], create: bool, heartbeat: dict[str, Any]
) -> RDBStorage:
    """Builds an RDBStorage and turns its connection and schema failures into HlsTuneError."""
    assert spec.sqlalchemy_url is not None
    url = spec.sqlalchemy_url.render_as_string(hide_password=False)
    callback = heartbeat["failed_trial_callback"]
    if callback is not None:
        # Optuna 4.9 renamed failed_trial_callback; use the new name where it exists.
        parameters = inspect.signature(RDBStorage).parameters
        name = (
            "heartbeat_stale_trial_callback"
            if "heartbeat_stale_trial_callback" in parameters
            else "failed_trial_callback"
        )
        callbacks = {name: callback}
    else:
        callbacks = {}
    try:
        if not create:
            _require_study_tables(spec, url, engine_kwargs)
        return RDBStorage(
            # RDBStorage runs str.format on the URL (for a {SCHEMA_VERSION} template).
            url.replace("{", "{{").replace("}", "}}"),
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat["heartbeat_interval"],
            grace_period=heartbeat["grace_period"],
            # Workers never create tables, so many workers starting at once cannot race on
            # CREATE TABLE.
            skip_table_creation=not create,
            **callbacks,
        )
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
        # Optuna wraps errors raised inside its sessions in StorageInternalError; the driver's
        # error is further down the chain.
        reason = _one_line_reason(_find_dbapi_error(error) or error)
        shown = spec.sqlalchemy_url.render_as_string(hide_password=True)
        raise HlsTuneError(f"cannot open storage {redact(shown)}: {reason}") from None
    except RuntimeError as error:  # Optuna's table schema version check
        raise HlsTuneError(f"{spec.description}: {redact(str(error))}") from None


def _require_study_tables(spec: StorageSpec, url: str, engine_kwargs: dict[str, Any]) -> None:
    """Raises HlsTuneError unless the database holds Optuna's tables (a study was created).

    Checked on a throwaway engine, because a failed RDBStorage constructor leaves its pooled
    connection behind.
    """
    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if not {"studies", "version_info"} <= tables:
        raise HlsTuneError(
            f"no Optuna study tables in {spec.description}; "
            "create a study first with `hls-tune study create`"
        )


def _find_dbapi_error(error: BaseException) -> sqlalchemy.exc.DBAPIError | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.DBAPIError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _one_line_reason(error: BaseException) -> str:
    """The driver's own message, first line, without SQLAlchemy's SQL echo or links."""
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        error = error.orig
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return redact(lines[0]) if lines else type(error).__name__
