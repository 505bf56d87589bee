"""hls_tune/cli/workers.py: the `launch` command's usage errors, as real processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helpers import hls_tune


@pytest.mark.parametrize(
    "gpus",
    ["", " , ", "-1", "0,-1", "a", "1.5", "0;1", "٣"],
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
