"""Usage errors are found before any work: one line, exit 2, nothing written, no budget lost."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.support.helpers import hls_tune, write_study


def _one_line_usage_error(result, *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("device", ["cuda:7", "cuda:123"])
def test_a_missing_gpu_is_refused_before_a_trial_is_claimed(tmp_path: Path, device: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = write_study(tmp_path / "a.toml", n_trials=2, epochs=1)
    assert hls_tune("study", "create", str(study), "--storage", url).returncode == 0
    result = hls_tune(
        "worker", "--study", "tiny", "--storage", url, "--device", device, "--no-progress",
        "--checkpoint-dir", str(tmp_path / "ck"),
    )  # fmt: skip
    _one_line_usage_error(result, device)
    trials = optuna.load_study(study_name="tiny", storage=url).get_trials()
    assert [t.state for t in trials] == [TrialState.WAITING] * 2


def _commands(tmp_path: Path, bad: Path) -> dict[str, list[str]]:
    study = write_study(tmp_path / "a.toml", n_trials=1, epochs=1)
    url = f"sqlite:///{tmp_path / 'none.db'}"
    return {
        "search": ["search", str(study), "--out", str(bad)],
        "search-checkpoint": [
            "search", str(study), "--out", str(tmp_path / "ok"), "--checkpoint", str(bad / "c.pt")
        ],
        "train": ["train", "darts_v2", "--epochs", "1", "--out", str(bad)],
        "export": ["export", "--study", "tiny", "--storage", url, "--out", str(bad)],
        "report": ["report", "--study", "tiny", "--storage", url, "--out", str(bad)],
        "compare": ["compare", "--study", "tiny", "--storage", url, "--out", str(bad / "t.md")],
        "worker": ["worker", "--study", "tiny", "--storage", url, "--checkpoint-dir", str(bad)],
    }  # fmt: skip


@pytest.mark.parametrize(
    "command", ["search", "search-checkpoint", "train", "export", "report", "compare", "worker"]
)
@pytest.mark.parametrize("shape", ["file", "inside-file"])
def test_an_unusable_output_path_is_refused_before_the_work(
    tmp_path: Path, command: str, shape: str
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    bad = blocker if shape == "file" else blocker / "deeper" / "out"
    args = _commands(tmp_path, bad)[command]
    if command in ("search-checkpoint", "compare") and shape == "file":
        args = [a.replace(str(bad / "c.pt"), str(blocker / "c.pt")) for a in args]
    result = hls_tune(*args)
    _one_line_usage_error(result, str(blocker))
    assert not (tmp_path / "ok").exists() and not (tmp_path / "none.db").exists()
    assert blocker.read_text() == "a file, not a folder\n"
