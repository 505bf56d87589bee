"""Launch N worker processes (K per GPU, an explicit GPU slot list, or CPU workers).

Each worker is a direct child running `python -m hls_tune worker`, with
CUDA_VISIBLE_DEVICES set to its GPU; every worker sizes its torch threads to its share of
the host's cores (`hls_tune.engine.threads`); its output lines are prefixed with its slot. A worker
that dies while the budget is not used up is restarted (bounded); SIGINT/SIGTERM are
forwarded and the launcher waits for the workers to stop gracefully.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import optuna

from hls_tune.errors import ConfigError
from hls_tune.study.storage import open_storage, redact
from hls_tune.study.study import load_study, state_counts, trials_done, work_left
from hls_tune.study.worker import (
    DEFAULT_MAX_RETRIES,
    WORKER_TAG_ENV,
    WorkerOptions,
    hand_back_trials_of,
)


@dataclass(frozen=True)
class Slot:
    """One worker slot: a label, its device and its environment additions."""

    label: str
    device: str
    env: dict[str, str] = field(default_factory=dict)


def parse_gpus(text: str, workers_per_gpu: int = 1) -> list[str]:
    """The GPU id of every worker slot from `--gpus` and `--workers-per-gpu`.

    `0,1` with `workers_per_gpu=2` gives `0,0,1,1`; a list that repeats an id (`0,0,1`) is
    the explicit slot list itself (one worker per entry) and takes no `workers_per_gpu`.
    Spaces, leading zeros and empty entries are ignored.

    Raises:
        ConfigError: the list is not GPU ids, or repeats ids while workers_per_gpu > 1.
    """
    ids = [g.strip() for g in text.split(",") if g.strip()]
    if not ids or not all(g.isascii() and g.isdigit() for g in ids):
        raise ConfigError(f"--gpus must be comma-separated GPU ids like 0,1,2 but got {text!r}.")
    ids = [str(int(g)) for g in ids]  # 00 and 0 are the same GPU
    if len(set(ids)) < len(ids):
        if workers_per_gpu > 1:
            raise ConfigError(
                f"--gpus {text!r} repeats a GPU id, which makes it the list of worker slots; "
                f"give either such a list or --workers-per-gpu {workers_per_gpu}, not both."
            )
        return ids
    return [gpu for gpu in ids for _ in range(workers_per_gpu)]


def gpu_slots(gpus: list[str], workers_per_gpu: int = 1) -> list[Slot]:
    """One slot per entry of `gpus` (each repeated `workers_per_gpu` times); each slot's
    worker sees only its GPU (as cuda:0). GPUs with several workers label them gpuN.K."""
    ids = [gpu for gpu in gpus for _ in range(workers_per_gpu)]
    slots = []
    for i, gpu in enumerate(ids):
        label = f"gpu{gpu}.{ids[:i].count(gpu)}" if ids.count(gpu) > 1 else f"gpu{gpu}"
        slots.append(Slot(label, "cuda:0", {"CUDA_VISIBLE_DEVICES": gpu}))
    return slots


def cpu_slots(n: int) -> list[Slot]:
    """N CPU workers; each sizes its torch threads to its share of the host's cores
    (`hls_tune.engine.threads`), counting every other worker on the host too."""
    return [Slot(f"cpu{i}", "cpu", {"CUDA_VISIBLE_DEVICES": ""}) for i in range(n)]


def worker_process(
    url: str,
    study: str,
    slot: Slot,
    options: WorkerOptions | None = None,
    *,
    environ: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment `launch` starts a slot's worker with: `options` on the
    slot's device, without progress bars (the launcher prefixes each worker's lines).

    The storage URL travels in HLS_TUNE_STORAGE, never argv.
    """
    env = dict(os.environ if environ is None else environ)
    env |= {"HLS_TUNE_STORAGE": url, "PYTHONUNBUFFERED": "1"} | slot.env
    return worker_command(study, slot, options or WorkerOptions()), env


def worker_command(study: str, slot: Slot, options: WorkerOptions) -> list[str]:
    """`python -m hls_tune worker` for `study` on `slot` with `options`."""
    options = dataclasses.replace(options, device=slot.device, progress=False)
    return [sys.executable, "-m", "hls_tune", "worker", "--study", study, *options.argv()]


def _pump(stream, prefix: str, out: Callable[[str], None]) -> None:
    for line in iter(stream.readline, ""):
        out(f"[{prefix}] {redact(line.rstrip())}")
    stream.close()


def progress_line(study: optuna.Study, budget: int) -> str:
    """complete / pruned / failed / running counts and the best value so far."""
    counts = state_counts(study)
    try:
        best = f"{study.best_value:.4f}"
    except (ValueError, RuntimeError):  # no complete trial; a multi-objective study
        best = "-"
    return (
        f"progress {trials_done(study)}/{budget}: {counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['fail']} failed, {counts['running']} running; "
        f"best {best}"
    )


def launch(
    url: str,
    study_name: str,
    slots: list[Slot],
    options: WorkerOptions | None = None,
    *,
    n_trials: int | None = None,
    max_restarts: int = 3,
    grace_seconds: float = 60.0,
    poll_seconds: float = 5.0,
    out: Callable[[str], None] | None = None,
) -> int:
    """Runs one worker per slot until the study budget (or `n_trials` in total) is done.

    Args:
        url: storage URL, passed to the workers through HLS_TUNE_STORAGE (never argv).
        study_name: the study.
        slots: worker slots.
        options: every worker's options (checkpoint and artifact directories, retries...);
            the device is the slot's and the trial count this launch's share.
        n_trials: trials this launch finishes in total, split across the slots.
        max_restarts: restarts per slot of a worker that died.
        grace_seconds: how long to wait for workers after forwarding a signal.
        poll_seconds: how often the aggregate progress line is printed.
        out: line printer (default: stdout).

    Returns:
        0 when every worker finished cleanly, 1 otherwise, 130/143 after a signal.
    """
    launcher = _Launcher(url, study_name, slots, options or WorkerOptions(), n_trials, out)
    previous = {s: signal.signal(s, launcher.forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i in range(len(slots)):
            launcher.start(i)
        launcher.watch(max_restarts, grace_seconds, poll_seconds)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    launcher.say_progress()
    if launcher.signum:
        return 128 + launcher.signum
    return launcher.status


class _Launcher:
    """The worker processes of one `launch` (its only user)."""

    def __init__(
        self,
        url: str,
        study_name: str,
        slots: list[Slot],
        options: WorkerOptions,
        n_trials: int | None,
        out: Callable[[str], None] | None,
    ) -> None:
        self.url, self.study_name, self.slots, self.options = url, study_name, slots, options
        self.say = out or (lambda line: print(line, flush=True))
        loaded = load_study(url, study_name, storage=open_storage(url))
        self.study, self.budget = loaded.study, loaded.study_file.study.n_trials
        self.shares: list[int | None] = [None] * len(slots)
        if n_trials is not None:
            base, extra = divmod(n_trials, len(slots))
            self.shares = [base + (1 if i < extra else 0) for i in range(len(slots))]
        self.procs: dict[int, subprocess.Popen] = {}
        self.restarts = [0] * len(slots)
        self.signum = 0
        self.status = 0
        # Journal and gRPC storages have no heartbeat: the launcher hands back the trial of
        # a worker it saw die, found by the tag the worker stored on it.
        self.recover = url.split(":", 1)[0].lower() in ("journal", "grpc")
        self.tags = [""] * len(slots)
        self.last_line, self.last_said = "", time.monotonic()

    def start(self, i: int) -> None:
        """Starts slot `i`'s worker (none when its share of `n_trials` is 0)."""
        if self.shares[i] == 0:
            return
        slot = self.slots[i]
        self.tags[i] = f"{socket.gethostname()}:{os.getpid()}:{slot.label}:{uuid.uuid4().hex}"
        options = dataclasses.replace(self.options, n_trials=self.shares[i])
        argv, env = worker_process(self.url, self.study_name, slot, options)
        proc = subprocess.Popen(
            argv,
            env=env | {WORKER_TAG_ENV: self.tags[i]},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(
            target=_pump, args=(proc.stdout, slot.label, self.say), daemon=True
        ).start()
        self.procs[i] = proc

    def forward(self, signum: int, _frame: object) -> None:
        """Forwards SIGINT/SIGTERM to every running worker."""
        self.signum = signum
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    def watch(self, max_restarts: int, grace_seconds: float, poll_seconds: float) -> None:
        """Waits for the workers, restarting dead ones, until all have ended."""
        last_poll = time.monotonic()
        while self.procs:
            time.sleep(0.2)
            for i, proc in list(self.procs.items()):
                code = proc.poll()
                if code is not None:
                    del self.procs[i]
                    self.ended(i, code, max_restarts)
            if self.signum:
                self.wait_or_kill(grace_seconds)
                return
            if time.monotonic() - last_poll >= poll_seconds:
                last_poll = time.monotonic()
                self.say_progress(every=10 * poll_seconds)

    def ended(self, i: int, code: int, max_restarts: int) -> None:
        """Slot `i`'s worker exited with `code`: hand back its trial, restart it or say why
        not."""
        label = self.slots[i].label
        if code != 0 and self.recover:
            for number in hand_back_trials_of(self.study, self.tags[i], DEFAULT_MAX_RETRIES):
                self.say(f"[{label}] trial {number} handed back for a retry")
        if code == 0 or self.signum:
            return
        study_done = not work_left(self.study)
        if not study_done and self.restarts[i] < max_restarts:
            self.restarts[i] += 1
            self.say(f"[{label}] exited with {code}; restart {self.restarts[i]}/{max_restarts}")
            self.start(i)
            return
        why = (
            "the study has no work left"
            if study_done
            else f"no restart left ({self.restarts[i]}/{max_restarts} used)"
        )
        self.say(f"[{label}] exited with {code}; {why}")
        self.status = 1

    def wait_or_kill(self, grace_seconds: float) -> None:
        """After a signal: waits up to `grace_seconds` for the workers, then kills them."""
        deadline = time.monotonic() + grace_seconds
        while any(p.poll() is None for p in self.procs.values()):
            if time.monotonic() > deadline:
                for p in self.procs.values():
                    p.kill()
                return
            time.sleep(0.2)

    def say_progress(self, *, every: float | None = None) -> None:
        """The progress line, when it changed (or `every` seconds passed since the last)."""
        line = progress_line(self.study, self.budget)
        stale = every is not None and time.monotonic() - self.last_said >= every
        if line != self.last_line or stale:
            self.say(line)
            self.last_line, self.last_said = line, time.monotonic()
