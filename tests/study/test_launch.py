"""hls_tune/study/launch.py: GPU slots, worker command lines, `launch` with real processes."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hls_tune.errors import ConfigError
from hls_tune.study.launch import cpu_slots, gpu_slots, parse_gpus, worker_command, worker_process
from hls_tune.study.worker import WorkerOptions
from tests.support.helpers import hls_tune
from tests.support.tiny_study import _create_study, _trials

DEADLINE_S = 300.0


@pytest.mark.parametrize(
    ("gpus", "workers_per_gpu", "ids"),
    [
        ("0,1", 1, ["0", "1"]),
        ("0,1", 2, ["0", "0", "1", "1"]),
        (" 1, 03 ,", 3, ["1", "1", "1", "3", "3", "3"]),
        ("0,0,1,1", 1, ["0", "0", "1", "1"]),  # an id given twice: the explicit slot list
        ("1,0,01", 1, ["1", "0", "1"]),  # 01 is GPU 1 again
    ],
)
def test_gpus_and_workers_per_gpu_give_one_slot_per_worker(gpus, workers_per_gpu, ids):
    assert parse_gpus(gpus, workers_per_gpu) == ids


def test_a_gpu_slot_list_with_workers_per_gpu_is_refused_naming_both():
    with pytest.raises(ConfigError, match=r"--gpus '0,0,1' repeats .* --workers-per-gpu 2"):
        parse_gpus("0,0,1", 2)


def test_each_gpu_slot_starts_its_worker_on_its_own_gpu():
    """The argv and environment launch gives each slot's worker process."""
    url = "postgresql://user:secret@db/hls"
    slots = gpu_slots(parse_gpus("0,1", 2))
    assert [s.label for s in slots] == ["gpu0.0", "gpu0.1", "gpu1.0", "gpu1.1"]
    started = [worker_process(url, "s", slot, environ={"PATH": "/bin"}) for slot in slots]
    visible = [env["CUDA_VISIBLE_DEVICES"] for _, env in started]
    assert visible == ["0", "0", "1", "1"]
    for argv, env in started:
        assert argv[argv.index("--device") + 1] == "cuda:0"  # the one GPU it sees
        assert argv[argv.index("--study") + 1] == "s"
        assert env["HLS_TUNE_STORAGE"] == url and not any("secret" in a for a in argv)
        assert "HLS_TUNE_THREADS" not in env  # each worker sizes its own threads
    assert [s.label for s in gpu_slots(parse_gpus("2,2,5"))] == ["gpu2.0", "gpu2.1", "gpu5"]


@pytest.mark.slow
def test_launch_starts_workers_per_gpu_workers_on_each_gpu(tmp_path: Path) -> None:
    """GPUs 98 and 99 do not exist, so each of the four workers dies once at start."""
    url = _create_study(tmp_path, n_trials=2)
    result = hls_tune(
        "launch",
        "--study",
        "tiny",
        "--storage",
        url,
        "--gpus",
        "98,99",
        "--workers-per-gpu",
        "2",
        "--max-restarts",
        "0",
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
        "--no-artifacts",
        cwd=tmp_path,
        timeout=DEADLINE_S,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    for slot in ("gpu98.0", "gpu98.1", "gpu99.0", "gpu99.1"):
        assert f"[{slot}] exited with 2; no restart left (0/0 used)" in output, output
    assert "[gpu98] " not in output and "[gpu99] " not in output, output


@pytest.mark.slow
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


def test_launch_hands_every_worker_the_same_artifact_directory():
    slot = cpu_slots(1)[0]
    command = worker_command("s", slot, WorkerOptions(artifacts="/shared/artifacts"))
    assert command[command.index("--artifacts") + 1] == "/shared/artifacts"
    assert "--no-artifacts" in worker_command("s", slot, WorkerOptions(artifacts=None))


def test_worker_options_survive_the_worker_command_line():
    """The launcher's argv, parsed by the `worker` command itself, gives back the options
    (one record for both: an option added to one and forgotten in the other fails here)."""
    from hls_tune.cli.workers import worker

    options = WorkerOptions(
        n_trials=3,
        checkpoint_dir="/shared/ckpt",
        artifacts="/shared/art",
        heartbeat_interval=7,
        grace_period=40,
        max_retries=5,
        threads=2,
    )
    argv = worker_command("s", gpu_slots(["1"])[0], options)
    assert argv[:5] == [sys.executable, "-m", "hls_tune", "worker", "--study"]
    params = worker.make_context("worker", argv[4:]).params
    parsed = {f.name: params.get(f.name) for f in dataclasses.fields(WorkerOptions)}
    expected = dataclasses.asdict(options) | {"device": "cuda:0", "progress": False}
    expected.pop("storage_wait")  # the launcher's workers wait the default time
    parsed.pop("storage_wait")
    assert parsed == expected
