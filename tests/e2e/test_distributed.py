"""Crash-proof studies with real worker processes: SIGTERM, a database restart, eight
workers on one file, out-of-memory trials (kill -9 on every storage: test_recovery.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.support.helpers import hls_tune, start_hls_tune, write_study

pytestmark = pytest.mark.slow


def _study(url: str, name: str = "tiny") -> optuna.Study:
    from hls_tune.study.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url))


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class _Output:
    """What a process prints (stdout with stderr), collected line by line by a thread, so a
    test can wait for a line while the process runs."""

    def __init__(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        self.process, self.lines = process, []
        self._reader = threading.Thread(
            target=lambda: self.lines.extend(iter(process.stdout.readline, "")), daemon=True
        )
        self._reader.start()

    def says(self, text: str) -> bool:
        return text in "".join(self.lines)

    def finish(self, timeout: float = 500) -> str:
        """Waits for the process to exit (killing it after `timeout`); all it printed."""
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(timeout=30)
        return "".join(self.lines)


def _create(tmp_path: Path, url: str, **study) -> None:
    path = write_study(tmp_path / "study.toml", **study)
    created = hls_tune("study", "create", str(path), "--storage", url)
    assert created.returncode == 0, created.stderr


def _finished_states(study: optuna.Study) -> list[TrialState]:
    return [t.state for t in study.get_trials()]


def test_sigterm_to_the_launcher_stops_workers_and_leaves_no_running_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    _create(tmp_path, url, n_trials=2, epochs=3)  # one trial per worker
    ckpt = tmp_path / "ckpt"
    launcher = start_hls_tune(
        "launch",
        "--study",
        "tiny",
        "--storage",
        url,
        "--cpus",
        "2",
        "--checkpoint-dir",
        str(ckpt),
        "--grace",
        "60",
    )
    _wait_for(lambda: len(list(ckpt.rglob("trial-*.pt"))) >= 1, 300, "a running trial")
    launcher.send_signal(signal.SIGTERM)
    output, _ = launcher.communicate(timeout=90)
    assert launcher.returncode == 128 + signal.SIGTERM, output
    study = _study(url)
    states = _finished_states(study)
    assert TrialState.RUNNING not in states, output
    handed_back = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert handed_back and all("signal" in t.user_attrs.get("fail_reason", "") for t in handed_back)
    assert "handed back for a retry" in output

    finisher = hls_tune(
        "worker",
        "--study",
        "tiny",
        "--storage",
        url,
        "--no-progress",
        "--checkpoint-dir",
        str(ckpt),
    )
    assert finisher.returncode == 0, finisher.stderr
    trials = _study(url).get_trials()
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 2
    assert any(t.user_attrs.get("resumed_from_epoch", 0) > 0 for t in done)


@pytest.mark.postgres
def test_workers_survive_a_postgres_restart_without_losing_a_reported_value(
    tmp_path, restartable_postgres_server, restartable_postgres_url
):
    url = restartable_postgres_url
    _create(tmp_path, url, n_trials=4, epochs=3)
    ckpt = tmp_path / "ckpt"
    workers = [
        start_hls_tune(
            "worker",
            "--study",
            "tiny",
            "--no-progress",
            "--checkpoint-dir",
            str(ckpt),
            HLS_TUNE_STORAGE=url,
        )
        for _ in range(2)
    ]
    logs = [_Output(w) for w in workers]
    _wait_for(lambda: any(ckpt.rglob("trial-*.pt")), 300, "a running trial")
    restartable_postgres_server.stop()
    try:  # the server stays down until a worker has met the outage (its next storage call)
        _wait_for(lambda: any(log.says("storage unreachable") for log in logs), 120,
                  "a worker to find the storage unreachable")  # fmt: skip
    finally:
        restartable_postgres_server.start()
    outputs = [log.finish() for log in logs]
    assert all(w.returncode == 0 for w in workers), outputs
    assert any("storage unreachable" in out for out in outputs), outputs
    trials = _study(url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    for trial in trials:
        assert sorted(trial.intermediate_values) == [0, 1, 2], trial.number


@pytest.mark.parametrize("scheme", ["sqlite", "journal"])
def test_eight_cpu_workers_share_one_file_without_storage_errors(tmp_path, scheme):
    target = tmp_path / ("s.db" if scheme == "sqlite" else "s.log")
    url = f"sqlite:///{target}" if scheme == "sqlite" else f"journal:{target}"
    _create(tmp_path, url, n_trials=8, epochs=1)
    result = hls_tune(
        "launch",
        "--study",
        "tiny",
        "--storage",
        url,
        "--cpus",
        "8",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        timeout=500,  # below pytest's 600 s, so a hang fails with the launcher's output
    )
    assert result.returncode == 0, result.stdout + result.stderr
    trials = _study(url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
    lowered = result.stdout.lower()
    for bad in ("database is locked", "traceback", "storage unreachable", "error"):
        assert bad not in lowered, result.stdout


def test_an_out_of_memory_trial_fails_with_its_reason_and_the_worker_goes_on(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    # 100k channels: the first 1×1 preprocessing conv alone asks for ~480 GB.
    path = write_study(tmp_path / "study.toml", n_trials=2, epochs=1)
    path.write_text(path.read_text().replace("channels = 4", "channels = 100000"))
    assert hls_tune("study", "create", str(path), "--storage", url).returncode == 0
    result = hls_tune(
        "worker",
        "--study",
        "tiny",
        "--storage",
        url,
        "--no-progress",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
    )
    assert result.returncode == 0, result.stderr
    trials = _study(url).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert all("out of memory" in t.user_attrs["fail_reason"] for t in trials)
    assert result.stderr.count("failed: out of memory") == 2


def test_worker_exits_cleanly_on_sigterm_between_and_during_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    _create(tmp_path, url, n_trials=2, epochs=4)
    ckpt = tmp_path / "ckpt"
    worker = start_hls_tune(
        "worker",
        "--study",
        "tiny",
        "--storage",
        url,
        "--no-progress",
        "--checkpoint-dir",
        str(ckpt),
    )
    _wait_for(lambda: any(ckpt.rglob("trial-0.pt")), 300, "the first checkpoint")
    os.kill(worker.pid, signal.SIGTERM)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert "trial 0 interrupted (search interrupted at epoch" in output
    assert "handed back for a retry" in output
    states = _finished_states(_study(url))
    # trial 0 handed back (FAIL) and its retry queued after trial 1, which was never started
    assert states == [TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]
    assert _study(url).get_trials()[2].system_attrs.get("failed_trial") == 0


def test_workers_reach_the_study_through_the_grpc_storage_proxy(tmp_path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db_url = f"sqlite:///{tmp_path / 's.db'}"
    _create(tmp_path, db_url, n_trials=1, epochs=1)
    proxy = start_hls_tune("storage-proxy", "--storage", db_url, "--port", str(port))

    def listening() -> bool:
        with socket.socket() as client:
            return client.connect_ex(("127.0.0.1", port)) == 0

    try:
        _wait_for(listening, 120, "the proxy to listen")
        grpc_url = f"grpc://127.0.0.1:{port}"
        result = hls_tune(
            "worker",
            "--study",
            "tiny",
            "--storage",
            grpc_url,
            "--no-progress",
            "--checkpoint-dir",
            str(tmp_path / "ck"),
        )
        assert result.returncode == 0, result.stderr
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    assert [t.state for t in _study(db_url).get_trials()] == [TrialState.COMPLETE]
