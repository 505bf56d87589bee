"""Progress of `search`, `train` and `worker`: one plain line per epoch when stderr is a
pipe (a batch log), a bar inside each epoch (steps, images/s, ETA) on a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.support.helpers import cli_env, hls_tune, write_study


def _epoch_lines(stderr: str, label: str, epochs: int) -> list[str]:
    pattern = re.compile(rf"^{re.escape(label)} epoch (\d+)/{epochs}: loss \d")
    return [line for line in stderr.splitlines() if pattern.match(line)]


def _assert_plain_log(stderr: str, label: str, epochs: int) -> None:
    """Exactly one line per epoch, in order, and nothing a terminal would redraw."""
    lines = _epoch_lines(stderr, label, epochs)
    numbers = [int(re.search(r"epoch (\d+)/", line).group(1)) for line in lines]
    assert numbers == list(range(1, epochs + 1)), stderr
    assert "\r" not in stderr and "%|" not in stderr, stderr
    assert all("img/s" in line for line in lines), lines


def _small_batches(path: Path) -> Path:
    """Several steps per epoch (the tiny study has one), so a bar has something to count."""
    path.write_text(path.read_text().replace("batch_size = 32", "batch_size = 8"))
    return path


def test_search_writes_one_line_per_epoch_to_a_pipe(tmp_path):
    study = write_study(tmp_path / "tiny.toml", epochs=3)
    result = hls_tune("search", str(study), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    _assert_plain_log(result.stderr, "search", 3)


def test_train_writes_one_line_per_epoch_to_a_pipe(tmp_path):
    result = hls_tune(
        "train",
        "darts_v2",
        "--epochs",
        "2",
        "--channels",
        "4",
        "--layers",
        "3",
        "--batch-size",
        "32",
        "--image-size",
        "8",
        "--max-per-class",
        "30",
        "--val-per-class",
        "10",
        "--device",
        "cpu",
        "--auxiliary-weight",
        "0",
    )
    assert result.returncode == 0, result.stderr
    _assert_plain_log(result.stderr, "train", 2)


def test_a_worker_writes_one_line_per_epoch_of_each_trial_to_a_pipe(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = write_study(tmp_path / "tiny.toml", n_trials=1, epochs=2)
    assert hls_tune("study", "create", str(study), "--storage", url).returncode == 0
    result = hls_tune(
        "worker",
        "--study",
        "tiny",
        "--storage",
        url,
        "--no-artifacts",
        "--checkpoint-dir",
        str(tmp_path / "checkpoints"),
    )
    assert result.returncode == 0, result.stderr
    _assert_plain_log(result.stderr, "trial 0", 2)
    assert "trial 0 complete" in result.stderr


def _run_on_a_terminal(args: list[str], cwd: Path, deadline_s: float = 600) -> tuple[int, str]:
    """Runs a command with stdout and stderr on a fresh pseudo-terminal (which, like many,
    reports no size) and returns its exit code and everything it wrote."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        cwd=cwd,
        env=cli_env(),
    )
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            data = os.read(controller, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(controller)
    code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    return code, b"".join(chunks).decode("utf-8", errors="replace")


def test_search_on_a_terminal_shows_a_bar_of_steps_with_images_per_second_and_eta(tmp_path):
    study = _small_batches(write_study(tmp_path / "tiny.toml", epochs=2))
    code, output = _run_on_a_terminal(
        [sys.executable, "-m", "hls_tune", "search", str(study), "--out", str(tmp_path / "o")],
        cwd=tmp_path,
    )
    assert code == 0, output
    frames = output.replace("\r\n", "\n").split("\r")
    bars = [f for f in frames if re.search(r"search epoch 1/2: +\d+%\|.*\| \d+/\d+ ", f)]
    assert bars, output
    assert any("img/s" in f and "run ETA" in f for f in bars), bars
    # The epoch's summary line stays after the bar is gone.
    assert len(_epoch_lines(output.replace("\r", "\n"), "search", 2)) == 2, output
