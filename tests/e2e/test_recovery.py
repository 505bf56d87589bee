"""`kill -9` of a worker mid-trial, on every storage that can recover from it: the trial is
failed, re-queued and resumed from the last epoch checkpoint, so at most the epoch that was
running when the worker died is computed again."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.support.helpers import hls_tune, start_hls_tune, write_study

pytestmark = pytest.mark.slow

FAST_HEARTBEAT = ("--heartbeat-interval", "1", "--grace-period", "3")
EPOCHS = 5


def _checkpoint_epoch(path: Path) -> int | None:
    """The last epoch saved in a trial's checkpoint (written atomically), None if none yet."""
    from hls_tune.engine.checkpoint import load_checkpoint
    from hls_tune.errors import ConfigError

    try:
        return int(load_checkpoint(path)["epoch"])
    except ConfigError:
        if path.exists():  # a checkpoint that exists must load: it is written atomically
            raise
        return None  # not written yet (or already removed at the trial's end)


def _kill_after_checkpoint(worker, checkpoint: Path, epoch: int, timeout: float = 300) -> int:
    """SIGKILLs `worker` as soon as its checkpoint holds `epoch` (or later); returns the epoch
    of the checkpoint seen right before the kill."""
    deadline = time.monotonic() + timeout
    while True:
        seen = _checkpoint_epoch(checkpoint)
        if seen is not None and seen >= epoch:
            worker.kill()  # SIGKILL: no handler, no cleanup
            worker.wait()
            return seen
        if worker.poll() is not None:
            raise AssertionError(f"the worker exited first:\n{worker.communicate()[0]}")
        if time.monotonic() > deadline:
            worker.kill()
            raise AssertionError(f"timed out waiting for the checkpoint of epoch {epoch}")
        time.sleep(0.02)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 's.db'}"
    return request.getfixturevalue("postgres_url")


def test_kill_9_recomputes_at_most_the_epoch_that_was_running(tmp_path, storage_url):
    from hls_tune.study.storage import open_storage

    path = write_study(tmp_path / "study.toml", n_trials=1, epochs=EPOCHS)
    # The URL travels in the environment, as the README tells PostgreSQL users to do.
    env = {"HLS_TUNE_STORAGE": storage_url}
    created = hls_tune("study", "create", str(path), cwd=tmp_path, **env)
    assert created.returncode == 0, created.stderr
    ckpt = tmp_path / "ckpt"
    worker_args = ("worker", "--study", "tiny", "--no-progress", "--checkpoint-dir", str(ckpt))
    victim = start_hls_tune(*worker_args, *FAST_HEARTBEAT, cwd=tmp_path, **env)
    killed_after = _kill_after_checkpoint(victim, ckpt / "tiny" / "trial-0.pt", epoch=1)

    study = optuna.load_study(study_name="tiny", storage=open_storage(storage_url))
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING]

    survivor = hls_tune(*worker_args, *FAST_HEARTBEAT, cwd=tmp_path, **env)
    assert survivor.returncode == 0, survivor.stderr
    trials = optuna.load_study(study_name="tiny", storage=open_storage(storage_url)).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE], survivor.stderr
    retry = trials[1]
    assert retry.system_attrs.get("failed_trial") == 0
    assert retry.params == trials[0].params
    # Every epoch up to the last checkpoint was kept: the retry started after it.
    resumed = retry.user_attrs.get("resumed_from_epoch")
    assert resumed is not None and resumed >= killed_after + 1, (resumed, killed_after)
    # and the curve has no hole: the kept epochs were re-reported, the rest measured.
    assert sorted(retry.intermediate_values) == list(range(EPOCHS))
    assert retry.user_attrs["epochs_run"] == EPOCHS


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()] if children.exists() else []


def test_launch_on_a_journal_hands_back_the_trial_of_a_worker_killed_with_9(tmp_path):
    """Optuna's journal storage has no heartbeat, so no other worker can tell that a trial's
    worker died; the launcher, whose child the worker is, can."""
    import os
    import signal

    from hls_tune.study.storage import open_storage

    url = f"journal:{tmp_path / 's.log'}"
    path = write_study(tmp_path / "study.toml", n_trials=1, epochs=EPOCHS)
    created = hls_tune("study", "create", str(path), cwd=tmp_path, HLS_TUNE_STORAGE=url)
    assert created.returncode == 0, created.stderr
    ckpt = tmp_path / "ckpt"
    launcher = start_hls_tune(
        "launch", "--study", "tiny", "--cpus", "1", "--checkpoint-dir", str(ckpt),
        cwd=tmp_path, HLS_TUNE_STORAGE=url,
    )  # fmt: skip
    try:
        checkpoint = ckpt / "tiny" / "trial-0.pt"
        deadline = time.monotonic() + 300
        while (seen := _checkpoint_epoch(checkpoint)) is None or seen < 1:
            assert launcher.poll() is None, launcher.communicate()[0]
            assert time.monotonic() < deadline, "timed out waiting for the checkpoint of epoch 1"
            time.sleep(0.02)
        (worker,) = _children(launcher.pid)
        os.kill(worker, signal.SIGKILL)
        output, _ = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, output
    assert "[cpu0] trial 0 handed back for a retry" in output, output
    assert "restart 1/3" in output, output
    trials = optuna.load_study(study_name="tiny", storage=open_storage(url)).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE], output
    retry = trials[1]
    assert retry.system_attrs.get("failed_trial") == 0
    resumed = retry.user_attrs.get("resumed_from_epoch")
    assert resumed is not None and resumed >= seen + 1, (resumed, seen)
    assert sorted(retry.intermediate_values) == list(range(EPOCHS))
