"""hls_tune/study/worker.py: trials claimed within the budget, retries first, handed back."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hls_tune.study.config import load_study_file
from hls_tune.study.storage import open_storage
from hls_tune.study.study import create_study, trials_done, work_left
from hls_tune.study.worker import _NothingQueued, open_worker_storage
from tests.support.helpers import hls_tune, start_hls_tune, write_study
from tests.support.tiny_study import _create_study, _trials

BUDGET = 12
CLAIMERS = 4


def _claim_all(url: str, name: str) -> list[list[int]]:
    """CLAIMERS threads, each with its own storage (own connections), claim trials in
    lock-step until nothing is queued; returns the trial numbers each one claimed."""
    studies = [
        optuna.load_study(study_name=name, storage=open_worker_storage(url))
        for _ in range(CLAIMERS)
    ]
    barrier = threading.Barrier(CLAIMERS)
    claimed: list[list[int]] = [[] for _ in range(CLAIMERS)]
    errors: list[BaseException] = []

    def claim(i: int) -> None:
        study = studies[i]
        try:
            while True:
                barrier.wait(timeout=60)  # all claimers ask at the same moment
                try:
                    trial = study.ask()
                except _NothingQueued:
                    barrier.abort()
                    return
                claimed[i].append(trial.number)
                study.tell(trial, 0.5)
        except threading.BrokenBarrierError:
            return
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(CLAIMERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return claimed


def _check_budget_kept(url: str, tmp_path: Path) -> None:
    study_file = load_study_file(write_study(tmp_path / "s.toml", n_trials=BUDGET))
    name, created = create_study(url, study_file)
    assert created
    claimed = _claim_all(url, name)
    numbers = [n for one in claimed for n in one]
    assert sorted(numbers) == list(range(BUDGET)), f"claimed twice or beyond the budget: {claimed}"
    final = optuna.load_study(study_name=name, storage=open_worker_storage(url))
    assert len(final.get_trials()) == BUDGET
    assert trials_done(final) == BUDGET and not work_left(final)


def test_a_worker_never_creates_a_trial_beyond_the_queue(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    name, _ = create_study(url, load_study_file(write_study(tmp_path / "s.toml", n_trials=1)))
    study = optuna.load_study(study_name=name, storage=open_worker_storage(url))
    study.tell(study.ask(), 0.1)
    with pytest.raises(_NothingQueued):
        study.ask()
    assert len(study.get_trials()) == 1


def test_concurrent_claims_on_sqlite_never_share_or_exceed_the_budget(tmp_path):
    _check_budget_kept(f"sqlite:///{tmp_path / 's.db'}", tmp_path)


def test_concurrent_claims_on_the_journal_file_never_share_or_exceed_the_budget(tmp_path):
    _check_budget_kept(f"journal:{tmp_path / 's.log'}", tmp_path)


def test_concurrent_claims_on_postgres_never_share_or_exceed_the_budget(tmp_path, postgres_url):
    _check_budget_kept(postgres_url, tmp_path)


DEADLINE_S = 300.0
HEARTBEAT = ("--heartbeat-interval", "1", "--grace-period", "2")


def _wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _states(url: str) -> list[TrialState]:
    study = optuna.load_study(study_name="tiny", storage=open_storage(url))
    return [t.state for t in study.get_trials(deepcopy=False)]


@pytest.mark.slow  # real processes, end to end
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_killed_trials_retry_runs_before_the_fresh_queued_trials(tmp_path, backend, request):
    url = (
        f"sqlite:///{tmp_path / 's.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    study_file = write_study(tmp_path / "s.toml", n_trials=3, epochs=3)
    created = hls_tune("study", "create", str(study_file), "--storage", url)
    assert created.returncode == 0, created.stderr
    worker = ("worker", "--study", "tiny", "--storage", url, "--no-progress", "--no-artifacts")
    checkpoints = ("--checkpoint-dir", str(tmp_path / "ckpt"))
    victim = start_hls_tune(*worker, *checkpoints, *HEARTBEAT, cwd=tmp_path)
    try:
        # its first epoch's checkpoint: trial 0 runs and its heartbeat has been recorded
        _wait_for(lambda: any((tmp_path / "ckpt").rglob("trial-0.pt")), "trial 0's checkpoint")
    finally:
        victim.kill()  # SIGKILL during trial 0: no handler, no cleanup
        victim.wait()
    assert _states(url) == [TrialState.RUNNING, TrialState.WAITING, TrialState.WAITING]

    # Wait until trial 0's heartbeat is older than the grace period, so that the next
    # worker finds it dead at its first check and queues its retry (trial 3) behind the
    # fresh trials 1 and 2.
    watcher = open_storage(url, heartbeat_interval=1, grace_period=2)
    study_id = watcher.get_study_id_from_name("tiny")
    _wait_for(lambda: watcher._get_stale_trial_ids(study_id), "trial 0's heartbeat to go stale")

    survivor = hls_tune(*worker, *checkpoints, *HEARTBEAT, "--n-trials", "1", cwd=tmp_path)
    assert survivor.returncode == 0, survivor.stderr
    trials = optuna.load_study(study_name="tiny", storage=open_storage(url)).get_trials()
    assert [t.state for t in trials[:3]] == [
        TrialState.FAIL,
        TrialState.WAITING,  # fresh trials are still queued:
        TrialState.WAITING,  # the one trial the survivor ran was ...
    ], survivor.stderr
    assert len(trials) == 4
    assert trials[3].system_attrs.get("failed_trial") == 0  # ... the retry of trial 0
    assert trials[3].state == TrialState.COMPLETE, survivor.stderr
    assert trials[3].user_attrs["resumed_from_epoch"] > 0  # from trial 0's checkpoint


def _wait_for_epoch(url: str, number: int, worker: subprocess.Popen) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
        trial = next((t for t in _trials(url) if t.number == number), None)
        if trial is not None and trial.intermediate_values:
            return
        time.sleep(0.1)
    raise AssertionError(f"trial {number} reported no epoch within {DEADLINE_S} s")


def _interrupt_worker(url: str, tmp_path: Path, number: int) -> str:
    """Starts a worker, waits until trial `number` finished an epoch, sends SIGTERM."""
    worker = start_hls_tune(
        "worker",
        "--study",
        "tiny",
        "--storage",
        url,
        "--max-retries",
        "1",
        "--no-progress",
        "--no-artifacts",
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        cwd=tmp_path,
    )
    try:
        _wait_for_epoch(url, number, worker)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=DEADLINE_S)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, output
    return output


@pytest.mark.slow
def test_worker_retries_an_interrupted_trial_at_most_max_retries_times(tmp_path: Path) -> None:
    # Thousands of one-step epochs: the trial is still running when the signal arrives.
    url = _create_study(tmp_path, n_trials=1, epochs=5000)

    output = _interrupt_worker(url, tmp_path, 0)
    assert "trial 0 interrupted" in output and "handed back for a retry" in output, output
    first, retry = _trials(url)
    assert first.state == TrialState.FAIL
    assert retry.state == TrialState.WAITING
    assert retry.system_attrs["failed_trial"] == 0  # Optuna's retry record
    assert retry.params == first.params

    output = _interrupt_worker(url, tmp_path, 1)  # the retry is interrupted in turn
    assert "trial 1 interrupted" in output and "retries are used up" in output, output
    trials = _trials(url)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL], output
    assert trials[1].system_attrs["retry_history"] == [0]
