"""One worker: load the study's stored settings, run trials until the global budget is used."""

from __future__ import annotations

import logging
import os
import resource
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hls_tune.engine.device import resolve_device
from hls_tune.engine.progress import RunProgress
from hls_tune.engine.threads import ThreadBudget
from hls_tune.errors import NonFiniteLossError, SearchInterrupted
from hls_tune.study import optuna_internals
from hls_tune.study.objective import FAIL_REASON_ATTR, Objective, TrialOutOfMemory
from hls_tune.study.resilient import RetryingStorage
from hls_tune.study.storage import open_storage, redact
from hls_tune.study.study import RETRIED_FROM_ATTR, load_study, trials_done, work_left
from hls_tune.study.worker_options import (  # noqa: F401  (the worker's options, re-exported)
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_HEARTBEAT_INTERVAL_S,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_WAIT_S,
    WorkerOptions,
)

# Set by `hls-tune launch` for each worker it starts; the worker stores it on every trial it
# runs, so that the launcher can hand back the trial of a worker that died (journal and gRPC
# storages have no heartbeat to do it).
WORKER_TAG_ENV = "HLS_TUNE_WORKER_TAG"
WORKER_TAG_ATTR = "hls_tune:worker"


@dataclass
class WorkerSummary:
    """What one worker did."""

    trials: int = 0
    states: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False

    def add(self, state: TrialState) -> None:
        self.trials += 1
        self.states[state.name.lower()] = self.states.get(state.name.lower(), 0) + 1


def retry_callback(max_retries: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Optuna's callback that re-queues a failed trial (same parameters) as WAITING."""
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    cls = cls or optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=max_retries)


class _StopFlag:
    """Set by SIGTERM/SIGINT: the running trial stops at its next step and is retried.

    A second signal raises KeyboardInterrupt at once.
    """

    def __init__(self) -> None:
        self.signum = 0

    def __call__(self) -> bool:
        return bool(self.signum)

    def handle(self, signum: int, _frame: object) -> None:
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum

    def install(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, self.handle) for s in (signal.SIGTERM, signal.SIGINT)}


class _NothingQueued(Exception):
    """No WAITING trial was left to claim: the study's budget is used."""


class ClaimingStorage(RetryingStorage):
    """A worker's storage: retries unreachable databases and never creates a fresh trial.

    `Study.ask` claims a WAITING trial (queued by `hls-tune study create`, or a retry queued
    by Optuna's callback) with an atomic state change, and creates a new trial only when none
    is left; here that creation raises instead. Workers that finish trials at the same moment
    therefore can never run more trials than the study's budget.

    `Study.ask` tries the WAITING trials in the order this storage lists them, so retries of
    crashed or interrupted trials (system attribute `failed_trial`) are listed first: any
    worker resumes a retry, with its checkpointed epochs, before it starts a fresh trial.
    """

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        trials = self._call("get_all_trials", study_id, deepcopy=deepcopy, states=states)
        if states is not None and TrialState.WAITING in states:
            # A new list: the inner storage's cache may hand out its own.
            return sorted(trials, key=lambda t: (RETRIED_FROM_ATTR not in t.system_attrs, t.number))
        return trials

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if template_trial is None:
            raise _NothingQueued
        return self._call("create_new_trial", study_id, template_trial)


def open_worker_storage(
    url: str,
    *,
    storage_wait: float = DEFAULT_MAX_WAIT_S,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> ClaimingStorage:
    """Opens `url` for a worker: Optuna's cache in front of SQL databases (as Optuna's own
    `get_storage` does), retries around it, and claim-only trial creation.

    `options` go to `open_storage` (heartbeat settings, connection pool).
    """
    inner = optuna.storages.get_storage(open_storage(url, **options))
    return ClaimingStorage(inner, max_wait=storage_wait, log=log)


def _tag(study: optuna.Study, started: list[int], number: int, tag: str) -> None:
    started.append(number)
    storage = optuna_internals.study_storage(study)
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        optuna_internals.study_id(study), number
    )
    storage.set_trial_system_attr(trial_id, WORKER_TAG_ATTR, tag)


def hand_back_trials_of(study: optuna.Study, tag: str, max_retries: int) -> list[int]:
    """Fails and re-queues the RUNNING trials of the dead worker tagged `tag`.

    Returns:
        Their numbers.
    """
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    numbers = [t.number for t in running if t.system_attrs.get(WORKER_TAG_ATTR) == tag]
    for number in numbers:
        _hand_back(study, number, max_retries)
    return numbers


def _hand_back(study: optuna.Study, trial_number: int, max_retries: int) -> bool:
    """Marks an interrupted trial FAIL (if Optuna has not already) and queues its retry.

    Returns whether a retry was queued (not when the trial used up its `max_retries`).
    """
    trials = study.get_trials(deepcopy=False)
    frozen = next(t for t in trials if t.number == trial_number)
    storage = optuna_internals.study_storage(study)
    if frozen.state == TrialState.RUNNING:
        storage.set_trial_state_values(optuna_internals.trial_id(frozen), state=TrialState.FAIL)
        frozen = storage.get_trial(optuna_internals.trial_id(frozen))
    retry_callback(max_retries)(study, frozen)
    return len(study.get_trials(deepcopy=False)) > len(trials)


def run_worker(
    url: str,
    study_name: str,
    options: WorkerOptions | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> WorkerSummary:
    """Runs trials of a study until its global budget (or `options.n_trials`) is used.

    Settings come from the storage (the study file stored at creation), never a local
    file. A diverged or out-of-memory trial ends as FAIL with its reason in the user
    attribute `fail_reason`; the worker goes on with the next trial. On SQLite and
    PostgreSQL a heartbeat marks the running trial; a trial whose worker died is failed
    by the next worker and re-queued (at most `max_retries` times), and its retry resumes
    from the dead trial's last epoch checkpoint. SIGTERM/SIGINT stop the running trial at
    its next step and hand it back the same way, then the worker exits cleanly. An
    unreachable database is waited for (up to `storage_wait` seconds per call).

    Args:
        url: storage URL.
        study_name: the study to work on.
        options: how the worker runs (`WorkerOptions`; default: its defaults).
        log: callable taking one line (default: print to stderr).
    """
    # Heartbeat and retry callbacks are marked experimental; the worker relies on them.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    worker = _Worker(url, study_name, options or WorkerOptions(), say)
    previous = worker.stop.install()
    try:
        worker.run()
    finally:
        worker.threads.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    summary = worker.summary
    summary.interrupted = bool(worker.stop())
    say(
        f"worker {'stopped' if summary.interrupted else 'done'}: {summary.trials} trials "
        f"({_format_states(summary.states)}); study budget "
        f"{trials_done(worker.study)}/{worker.budget} done"
    )
    return summary


class _Worker:
    """One worker's study, objective and loop (`run_worker` is its only user)."""

    def __init__(
        self, url: str, study_name: str, options: WorkerOptions, say: Callable[[str], None]
    ) -> None:
        self.options, self.say = options, say
        self.threads = ThreadBudget(options.threads)
        # Registered before the study loads (so other workers count this one at once); said
        # after it, so that a bad storage, study or device stays a one-line error.
        threads_line = self.threads.start()
        interval = options.heartbeat_interval
        self.heartbeat = url.startswith(("sqlite", "postgres")) and interval is not None
        storage = open_worker_storage(
            url,
            storage_wait=options.storage_wait,
            log=say,
            heartbeat_interval=interval if self.heartbeat else None,
            grace_period=(options.grace_period or 3 * interval) if self.heartbeat else None,
            failed_trial_callback=retry_callback(options.max_retries) if self.heartbeat else None,
        )
        loaded = load_study(url, study_name, storage=storage)
        self.study, study_file = loaded.study, loaded.study_file
        # An unusable device stops the worker here, before it claims a queued trial.
        self.device = resolve_device(options.device or study_file.base.device)
        say(threads_line)
        self.budget = study_file.study.n_trials
        self.stop = _StopFlag()
        self.objective = Objective(
            study_file,
            device=options.device,
            checkpoint_dir=options.checkpoint_dir,
            should_stop=self.should_stop,
            progress=_trial_progress if options.progress else None,
        )
        if options.artifacts is not None:
            from hls_tune.study.artifacts import open_artifact_store

            self.objective.artifact_store = open_artifact_store(options.artifacts)
        self.summary = WorkerSummary()
        self.tag = os.environ.get(WORKER_TAG_ENV, "")

    def should_stop(self) -> bool:
        # Workers that started or stopped on this host since: re-size between search steps.
        if line := self.threads.refresh(every=1.0):
            self.say(line)
        return self.stop()

    def run(self) -> None:
        """Claims and runs trials until the budget, `n_trials` or a signal ends it."""
        n_trials = self.options.n_trials
        while (n_trials is None or self.summary.trials < n_trials) and not self.stop():
            if self.heartbeat:
                # Dead workers' trials are failed and re-queued before the budget is counted.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(self.study)
            if not work_left(self.study, running=False):
                if self.heartbeat and work_left(self.study):
                    # Stay until running trials finish or go stale (then they are
                    # re-queued here), so a dead worker never leaves a RUNNING trial.
                    time.sleep(min(5.0, float(self.options.heartbeat_interval or 5)))
                    continue
                return
            if line := self.threads.refresh():
                self.say(line)
            if not self.run_one():
                return

    def run_one(self) -> bool:
        """Runs one trial; False when a signal interrupted it (the worker stops)."""
        study = self.study
        peak = _PeakMemory(self.device.type == "cuda")
        finished: list[FrozenTrial] = []
        started: list[int] = []
        self.objective.on_start = started.append
        if self.tag:
            self.objective.on_start = lambda number: _tag(study, started, number, self.tag)
        try:
            study.optimize(
                self.objective,
                n_trials=1,
                catch=(NonFiniteLossError, TrialOutOfMemory),
                gc_after_trial=False,
                callbacks=[lambda _study, frozen: finished.append(frozen)],
            )
        except _NothingQueued:
            return True  # another worker claimed the last queued trial first
        except (SearchInterrupted, KeyboardInterrupt) as exc:
            if started:
                self.hand_back(started[0], exc)
            return False
        for frozen in finished:
            self.summary.add(frozen.state)
            self.say(f"{_trial_line(frozen)}; {peak.line()}")
        return True

    def hand_back(self, number: int, exc: BaseException) -> None:
        """Queues the interrupted trial's retry (when it has retries left) and says so."""
        retries = self.options.max_retries
        if _hand_back(self.study, number, retries):
            self.say(f"trial {number} interrupted ({exc}); handed back for a retry")
        else:
            self.say(
                f"trial {number} interrupted ({exc}); not retried, its "
                f"retries are used up (--max-retries {retries})"
            )


def _trial_progress(number: int, total_epochs: int) -> RunProgress:
    """A trial's progress on stderr: a bar inside each epoch on a terminal, else one line
    per epoch."""
    return RunProgress(f"trial {number}", total_epochs)


class _PeakMemory:
    """The peak memory of one trial: CUDA memory allocated on a GPU, else the process's RSS.

    The RSS peak (`getrusage`) cannot be reset, so on the CPU it is the worker process's
    peak up to the end of the trial: the memory a worker needs.
    """

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        if cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()

    def line(self) -> str:
        if self.cuda:
            import torch

            return f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        return f"peak RSS {rss_kib / 1024:.0f} MiB"


def _format_states(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"


def _trial_line(trial: optuna.trial.FrozenTrial) -> str:
    state = trial.state.name.lower()
    if trial.state == TrialState.COMPLETE:
        values = ", ".join(f"{v:.4g}" for v in trial.values)
        return f"trial {trial.number} complete: value {values}"
    if trial.state == TrialState.FAIL:
        reason = trial.user_attrs.get(FAIL_REASON_ATTR, "see the worker log")
        return f"trial {trial.number} failed: {redact(str(reason))}"
    steps = len(trial.intermediate_values)
    return f"trial {trial.number} {state} after {steps} epochs"
