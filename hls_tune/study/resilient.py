"""A storage wrapper that waits out an unreachable database instead of failing the worker.

Every storage call that fails with a connection-level error (PostgreSQL restarting, a
network blip, SQLite locked for longer than its busy timeout) is retried with exponential
backoff until `max_wait` seconds have passed, so a worker survives a database restart and
no reported value is lost: `trial.report` simply blocks until the database is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.storages import BaseStorage

from hls_tune.study.optuna_internals import BaseHeartbeat
from hls_tune.study.storage import redact
from hls_tune.study.worker_options import DEFAULT_MAX_WAIT_S

_logger = logging.getLogger(__name__)

_FIRST_DELAY_S = 0.5
_MAX_DELAY_S = 15.0

_STORAGE_METHODS = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "set_trial_param",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    "get_trial_params",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "remove_session",
    "check_trial_is_updatable",
    # heartbeat
    "record_heartbeat",
    "_get_stale_trial_ids",
)


def is_connection_error(error: BaseException) -> bool:
    """Whether an error means "the database could not be reached", worth retrying."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            sqlalchemy.exc.OperationalError
            | sqlalchemy.exc.InterfaceError
            | sqlalchemy.exc.DisconnectionError
            | ConnectionError,
        ):
            return True
        if type(current).__module__.startswith("psycopg") and type(current).__name__ in (
            "OperationalError",
            "InterfaceError",
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


class RetryingStorage(BaseStorage, BaseHeartbeat):
    """Delegates to an Optuna storage, retrying calls that fail to reach the database.

    Args:
        inner: the storage to wrap (RDB, journal, gRPC proxy).
        max_wait: give up (re-raise) after this many seconds of failed attempts.
        log: where to say that the worker is waiting (default: the module logger).
    """

    def __init__(
        self,
        inner: BaseStorage,
        *,
        max_wait: float = DEFAULT_MAX_WAIT_S,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.inner = inner
        self.max_wait = max_wait
        self.log = log or _logger.warning
        self.retries = 0

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        delay = _FIRST_DELAY_S
        attempt = 0
        while True:
            try:
                return getattr(self.inner, name)(*args, **kwargs)
            except optuna.exceptions.UpdateFinishedTrialError:
                # A retried state change whose first attempt did reach the database.
                if attempt and name == "set_trial_state_values":
                    trial = self.inner.get_trial(args[0])
                    wanted = kwargs.get("state", args[1] if len(args) > 1 else None)
                    if trial.state == wanted:
                        return True
                raise
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                waited = time.monotonic() - started
                if waited + delay > self.max_wait:
                    raise
                attempt += 1
                self.retries += 1
                reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                self.log(
                    f"storage unreachable ({reason}); retry {attempt} in {delay:.1f} s "
                    f"(waited {waited:.0f} of at most {self.max_wait:.0f} s)"
                )
                time.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY_S)

    # Heartbeat configuration is local to the wrapped storage: no database call.
    def get_heartbeat_interval(self) -> int | None:
        getter = getattr(self.inner, "get_heartbeat_interval", None)
        return getter() if getter is not None else None

    def get_heartbeat_stale_trial_callback(self) -> Callable | None:
        getter = getattr(self.inner, "get_heartbeat_stale_trial_callback", None)
        return getter() if getter is not None else None

    def get_failed_trial_callback(self) -> Callable | None:
        return self.get_heartbeat_stale_trial_callback()


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"`{name}` of the wrapped storage, retried on connection errors."
    return method


for _name in _STORAGE_METHODS:
    setattr(RetryingStorage, _name, _delegate(_name))
RetryingStorage.__abstractmethods__ = frozenset()
