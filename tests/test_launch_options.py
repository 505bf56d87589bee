"""`launch --gpus` / `--max-restarts` and `worker --max-retries`, with real processes."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import hls_tune, start_hls_tune, write_study

DEADLINE_S = 300.0


def _create_study(tmp_path: Path, **study: object) -> str:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study_file = write_study(tmp_path / "s.toml", **study)  # type: ignore[arg-type]
    created = hls_tune("study", "create", str(study_file), "--storage", url)
    assert created.returncode == 0, created.stderr
    return url


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="tiny", storage=url).get_trials(deepcopy=False)


@pytest.mark.parametrize(
    "gpus",
    ["", " , ", "-1", "0,-1", "a", "1.5", "0;1", "0,0", "1,0,01", "٣"],
)
def test_launch_rejects_a_bad_gpus_list_in_one_line_and_writes_nothing(
    tmp_path: Path, gpus: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    result = hls_tune(
        "launch",
        "--study",
        "tiny",
        "--storage",
        f"sqlite:///{work / 'study.db'}",
        "--gpus",
        gpus,
        "--checkpoint-dir",
        str(work / "checkpoints"),
        "--artifacts",
        str(work / "artifacts"),
        cwd=work,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: --gpus "), lines[0]
    assert repr(gpus) in lines[0]
    assert list(work.iterdir()) == []


def test_launch_restarts_a_dying_worker_at_most_max_restarts_times(tmp_path: Path) -> None:
    """GPUs 98 and 99 do not exist (here or on a GPU machine), so each worker dies at start;
    the list's spaces, leading zero and trailing comma are accepted."""
    url = _create_study(tmp_path, n_trials=3)
    result = hls_tune(
        "launch",
        "--study",
        "tiny",
        "--storage",
        url,
        "--gpus",
        " 98, 099 ,",
        "--max-restarts",
        "2",
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        "--no-artifacts",
        cwd=tmp_path,
        timeout=DEADLINE_S,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    for slot in ("gpu98", "gpu99"):
        lines = [line for line in output.splitlines() if line.startswith(f"[{slot}] ")]
        died = [line for line in lines if "no CUDA device is available" in line]
        assert len(died) == 3, output  # the first start and two restarts
        restarts = [line for line in lines if "; restart " in line]
        assert [line.split("; restart ")[1] for line in restarts] == ["1/2", "2/2"], output
        assert f"[{slot}] exited with 2; no restart left (2/2 used)" in lines, output
    # A worker that cannot use its device claims no trial: the budget stays queued.
    assert [t.state for t in _trials(url)] == [TrialState.WAITING] * 3


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
