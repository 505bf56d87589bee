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

This module holds `open_storage` and the journal and gRPC backends; the URL lookup, parsing
and description are `storage_url`, the SQLite and PostgreSQL backends `storage_rdb`. Their
public names stay importable from here.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial

from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.redact import redact, redact_url
from hls_tune.study.storage_rdb import (
    POSTGRES_CONNECT_TIMEOUT_S,
    SQLITE_BUSY_TIMEOUT_S,
    open_postgres,
    open_sqlite,
)
from hls_tune.study.storage_url import (
    GRPC_DEFAULT_PORT,
    STORAGE_ENV_VARS,
    StorageSpec,
    check_database_file,
    describe,
    parse_storage_url,
    resolve_storage_url,
)

__all__ = [
    "GRPC_CONNECT_TIMEOUT_S",
    "GRPC_DEFAULT_PORT",
    "POSTGRES_CONNECT_TIMEOUT_S",
    "SQLITE_BUSY_TIMEOUT_S",
    "STORAGE_ENV_VARS",
    "describe",
    "open_storage",
    "redact",
    "redact_url",
    "resolve_storage_url",
]

_logger = logging.getLogger(__name__)

# A gRPC proxy that does not answer within this time is reported as unreachable.
GRPC_CONNECT_TIMEOUT_S = 10


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
    _check_options(heartbeat_interval, grace_period, pool_size, max_overflow)
    spec = parse_storage_url(url)
    heartbeat = {
        "heartbeat_interval": heartbeat_interval,
        "grace_period": grace_period,
        "failed_trial_callback": failed_trial_callback,
    }
    _check_heartbeat_supported(spec, heartbeat_interval)
    if spec.kind == "sqlite":
        storage: BaseStorage = open_sqlite(
            spec, create=create, heartbeat=heartbeat, read_only=read_only and not create
        )
    elif spec.kind == "journal":
        storage = _open_journal(spec, create=create)
    elif spec.kind == "postgresql":
        storage = open_postgres(
            spec, create=create, heartbeat=heartbeat, pool_size=pool_size, max_overflow=max_overflow
        )
    else:
        storage = _open_grpc(spec)
    _logger.info("opened storage %s", spec.description)
    return storage


def _check_options(
    heartbeat_interval: int | None, grace_period: int | None, pool_size: int, max_overflow: int
) -> None:
    """Raises a ConfigError naming the first of `open_storage`'s options that is out of range."""
    _check_positive("heartbeat_interval", heartbeat_interval)
    _check_positive("grace_period", grace_period)
    if pool_size < 1:
        raise ConfigError(f"pool_size must be >= 1 but got {pool_size}.")
    if max_overflow < 0:
        raise ConfigError(f"max_overflow must be >= 0 but got {max_overflow}.")


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or value <= 0):
        raise ConfigError(f"{name} must be a positive number of seconds but got {value!r}.")


def _check_heartbeat_supported(spec: StorageSpec, heartbeat_interval: int | None) -> None:
    """A heartbeat needs an SQL storage: the journal has none, a gRPC proxy's is the server's."""
    if spec.kind in ("journal", "grpc") and heartbeat_interval is not None:
        where = (
            "Optuna's journal storage has no heartbeat"
            if spec.kind == "journal"
            else "set it on the proxy server's storage"
        )
        raise ConfigError(
            "heartbeat_interval is supported only by sqlite:// and postgresql:// storages "
            f"but got --storage {redact_url(spec.url)!r} ({where})."
        )


def _open_journal(spec: StorageSpec, *, create: bool) -> JournalStorage:
    assert spec.path is not None
    # JournalFileBackend creates a missing file itself, so check before constructing it.
    check_database_file(spec, create=create)
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


def _open_grpc(spec: StorageSpec) -> BaseStorage:
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
