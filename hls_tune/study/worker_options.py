"""How a worker runs: `WorkerOptions` and the defaults the `worker` command, `run_worker`
and the launcher's command builder all take from here. Nothing here imports Optuna, so
the command line reads these defaults at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_CHECKPOINT_DIR = "checkpoints"
DEFAULT_HEARTBEAT_INTERVAL_S = 30
DEFAULT_MAX_RETRIES = 3
# How long a storage call waits for an unreachable database (`resilient.RetryingStorage`).
DEFAULT_MAX_WAIT_S = 600.0


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs trials; one record for the `worker` command, `run_worker` and the
    launcher's command builder (`argv`), so an option is declared once.

    Args:
        n_trials: at most this many trials from this worker (None: until the budget is used).
        device: overrides the study file's device.
        checkpoint_dir: directory of per-trial checkpoints (shared by all workers).
        progress: show each trial's progress (a bar inside each epoch on a terminal, one
            line per epoch in a log).
        artifacts: directory of the Optuna artifact store the trials' figures go to
            (shared with the dashboard; None: no artifacts).
        heartbeat_interval: seconds between heartbeats (None: off); SQLite/PostgreSQL only.
        grace_period: seconds without a heartbeat before a trial counts as dead
            (default: 3 × heartbeat_interval).
        max_retries: how often a dead or interrupted trial is re-queued.
        storage_wait: seconds a storage call may wait for an unreachable database.
        threads: torch threads (None: HLS_TUNE_THREADS, else this worker's share of the
            host's cores among the workers registered there, re-checked between epochs).
    """

    n_trials: int | None = None
    device: str | None = None
    checkpoint_dir: str | Path | None = DEFAULT_CHECKPOINT_DIR
    progress: bool = True
    artifacts: str | Path | None = None
    heartbeat_interval: int | None = DEFAULT_HEARTBEAT_INTERVAL_S
    grace_period: int | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    storage_wait: float = DEFAULT_MAX_WAIT_S
    threads: int | None = None

    def argv(self) -> list[str]:
        """The `hls-tune worker` options that run a worker with these options."""
        args: list[str] = []
        if self.n_trials is not None:
            args += ["--n-trials", str(self.n_trials)]
        if self.device is not None:
            args += ["--device", self.device]
        if self.checkpoint_dir is not None:
            args += ["--checkpoint-dir", str(self.checkpoint_dir)]
        args.append("--progress" if self.progress else "--no-progress")
        args += ["--artifacts", str(self.artifacts)] if self.artifacts else ["--no-artifacts"]
        if self.heartbeat_interval is not None:
            args += ["--heartbeat-interval", str(self.heartbeat_interval)]
        if self.grace_period is not None:
            args += ["--grace-period", str(self.grace_period)]
        args += ["--max-retries", str(self.max_retries)]
        if self.threads is not None:
            args += ["--threads", str(self.threads)]
        return args
