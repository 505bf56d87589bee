"""Launch N worker processes (K per GPU, an explicit GPU slot list, or CPU workers).

Each worker is a direct child running `python -m hls_tune worker`, with
CUDA_VISIBLE_DEVICES set to its GPU; every worker sizes its torch threads to its share of
the host's cores (`hls_tune.engine.threads`); its output lines are prefixed with its slot. A worker
that dies while the budget is not used up is restarted (bounded); SIGINT/SIGTERM are
forwarded and the launcher waits for the workers to stop gracefully.
"""

from __future__ import annotations

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
from hls_tune.study.worker import DEFAULT_MAX_RETRIES, WORKER_TAG_ENV, hand_back_trials_of


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
    *,
    n_trials: int | None = None,
    checkpoint_dir: str | None = None,
    artifacts: str | None = None,
    environ: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment `launch` starts a slot's worker with.

    The storage URL travels in HLS_TUNE_STORAGE, never argv.
    """
    env = dict(os.environ if environ is None else environ)
    env |= {"HLS_TUNE_STORAGE": url, "PYTHONUNBUFFERED": "1"} | slot.env
    return _worker_command(url, study, slot, n_trials, checkpoint_dir, artifacts), env


def _worker_command(
    url: str,
    study: str,
    slot: Slot,
    n_trials: int | None,
    checkpoint_dir: str | None,
    artifacts: str | None = None,
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "hls_tune",
        "worker",
        "--study",
        study,
        "--device",
        slot.device,
        "--no-progress",
    ]
    if n_trials is not None:
        command += ["--n-trials", str(n_trials)]
    if checkpoint_dir is not None:
        command += ["--checkpoint-dir", checkpoint_dir]
    command += ["--artifacts", artifacts] if artifacts is not None else ["--no-artifacts"]
    return command


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
    *,
    n_trials: int | None = None,
    checkpoint_dir: str | None = None,
    artifacts: str | None = None,
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
        n_trials: trials this launch finishes in total, split across the slots.
        checkpoint_dir: shared checkpoint directory.
        artifacts: shared artifact directory for the trials' figures (None: no artifacts).
        max_restarts: restarts per slot of a worker that died.
        grace_seconds: how long to wait for workers after forwarding a signal.
        poll_seconds: how often the aggregate progress line is printed.
        out: line printer (default: stdout).

    Returns:
        0 when every worker finished cleanly, 1 otherwise, 130/143 after a signal.
    """
    say = out or (lambda line: print(line, flush=True))
    loaded = load_study(url, study_name, storage=open_storage(url))
    study, budget = loaded.study, loaded.study_file.study.n_trials
    shares: list[int | None] = [None] * len(slots)
    if n_trials is not None:
        base, extra = divmod(n_trials, len(slots))
        shares = [base + (1 if i < extra else 0) for i in range(len(slots))]
    procs: dict[int, subprocess.Popen] = {}
    restarts = [0] * len(slots)
    stop = {"signal": 0}

    # Journal and gRPC storages have no heartbeat: the launcher hands back the trial of a
    # worker it saw die, found by the tag the worker stored on it.
    recover = url.split(":", 1)[0].lower() in ("journal", "grpc")
    tags = [""] * len(slots)

    def start(i: int) -> None:
        if shares[i] == 0:
            return
        tags[i] = f"{socket.gethostname()}:{os.getpid()}:{slots[i].label}:{uuid.uuid4().hex}"
        argv, env = worker_process(
            url,
            study_name,
            slots[i],
            n_trials=shares[i],
            checkpoint_dir=checkpoint_dir,
            artifacts=artifacts,
        )
        proc = subprocess.Popen(
            argv,
            env=env | {WORKER_TAG_ENV: tags[i]},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=_pump, args=(proc.stdout, slots[i].label, say), daemon=True).start()
        procs[i] = proc

    def forward(signum: int, _frame: object) -> None:
        stop["signal"] = signum
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    last_line = ""
    try:
        for i in range(len(slots)):
            start(i)
        last_poll = last_said = time.monotonic()
        while procs:
            time.sleep(0.2)
            for i, proc in list(procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                del procs[i]
                if code != 0 and recover:
                    for number in hand_back_trials_of(study, tags[i], DEFAULT_MAX_RETRIES):
                        say(f"[{slots[i].label}] trial {number} handed back for a retry")
                if code != 0 and not stop["signal"]:
                    study_done = not work_left(study)
                    if not study_done and restarts[i] < max_restarts:
                        restarts[i] += 1
                        say(
                            f"[{slots[i].label}] exited with {code}; restart "
                            f"{restarts[i]}/{max_restarts}"
                        )
                        start(i)
                        continue
                    why = (
                        "the study has no work left"
                        if study_done
                        else f"no restart left ({restarts[i]}/{max_restarts} used)"
                    )
                    say(f"[{slots[i].label}] exited with {code}; {why}")
                    status = 1
            if stop["signal"]:
                deadline = time.monotonic() + grace_seconds
                while any(p.poll() is None for p in procs.values()):
                    if time.monotonic() > deadline:
                        for p in procs.values():
                            p.kill()
                        break
                    time.sleep(0.2)
                break
            if time.monotonic() - last_poll >= poll_seconds:
                last_poll = time.monotonic()
                line = progress_line(study, budget)
                if line != last_line or time.monotonic() - last_said >= 10 * poll_seconds:
                    say(line)
                    last_line, last_said = line, time.monotonic()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if (line := progress_line(study, budget)) != last_line:
        say(line)
    if stop["signal"]:
        return 128 + stop["signal"]
    return status
