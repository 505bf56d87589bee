"""Helpers shared by the tests: a tiny study file and running the real `hls-tune` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# The working directory of the `hls-tune` processes the tests start when they name none: a
# scratch directory of the test session (set by conftest), so that a default output directory
# (./checkpoints, ./artifacts, ./runs) a test forgets to point into its tmp_path never lands
# in the repository.
scratch_cwd: Path | None = None

TINY_STUDY = """
[study]
name = "{name}"
n_trials = {n_trials}
[study.sampler]
type = "random"
seed = 0
[study.pruner]
type = "{pruner}"

[data]
dataset = "digits"
image_size = 8
imbalance_ratio = 10
val_fraction = 0.15
max_per_class = 30
val_per_class = 10               # 100 validation images: a tiny epoch validates fast
many_above = 20
few_below = 8

[engine]
method = "hls"
channels = 4
layers = 3
epochs = {epochs}
batch_size = 32
flip = false
crop_padding = 1
weight_lr = 0.1
device = "cpu"

[space]
alpha_lr = {{ low = 1e-4, high = 1e-2, log = true, default = 3e-3 }}
alpha_lr_shape = ["constant", "step", "cosine", "warmup_hold_decay"]
alpha_lr_b1 = {{ low = 0.0, high = 1.0 }}
alpha_lr_span = {{ low = 0.0, high = 1.0 }}
alpha_lr_floor = {{ low = 0.0, high = 1.0 }}
coupling = ["mixing", "none", "backbone_max"]
mix_form = ["parabolic", "cosine", "sigmoid", "constant"]
mix_steepness = {{ low = 1.0, high = 20.0 }}
mix_constant = {{ low = 0.0, high = 1.0 }}
"""


def write_study(
    path: Path,
    *,
    name: str = "tiny",
    n_trials: int = 2,
    epochs: int = 2,
    pruner: str = "none",
    extra: str = "",
) -> Path:
    """Writes a tiny study file (digits, C=4, L=3, one step per epoch)."""
    path.write_text(
        TINY_STUDY.format(name=name, n_trials=n_trials, epochs=epochs, pruner=pruner) + extra,
        encoding="utf-8",
    )
    return path


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a real `hls-tune` process: one torch thread, no stray storage."""
    env = {k: v for k, v in os.environ.items() if k not in ("HLS_TUNE_STORAGE", "OPTUNA_STORAGE")}
    # The process may run outside the repository (see scratch_cwd): import this tree's package.
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env |= {"OMP_NUM_THREADS": "1", "HLS_TUNE_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return env | {"PYTHONPATH": path} | extra


def hls_tune(
    *args: str, cwd: Path | None = None, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess:
    """Runs `python -m hls_tune ARGS` as a real process and captures its output."""
    return subprocess.run(
        [sys.executable, "-m", "hls_tune", *args],
        capture_output=True,
        text=True,
        cwd=cwd or scratch_cwd,
        env=cli_env(**env),
        timeout=timeout,
        check=False,
    )


def start_hls_tune(*args: str, cwd: Path | None = None, **env: str) -> subprocess.Popen:
    """Starts `python -m hls_tune ARGS` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "hls_tune", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd or scratch_cwd,
        env=cli_env(**env),
    )


def in_ci() -> bool:
    """Whether the suite runs in CI (``CI=true``), where every real component must be there."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


# The one skip CI allows: this machine (and CI's) has no GPU, so a test of the CUDA path runs
# its CPU equivalent here and the CUDA path itself only where a device exists.
NO_CUDA = "no CUDA device: the CUDA path runs where one exists; its CPU equivalent runs here"


def missing_component(reason: str) -> NoReturn:
    """Skips the test for a missing real component (Chromium, docker-compose, Graphviz,
    PostgreSQL's initdb) saying why, or, in CI, fails it: CI must not pass by skipping."""
    if in_ci():
        pytest.fail(f"CI=true, and {reason}", pytrace=False)
    pytest.skip(reason)


def require_program(name: str, reason: str) -> str:
    """The path of program `name`; skips (outside CI) or fails (in CI) the test without it."""
    found = shutil.which(name)
    if found is None:
        missing_component(f"{name} is not installed: {reason}")
    return found
