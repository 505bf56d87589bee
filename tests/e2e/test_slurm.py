"""docker/slurm/workers.sbatch: bash accepts it, its directives leave retries to the study,
and its worker command line runs a real worker outside Slurm against a tiny SQLite study."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.support.helpers import REPO_ROOT, cli_env, hls_tune, require_program, write_study

SCRIPT = REPO_ROOT / "docker" / "slurm" / "workers.sbatch"


def _directives() -> dict[str, str]:
    found = {}
    for line in SCRIPT.read_text().splitlines():
        match = re.fullmatch(r"#SBATCH\s+(--[\w-]+)(?:=(\S+))?\s*", line)
        if match:
            found[match.group(1)] = match.group(2) or ""
    return found


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    bash = require_program("bash", "the Slurm script is a bash script")
    return subprocess.run(
        [bash, str(SCRIPT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=cli_env(**env),
        timeout=600,
        check=False,
    )


def test_the_script_parses_and_leaves_retries_to_the_study() -> None:
    bash = require_program("bash", "the Slurm script is a bash script")
    assert subprocess.run([bash, "-n", str(SCRIPT)], check=False).returncode == 0
    directives = _directives()
    assert "--no-requeue" in directives and "--requeue" not in directives
    assert directives["--gres"] == "gpu:1" and directives["--ntasks"] == "1"
    assert re.fullmatch(r"\d+-\d+", directives["--array"])
    assert directives["--signal"].startswith("B:TERM")  # the worker hands its trial back


def test_without_a_storage_url_the_script_exits_2_in_one_line(tmp_path: Path) -> None:
    result = _run(tmp_path, SLURM_ARRAY_TASK_ID="0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: HLS_TUNE_STORAGE is not set; export the storage URL before sbatch."
    ]


@pytest.mark.slow
def test_an_array_task_runs_a_worker_that_finishes_the_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = write_study(tmp_path / "tiny.toml", n_trials=1, epochs=1)
    assert hls_tune("study", "create", str(study), "--storage", url).returncode == 0
    env = dict(
        HLS_TUNE_STORAGE=url,
        HLS_TUNE_STUDY="tiny",
        HLS_TUNE_DEVICE="cpu",
        HLS_TUNE_COMMAND=f"{sys.executable} -m hls_tune",
        HLS_TUNE_WORKER_ARGS="--no-artifacts",
        HLS_TUNE_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
        SLURM_ARRAY_TASK_ID="2",
        SLURM_ARRAY_JOB_ID="77",
    )
    printed = _run(tmp_path, **env, HLS_TUNE_DRY_RUN="1")
    assert printed.returncode == 0, printed.stderr
    worker = ["worker", "--study", "tiny", "--device", "cpu", "--max-retries", "3"]
    worker += ["--no-progress", "--no-artifacts"]
    assert printed.stdout.split() == [sys.executable, "-m", "hls_tune", *worker]
    assert url not in printed.stdout  # the storage URL stays in the environment
    ran = _run(tmp_path, **env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "array task 2 of job 77" in ran.stderr
    [trial] = optuna.load_study(study_name="tiny", storage=url).get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert (tmp_path / "checkpoints" / "tiny").is_dir()
