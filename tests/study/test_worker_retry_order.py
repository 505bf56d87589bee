"""A crashed trial's retry runs before any fresh queued trial, with real worker processes, on
SQLite and PostgreSQL."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from hls_tune.study.storage import open_storage
from tests.support.helpers import hls_tune, start_hls_tune, write_study

pytestmark = pytest.mark.slow  # real processes, end to end

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
