"""A worker's torch thread count: its share of the host's cores among the registered workers,
with real processes holding registrations; --threads / HLS_TUNE_THREADS win."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hls_tune.engine.threads import WorkerRegistry, thread_share
from tests.support.helpers import REPO_ROOT, cli_env, hls_tune, write_study

DEADLINE_S = 120.0

# A process that registers in the directory argv[1], says so, and holds the registration
# until its stdin closes (or it is killed).
HOLDER = """
import sys
from hls_tune.engine.threads import WorkerRegistry
registry = WorkerRegistry(sys.argv[1])
print(registry.register(), flush=True)
sys.stdin.read()
registry.close()
"""


@pytest.mark.parametrize(
    ("cores", "workers", "shares"),
    [
        (1, 1, [1]),
        (2, 1, [2]),
        (2, 2, [1, 1]),
        (2, 3, [1, 1, 1]),  # more workers than cores: one thread each, never zero
        (4, 1, [4]),
        (4, 2, [2, 2]),
        (4, 3, [2, 1, 1]),  # the shares add up to the cores: none idle, none oversubscribed
        (16, 3, [6, 5, 5]),
    ],
)
def test_thread_share_splits_the_cores_among_the_registered_workers(cores, workers, shares):
    assert [thread_share(cores, workers, rank) for rank in range(workers)] == shares


def _holder(directory: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=cli_env(),
    )
    assert process.stdout is not None
    name = process.stdout.readline().strip()  # waits for the registration itself
    assert name.endswith(".worker"), name
    return process, name


def _release(process: subprocess.Popen) -> None:
    if process.poll() is None:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=DEADLINE_S)


@pytest.mark.parametrize("cores", [2, 4, 16])
def test_registry_counts_live_worker_processes_and_removes_dead_ones(tmp_path, cores):
    directory = tmp_path / "workers"
    first, first_name = _holder(directory)
    second, _ = _holder(directory)
    try:
        with WorkerRegistry(directory) as me:  # the third and youngest worker
            assert me.share(cores) == (thread_share(cores, 3, 2), 3)
            _release(second)  # a worker that stops removes its own registration
            assert me.share(cores) == (thread_share(cores, 2, 1), 2)
            first.kill()  # SIGKILL: no cleanup, its file stays behind ...
            first.wait()
            assert (directory / first_name).exists()
            # ... but nobody holds its lock any more: it is removed, the worker is alone
            assert me.share(cores) == (cores, 1)
            assert not (directory / first_name).exists()
            # a file left with a dead PID and no lock (e.g. copied or from a crash) goes too
            stale = directory / f"{time.time_ns():020d}-999999999.worker"
            stale.write_text("999999999\n")
            assert me.live() == [me.name]
            assert not stale.exists()
        assert list(directory.glob("*.worker")) == []  # the context manager unregistered
    finally:
        for process in (first, second):
            _release(process)


def test_a_worker_sizes_its_threads_to_its_share_and_threads_set_by_hand_win(tmp_path):
    """Real `hls-tune worker` processes next to a registered holder process."""
    directory = tmp_path / "workers"
    url = f"sqlite:///{tmp_path / 's.db'}"
    study_file = write_study(tmp_path / "s.toml", n_trials=2, epochs=1)
    created = hls_tune("study", "create", str(study_file), "--storage", url)
    assert created.returncode == 0, created.stderr
    holder, _ = _holder(directory)
    cores = len(os.sched_getaffinity(0))
    env = cli_env(HLS_TUNE_WORKER_DIR=str(directory))
    env.pop("HLS_TUNE_THREADS")
    command = [sys.executable, "-m", "hls_tune", "worker", "--study", "tiny", "--storage", url]
    command += ["--no-progress", "--no-artifacts", "--n-trials", "1"]
    command += ["--checkpoint-dir", str(tmp_path / "ckpt")]
    try:
        automatic = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=DEADLINE_S
        )
        assert automatic.returncode == 0, automatic.stderr
        want = thread_share(cores, 2, 1)
        assert f"torch threads: {want} (2 workers on {cores} cores)" in automatic.stderr
        assert "peak RSS " in automatic.stderr  # the trial's line names its peak memory
        by_hand = subprocess.run(
            command,
            env=env | {"HLS_TUNE_THREADS": "3"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
        assert by_hand.returncode == 0, by_hand.stderr
        assert "torch threads: 3 (set by hand)" in by_hand.stderr
    finally:
        _release(holder)
    assert list(directory.glob("*.worker")) == []  # the workers unregistered on exit
