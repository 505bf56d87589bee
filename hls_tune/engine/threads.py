"""How many torch threads a worker may use without oversubscribing the host.

Every worker on a host registers in a host-local directory: a lock file it holds an
exclusive `fcntl` lock on for as long as it lives. The kernel drops the lock when the
process dies (even by SIGKILL), so a file whose lock can be taken belongs to a dead worker
and is removed by whoever finds it. A worker's share of the cores it may run on
(`os.sched_getaffinity`) is those cores divided among the live registrations; the share is
re-computed between trials and, about once a second, between search steps, so workers that
start or stop later are accounted for. `--threads N` and `HLS_TUNE_THREADS` fix the count instead.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import IO

from hls_tune.errors import ConfigError

THREADS_ENV = "HLS_TUNE_THREADS"
REGISTRY_ENV = "HLS_TUNE_WORKER_DIR"
_SUFFIX = ".worker"


def thread_share(cores: int, workers: int, rank: int) -> int:
    """Threads for the worker at `rank` (0-based) of `workers` sharing `cores` cores.

    The cores are split as evenly as possible (earlier ranks take the remainder), so the
    shares add up to `cores`; with more workers than cores each gets one thread.
    """
    if cores < 1 or workers < 1 or not 0 <= rank < workers:
        raise ValueError(
            f"need cores >= 1, workers >= 1, 0 <= rank < workers: {cores, workers, rank}"
        )
    base, extra = divmod(cores, workers)
    return max(1, base + (1 if rank < extra else 0))


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_registry_dir() -> Path:
    """`$HLS_TUNE_WORKER_DIR`, else a per-user directory in the host's temporary directory."""
    configured = os.environ.get(REGISTRY_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"hls-tune-workers-{os.getuid()}"


def fixed_threads(threads: int | None = None) -> int | None:
    """The thread count set by hand: `threads` (--threads), else HLS_TUNE_THREADS, else None.

    Raises:
        ConfigError: HLS_TUNE_THREADS is not a positive integer.
    """
    if threads is not None:
        return threads
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{THREADS_ENV} must be a positive integer but got {value!r}.")
    return int(value)


class WorkerRegistry:
    """This process's registration among the workers of one host.

    Args:
        directory: the host-local registry directory (created if missing).
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_registry_dir()
        self.name: str | None = None
        self._handle: IO[bytes] | None = None

    def register(self) -> str:
        """Creates and locks this process's file; returns its name.

        The file is locked under a temporary name and then renamed into place, so a
        process cleaning up stale files never sees it unlocked.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}{_SUFFIX}"
        temporary = self.directory / f".{name}.new"
        handle = open(temporary, "wb")  # noqa: SIM115 (held open: the lock lives with it)
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        os.rename(temporary, self.directory / name)
        self._handle, self.name = handle, name
        return name

    def close(self) -> None:
        """Removes this process's registration."""
        if self._handle is None:
            return
        assert self.name is not None
        (self.directory / self.name).unlink(missing_ok=True)
        self._handle.close()
        self._handle = self.name = None

    def live(self) -> list[str]:
        """Names of the live registrations, oldest first; dead workers' files are removed."""
        names = []
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            if path.name == self.name or _held(path):
                names.append(path.name)
        return names

    def share(self, cores: int | None = None) -> tuple[int, int]:
        """This worker's thread share and the number of live workers."""
        names = self.live()
        if self.name not in names:
            names = sorted([*names, self.name or ""])
        rank = names.index(self.name or "")
        return thread_share(cores or usable_cores(), len(names), rank), len(names)

    def __enter__(self) -> WorkerRegistry:
        self.register()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _held(path: Path) -> bool:
    """Whether a live process holds `path`'s lock; a file nobody holds is removed."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        path.unlink(missing_ok=True)  # its worker died: the kernel released the lock
        return False


def set_torch_threads(threads: int) -> bool:
    """Sets torch's intra-op threads and the BLAS/OpenMP pools to `threads`.

    Returns whether the count changed.
    """
    import torch
    from threadpoolctl import threadpool_limits

    if torch.get_num_threads() == threads:
        return False
    torch.set_num_threads(threads)
    threadpool_limits(threads)
    return True


class ThreadBudget:
    """A worker's torch thread count: fixed by hand, or its share of the host's cores.

    Args:
        threads: --threads (wins over HLS_TUNE_THREADS; both win over the automatic share).
        registry: the host's worker registry (default: `default_registry_dir()`).
        cores: cores to share (default: this process's CPU affinity).
    """

    def __init__(
        self,
        threads: int | None = None,
        *,
        registry: WorkerRegistry | None = None,
        cores: int | None = None,
    ) -> None:
        self.fixed = fixed_threads(threads)
        self.registry = registry or WorkerRegistry()
        self.cores = cores or usable_cores()
        self.threads = 0
        self._checked = -float("inf")

    def start(self) -> str:
        """Registers the worker and applies its count; returns a line for the log."""
        self.registry.register()
        return self.refresh(force=True) or ""

    def refresh(self, *, force: bool = False, every: float = 0.0) -> str | None:
        """Re-computes the count and applies it; a log line when it changed, else None.

        With `every`, at most once per `every` seconds (cheap enough for every step).
        """
        now = time.monotonic()
        if not force and now - self._checked < every:
            return None
        self._checked = now
        if self.fixed is not None:
            threads, why = self.fixed, "set by hand"
        else:
            threads, workers = self.registry.share(self.cores)
            why = f"{workers} worker{'s' if workers > 1 else ''} on {self.cores} cores"
        changed = set_torch_threads(threads)
        if threads == self.threads and not (force or changed):
            return None
        self.threads = threads
        return f"torch threads: {threads} ({why})"

    def close(self) -> None:
        self.registry.close()
