"""Storage URL → Optuna storage (SQLite hardened, journal file, PostgreSQL, gRPC proxy), the URL
lookup (--storage, HLS_TUNE_STORAGE, OPTUNA_STORAGE) and password redaction for messages and logs.

Accepted URL forms:

``sqlite:///PATH``
    One machine, a few worker processes. ``sqlite:///study.db`` is relative to the current
    directory, ``sqlite:////abs/study.db`` absolute. The file is switched to WAL journal mode
    (stored in the file); connections use ``synchronous=NORMAL`` (safe with WAL) and wait up to
    60 s on a locked database instead of failing. ``sqlite:///:memory:`` only with ``create``.
``journal:PATH``
    Optuna's ``JournalStorage`` on a ``JournalFileBackend``: Optuna's recommendation for many
    processes on one host. ``journal:study.log`` is relative, ``journal:/abs/study.log``
    absolute. ``journal://…`` is rejected, so that ``journal://study.log`` cannot silently mean
    ``/study.log``. No heartbeat (Optuna's journal storage has none, as of Optuna 5.1):
    only ``hls-tune launch`` recovers the trial of a worker that died.
``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`` (also ``postgresql+psycopg://``, ``postgres://``)
    Several machines. Always the psycopg (v3) driver; connections are checked before use
    (``pool_pre_ping``), connecting gives up after 10 s, and a worker process holds at most
    ``pool_size + max_overflow`` connections (default 1 + 1: the trial's and the heartbeat's).
``grpc://HOST[:PORT]``
    Optuna's ``GrpcStorageProxy`` (port 13000 when omitted); the proxy server holds the
    database connections, so heartbeat and pool settings belong to the server's storage.

With ``create=False`` (what workers use) a missing SQLite or journal file, or a PostgreSQL
database without Optuna's tables, is an error instead of a silently created, empty study.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial
from sqlalchemy.engine import URL, make_url

from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.redact import redact, redact_url, remember_secrets, url_password

__all__ = [
    "STORAGE_ENV_VARS",
    "describe",
    "open_storage",
    "redact",
    "redact_url",
    "resolve_storage_url",
]

_logger = logging.getLogger(__name__)

# Looked up in this order when no --storage is given; the first non-empty one wins.
STORAGE_ENV_VARS = ("HLS_TUNE_STORAGE", "OPTUNA_STORAGE")

# How long an SQLite connection waits for another process's write lock before failing.
# Trials write rarely (ask, report, tell), so a long wait costs nothing and a failure costs a trial.
SQLITE_BUSY_TIMEOUT_S = 60
# How long a PostgreSQL connection attempt may take before the worker reports the server
# as unreachable (libpq's connect_timeout).
POSTGRES_CONNECT_TIMEOUT_S = 10
# A gRPC proxy that does not answer within this time is reported as unreachable.
GRPC_CONNECT_TIMEOUT_S = 10
GRPC_DEFAULT_PORT = 13000

_ALLOWED_FORMS = (
    "sqlite:///PATH, journal:PATH, postgresql://USER:PASSWORD@HOST[:PORT]/DB or grpc://HOST[:PORT]"
)
_POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg", "postgres")


def resolve_storage_url(url: str | None) -> str:
    """Returns the storage URL to use: the explicit one, else the first set environment variable.

    Args:
        url: The value of ``--storage``; ``None`` or empty when not given.

    Returns:
        ``url`` if given, else ``$HLS_TUNE_STORAGE``, else ``$OPTUNA_STORAGE``.

    Raises:
        ConfigError: None of them is set.

    Example:
        >>> resolve_storage_url("sqlite:///study.db")
        'sqlite:///study.db'
    """
    if url:
        return url
    for name in STORAGE_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    raise ConfigError(
        "no storage given: pass --storage URL or set HLS_TUNE_STORAGE (e.g. sqlite:///study.db)"
    )


def describe(url: str) -> str:
    """Returns a one-line description of a storage URL, without any password.

    Args:
        url: A storage URL in one of the accepted forms (see the module docstring).

    Returns:
        e.g. ``"sqlite (/abs/path/study.db)"``, ``"journal (/abs/path/study.log)"``,
        ``"postgresql (tuner@db.example:5432/hls)"`` or ``"grpc (proxy:13000)"``.

    Raises:
        ConfigError: The URL is not in an accepted form.
    """
    return _parse(url).description


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    failed_trial_callback: Callable[[optuna.study.Study, FrozenTrial], None] | None = None,
    pool_size: int = 1,
    max_overflow: int = 1,
    create: bool = False,
    read_only: bool = False,
) -> BaseStorage:
    """Opens the Optuna storage named by ``url``, hardened for several worker processes.

    Args:
        url: A storage URL in one of the accepted forms (see the module docstring).
        heartbeat_interval: Seconds between heartbeats of a running trial (SQLite and
            PostgreSQL only); ``None`` disables the heartbeat.
        grace_period: Seconds without a heartbeat after which a running trial is failed;
            ``None`` means twice ``heartbeat_interval``. Inert without ``heartbeat_interval``.
        failed_trial_callback: Called with ``(study, trial)`` for each trial failed by the
            heartbeat, e.g. ``optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)``.
            Passed to Optuna as ``heartbeat_stale_trial_callback`` (its name since 4.9).
            Inert without ``heartbeat_interval`` (and then ignored by journal and gRPC).
        pool_size: PostgreSQL connections kept open per worker process.
        max_overflow: Extra PostgreSQL connections a worker process may open on demand; a
            process never holds more than ``pool_size + max_overflow`` connections.
        create: Whether a missing study database may be created (``hls-tune study create``).
            Workers pass ``False`` so a wrong path fails instead of starting an empty study.
        read_only: The caller only reads (``study list``, ``study show``): an SQLite file
            is opened with ``mode=ro`` and left in its journal mode, so a file the user may
            only read can still be listed. Other backends ignore it.

    Returns:
        An ``RDBStorage`` (SQLite, PostgreSQL), ``JournalStorage`` or ``GrpcStorageProxy``.

    Raises:
        ConfigError: The URL or an option is invalid (names the option and the redacted value).
        HlsTuneError: The storage cannot be opened: missing file or tables, server unreachable.

    Example:
        >>> storage = open_storage("sqlite:///:memory:", create=True)
        >>> study = optuna.create_study(storage=storage)
    """
    _check_positive("heartbeat_interval", heartbeat_interval)
    _check_positive("grace_period", grace_period)
    if pool_size < 1:
        raise ConfigError(f"pool_size must be >= 1 but got {pool_size}.")
    if max_overflow < 0:
        raise ConfigError(f"max_overflow must be >= 0 but got {max_overflow}.")

    spec = _parse(url)
    heartbeat = {
        "heartbeat_interval": heartbeat_interval,
        "grace_period": grace_period,
        "failed_trial_callback": failed_trial_callback,
    }
    if spec.kind in ("journal", "grpc") and heartbeat_interval is not None:
        where = (
            "Optuna's journal storage has no heartbeat"
            if spec.kind == "journal"
            else "set it on the proxy server's storage"
        )
        raise ConfigError(
            "heartbeat_interval is supported only by sqlite:// and postgresql:// storages "
            f"but got --storage {redact_url(url)!r} ({where})."
        )

    if spec.kind == "sqlite":
        storage: BaseStorage = _open_sqlite(
            spec, create=create, heartbeat=heartbeat, read_only=read_only and not create
        )
    elif spec.kind == "journal":
        storage = _open_journal(spec, create=create)
    elif spec.kind == "postgresql":
        storage = _open_postgres(
            spec, create=create, heartbeat=heartbeat, pool_size=pool_size, max_overflow=max_overflow
        )
    else:
        storage = _open_grpc(spec)
    _logger.info("opened storage %s", spec.description)
    return storage


@dataclass(frozen=True)
class _StorageSpec:
    """A parsed storage URL: which backend, and what it points at."""

    kind: str  # "sqlite" | "journal" | "postgresql" | "grpc"
    url: str  # as given (may hold a password; never print it without redact)
    description: str  # one line, no password
    path: Path | None = None  # sqlite / journal file, absolute; None for sqlite in memory
    sqlalchemy_url: URL | None = None  # sqlite / postgresql, driver forced
    host: str = ""  # grpc
    port: int = 0  # grpc


def _parse(url: str) -> _StorageSpec:
    """Parses and validates a storage URL without touching any file or server."""
    remember_secrets(url)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        return _parse_sqlite(url)
    if scheme == "journal":
        return _parse_journal(url)
    if scheme in _POSTGRES_SCHEMES or scheme.startswith("postgresql+"):
        return _parse_postgres(url)
    if scheme == "grpc":
        return _parse_grpc(url)
    raise _bad_storage(url, f"must be {_ALLOWED_FORMS}")


def _bad_storage(url: str, what: str) -> ConfigError:
    return ConfigError(f"--storage {what} but got {redact_url(url)!r}.")


def _sqlalchemy_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception:  # ArgumentError, or ValueError from a port that is not a number
        raise _bad_storage(
            url,
            f"must be {_ALLOWED_FORMS} (percent-encode ':', '/', '@', '?', '#' and spaces "
            "in the user and password, e.g. %3A, %2F, %40)",
        ) from None
    password = url_password(url)
    if password is not None and parsed.password != unquote(password):
        raise _bad_storage(
            url,
            "has a password that is not a plain URL component: percent-encode "
            "':', '/', '@', '?', '#' and spaces in it (e.g. %3A, %2F, %40, %20)",
        )
    return parsed


def _parse_sqlite(url: str) -> _StorageSpec:
    if not url.lower().startswith("sqlite://"):
        raise _bad_storage(url, "must be sqlite:///PATH (three slashes)")
    parsed = _sqlalchemy_url(url)
    if parsed.drivername != "sqlite":
        raise _bad_storage(url, "must use the default sqlite driver (sqlite:///PATH)")
    if parsed.host or parsed.username or parsed.port:
        rest = url.split("://", 1)[1]
        raise _bad_storage(
            url,
            "must be sqlite:///PATH with three slashes (two slashes name a host, not a file; "
            f"did you mean sqlite:///{redact(rest)}?)",
        )
    database = parsed.database
    if database in (None, "", ":memory:"):
        return _StorageSpec("sqlite", url, "sqlite (in memory)", None, parsed)
    path = Path(database).absolute()
    # Rebuild from the absolute path so a later chdir (or a worker started elsewhere) cannot
    # change which file is meant.
    absolute = URL.create("sqlite", database=str(path), query=parsed.query)
    return _StorageSpec("sqlite", url, f"sqlite ({path})", path, absolute)


def _parse_journal(url: str) -> _StorageSpec:
    rest = url.split(":", 1)[1]
    if rest.startswith("//") or not rest.strip():
        raise _bad_storage(
            url, "must be journal:PATH, e.g. journal:study.log or journal:/abs/x.log"
        )
    path = Path(rest).absolute()
    return _StorageSpec("journal", url, f"journal ({path})", path)


def _parse_postgres(url: str) -> _StorageSpec:
    parsed = _sqlalchemy_url(url)
    if parsed.drivername not in _POSTGRES_SCHEMES:
        raise _bad_storage(
            url, "must use the psycopg (v3) driver: postgresql:// or postgresql+psycopg://"
        )
    if not parsed.database:
        raise _bad_storage(url, "must name a database: postgresql://USER:PASSWORD@HOST[:PORT]/DB")
    if parsed.host and "@" in parsed.host:
        # The driver would take the rest of the password for the host and quote it in errors.
        raise _bad_storage(url, "must percent-encode '@' in the password as %40")
    parsed = parsed.set(drivername="postgresql+psycopg")
    where = f"{parsed.username}@" if parsed.username else ""
    where += parsed.host or "localhost"
    where += f":{parsed.port}" if parsed.port else ""
    return _StorageSpec("postgresql", url, f"postgresql ({where}/{parsed.database})", None, parsed)


def _parse_grpc(url: str) -> _StorageSpec:
    try:
        parts = urlsplit(url)
        port = parts.port or GRPC_DEFAULT_PORT
    except ValueError:
        raise _bad_storage(url, "must be grpc://HOST[:PORT] with a numeric port") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise _bad_storage(url, "must be grpc://HOST[:PORT]")
    return _StorageSpec(
        "grpc", url, f"grpc ({parts.hostname}:{port})", host=parts.hostname, port=port
    )


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or value <= 0):
        raise ConfigError(f"{name} must be a positive number of seconds but got {value!r}.")


def _open_sqlite(
    spec: _StorageSpec, *, create: bool, heartbeat: dict[str, Any], read_only: bool = False
) -> RDBStorage:
    assert spec.sqlalchemy_url is not None
    if read_only and spec.path is not None:
        _check_database_file(spec, create=False)
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
            raise _bad_storage(
                spec.url, "may be sqlite:///:memory: only when creating a study (nothing persists)"
            )
    else:
        _check_database_file(spec, create=create)
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


def _check_database_file(spec: _StorageSpec, *, create: bool) -> None:
    """Checks the parent directory and the file of an SQLite or journal storage."""
    assert spec.path is not None
    if not spec.path.parent.is_dir():
        raise _bad_storage(
            spec.url, f"must be in an existing directory ({spec.path.parent} does not exist)"
        )
    if spec.path.is_dir():
        raise _bad_storage(spec.url, f"must name a file ({spec.path} is a directory)")
    if not create and not spec.path.exists():
        raise HlsTuneError(
            f"no study database at {spec.path}; create a study first with `hls-tune study create`"
        )


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


def _open_postgres(
    spec: _StorageSpec,
    *,
    create: bool,
    heartbeat: dict[str, Any],
    pool_size: int,
    max_overflow: int,
) -> RDBStorage:
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
    spec: _StorageSpec, *, engine_kwargs: dict[str, Any], create: bool, heartbeat: dict[str, Any]
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


def _require_study_tables(spec: _StorageSpec, url: str, engine_kwargs: dict[str, Any]) -> None:
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


def _open_journal(spec: _StorageSpec, *, create: bool) -> JournalStorage:
    assert spec.path is not None
    # JournalFileBackend creates a missing file itself, so check before constructing it.
    _check_database_file(spec, create=create)
    _check_journal_complete(spec.path)
    try:
        return JournalStorage(JournalFileBackend(str(spec.path)))
    except (OSError, ValueError) as error:
        raise HlsTuneError(f"cannot open journal {spec.path}: {error}") from None


def _check_journal_complete(path: Path) -> None:
    """Refuses a journal whose last record is cut off (a full disk, a copy interrupted):
    Optuna would skip it silently and the next write would be appended to the broken line."""
    try:
        size = path.stat().st_size
        if size == 0:
            return
        with path.open("rb") as f:
            f.seek(max(0, size - 65536))
            tail = f.read()
    except FileNotFoundError:
        return
    except OSError as error:
        raise HlsTuneError(f"cannot read journal {path}: {error.strerror or error}") from None
    if tail.endswith(b"\n"):
        return
    keep = size - (len(tail) - tail.rfind(b"\n") - 1) if b"\n" in tail else 0
    raise HlsTuneError(
        f"journal {path} ends in an incomplete record (the file was cut at byte {size}); "
        f"restore it from a backup, or drop the broken record with `truncate -s {keep} {path}` "
        "(that record's change is lost). Nothing was written."
    )


def _open_grpc(spec: _StorageSpec) -> BaseStorage:
    proxy_class = getattr(optuna.storages, "GrpcStorageProxy", None)  # Optuna >= 4.2
    if proxy_class is None:
        raise ConfigError(
            f"--storage {redact_url(spec.url)!r} needs Optuna >= 4.2 (GrpcStorageProxy) "
            f"but Optuna {optuna.__version__} is installed"
        )
    if importlib.util.find_spec("grpc") is None:
        raise ConfigError(
            f"--storage {redact_url(spec.url)!r} needs the grpcio package: pip install grpcio"
        )
    proxy = proxy_class(host=spec.host, port=spec.port)
    try:
        proxy.wait_server_ready(timeout=GRPC_CONNECT_TIMEOUT_S)
    except ConnectionError:
        proxy.close()
        raise HlsTuneError(
            f"no gRPC storage proxy answered at {spec.host}:{spec.port} within "
            f"{GRPC_CONNECT_TIMEOUT_S} s; start it with optuna.storages.run_grpc_proxy_server"
        ) from None
    return proxy
