"""Storage URLs: which one to use (--storage, HLS_TUNE_STORAGE, OPTUNA_STORAGE), parsing and
validating one into a `StorageSpec` without touching any server, its password-free
description, and the checks of the file an SQLite or journal URL names.

The accepted forms are listed in `hls_tune.study.storage`'s docstring; opening the storage
is that module's business.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import URL, make_url

from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.redact import redact, redact_url, remember_secrets, url_password

# Looked up in this order when no --storage is given; the first non-empty one wins.
STORAGE_ENV_VARS = ("HLS_TUNE_STORAGE", "OPTUNA_STORAGE")

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
        url: A storage URL in one of the accepted forms (see `hls_tune.study.storage`).

    Returns:
        e.g. ``"sqlite (/abs/path/study.db)"``, ``"journal (/abs/path/study.log)"``,
        ``"postgresql (tuner@db.example:5432/hls)"`` or ``"grpc (proxy:13000)"``.

    Raises:
        ConfigError: The URL is not in an accepted form.
    """
    return parse_storage_url(url).description


@dataclass(frozen=True)
class StorageSpec:
    """A parsed storage URL: which backend, and what it points at."""

    kind: str  # "sqlite" | "journal" | "postgresql" | "grpc"
    url: str  # as given (may hold a password; never print it without redact)
    description: str  # one line, no password
    path: Path | None = None  # sqlite / journal file, absolute; None for sqlite in memory
    sqlalchemy_url: URL | None = None  # sqlite / postgresql, driver forced
    host: str = ""  # grpc
    port: int = 0  # grpc


def parse_storage_url(url: str) -> StorageSpec:
    """Parses and validates a storage URL without touching any file or server.

    Raises:
        ConfigError: The URL is not in an accepted form (the message shows it redacted).
    """
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
    raise bad_storage(url, f"must be {_ALLOWED_FORMS}")


def bad_storage(url: str, what: str) -> ConfigError:
    """The ConfigError for a --storage URL that ``what`` (e.g. "must be ..."), redacted."""
    return ConfigError(f"--storage {what} but got {redact_url(url)!r}.")


def check_database_file(spec: StorageSpec, *, create: bool) -> None:
    """Checks the parent directory and the file of an SQLite or journal storage.

    Raises:
        ConfigError: The directory does not exist, or the path is a directory.
        HlsTuneError: The file does not exist and ``create`` is false.
    """
    assert spec.path is not None
    if not spec.path.parent.is_dir():
        raise bad_storage(
            spec.url, f"must be in an existing directory ({spec.path.parent} does not exist)"
        )
    if spec.path.is_dir():
        raise bad_storage(spec.url, f"must name a file ({spec.path} is a directory)")
    if not create and not spec.path.exists():
        raise HlsTuneError(
            f"no study database at {spec.path}; create a study first with `hls-tune study create`"
        )


def _sqlalchemy_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception:  # ArgumentError, or ValueError from a port that is not a number
        raise bad_storage(
            url,
            f"must be {_ALLOWED_FORMS} (percent-encode ':', '/', '@', '?', '#' and spaces "
            "in the user and password, e.g. %3A, %2F, %40)",
        ) from None
    password = url_password(url)
    if password is not None and parsed.password != unquote(password):
        raise bad_storage(
            url,
            "has a password that is not a plain URL component: percent-encode "
            "':', '/', '@', '?', '#' and spaces in it (e.g. %3A, %2F, %40, %20)",
        )
    return parsed


def _parse_sqlite(url: str) -> StorageSpec:
    if not url.lower().startswith("sqlite://"):
        raise bad_storage(url, "must be sqlite:///PATH (three slashes)")
    parsed = _sqlalchemy_url(url)
    if parsed.drivername != "sqlite":
        raise bad_storage(url, "must use the default sqlite driver (sqlite:///PATH)")
    if parsed.host or parsed.username or parsed.port:
        rest = url.split("://", 1)[1]
        raise bad_storage(
            url,
            "must be sqlite:///PATH with three slashes (two slashes name a host, not a file; "
            f"did you mean sqlite:///{redact(rest)}?)",
        )
    database = parsed.database
    if database in (None, "", ":memory:"):
        return StorageSpec("sqlite", url, "sqlite (in memory)", None, parsed)
    path = Path(database).absolute()
    # Rebuild from the absolute path so a later chdir (or a worker started elsewhere) cannot
    # change which file is meant.
    absolute = URL.create("sqlite", database=str(path), query=parsed.query)
    return StorageSpec("sqlite", url, f"sqlite ({path})", path, absolute)


def _parse_journal(url: str) -> StorageSpec:
    rest = url.split(":", 1)[1]
    if rest.startswith("//") or not rest.strip():
        raise bad_storage(url, "must be journal:PATH, e.g. journal:study.log or journal:/abs/x.log")
    path = Path(rest).absolute()
    return StorageSpec("journal", url, f"journal ({path})", path)


def _parse_postgres(url: str) -> StorageSpec:
    parsed = _sqlalchemy_url(url)
    if parsed.drivername not in _POSTGRES_SCHEMES:
        raise bad_storage(
            url, "must use the psycopg (v3) driver: postgresql:// or postgresql+psycopg://"
        )
    if not parsed.database:
        raise bad_storage(url, "must name a database: postgresql://USER:PASSWORD@HOST[:PORT]/DB")
    if parsed.host and "@" in parsed.host:
        # The driver would take the rest of the password for the host and quote it in errors.
        raise bad_storage(url, "must percent-encode '@' in the password as %40")
    parsed = parsed.set(drivername="postgresql+psycopg")
    where = f"{parsed.username}@" if parsed.username else ""
    where += parsed.host or "localhost"
    where += f":{parsed.port}" if parsed.port else ""
    return StorageSpec("postgresql", url, f"postgresql ({where}/{parsed.database})", None, parsed)


def _parse_grpc(url: str) -> StorageSpec:
    try:
        parts = urlsplit(url)
        port = parts.port or GRPC_DEFAULT_PORT
    except ValueError:
        raise bad_storage(url, "must be grpc://HOST[:PORT] with a numeric port") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise bad_storage(url, "must be grpc://HOST[:PORT]")
    return StorageSpec(
        "grpc", url, f"grpc ({parts.hostname}:{port})", host=parts.hostname, port=port
    )
