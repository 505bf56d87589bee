"""A truncated journal is refused by every command, and study create does not corrupt it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helpers import hls_tune, write_study


@pytest.mark.parametrize("cut", [1, 7, 40])
def test_a_truncated_journal_is_refused_with_a_usable_hint(tmp_path: Path, cut: int) -> None:
    journal = tmp_path / "j.log"
    url = f"journal:{journal}"
    study = write_study(tmp_path / "a.toml")
    assert hls_tune("study", "create", str(study), "--storage", url).returncode == 0
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - cut])
    broken = journal.read_bytes()
    other = write_study(tmp_path / "b.toml", name="other")
    for args in (
        ("study", "list", "--storage", url),
        ("study", "show", "tiny", "--storage", url),
        ("study", "create", str(other), "--storage", url),
    ):
        result = hls_tune(*args)
        assert result.returncode == 1, result.stdout + result.stderr
        line = result.stderr.strip()
        assert "incomplete record" in line and "truncate -s" in line, line
        assert "study create" not in line and "Traceback" not in line and "\n" not in line
    assert journal.read_bytes() == broken  # study create appended nothing to the broken line
    keep = int(line.split("truncate -s ")[1].split()[0])
    journal.write_bytes(broken[:keep])  # the advice works: cut after the last whole record
    assert hls_tune("study", "list", "--storage", url).returncode == 0
