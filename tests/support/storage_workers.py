"""Plain Optuna worker processes sharing one storage, started at the same moment."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading

import optuna
from optuna.trial import TrialState

from hls_tune.study.storage import STORAGE_ENV_VARS, open_storage
from tests.support.helpers import REPO_ROOT

# A worker process: opens the storage as `hls-tune launch` workers do (create=False), says
# "ready", waits for "go" on stdin so that all workers start optimizing at the same moment,
# then runs its trials.
WORKER_SCRIPT = """
import sys, time
import optuna
from hls_tune.study.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
url, n_trials = sys.argv[1], int(sys.argv[2])
study = optuna.load_study(study_name="shared", storage=open_storage(url))
print("ready", flush=True)
sys.stdin.readline()

def objective(trial):
    time.sleep(0.005)  # interleave the workers' writes
    return trial.suggest_float("x", 0.0, 1.0)

study.optimize(objective, n_trials=n_trials)
"""


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    """The first line `process` prints, waiting for it at most `timeout` seconds (a worker
    that hangs before saying "ready" fails the test instead of blocking it)."""
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no line from the worker within {timeout:.0f} s") from None


def _run_workers_concurrently(url: str, n_workers: int, n_trials: int) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    for name in STORAGE_ENV_VARS:
        env.pop(name, None)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, url, str(n_trials)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n_workers)
    ]
    try:
        for worker in workers:
            line = _first_line(worker, timeout=120)
            assert line.strip() == "ready", (line, worker.communicate(timeout=30)[1])
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        for worker in workers:
            _, stderr = worker.communicate(timeout=60)
            assert worker.returncode == 0, stderr
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def _trial_states(url: str) -> list[TrialState]:
    study = optuna.load_study(study_name="shared", storage=open_storage(url))
    return [trial.state for trial in study.get_trials(deepcopy=False)]
