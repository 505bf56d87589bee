"""A missing real component skips its test with the reason outside CI and fails it in CI
(``CI=true``): checked on a tiny suite run by a real pytest process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import REPO_ROOT

TINY_SUITE = """
import pytest

from tests.support.helpers import NO_CUDA, require_program


def test_needs_a_program():
    require_program("hls-tune-no-such-program", "the frobnicator renders the widgets")


def test_skips_by_itself():
    pytest.skip("a reason of its own")


def test_runs():
    pass


@pytest.mark.skipif(True, reason=NO_CUDA)
def test_the_cuda_path():
    pass
"""


# -p tests.conftest: the suite's own hooks, as in a real run; -rA: every outcome's reason
PYTEST_OPTIONS = ("-p", "tests.conftest", "-p", "no:cacheprovider", "-rA", "-q")


def _run_tiny_suite(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_tiny.py").write_text(TINY_SUITE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_OPTIONS, "test_tiny.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_outside_ci_a_missing_program_skips_with_its_reason(tmp_path):
    result = _run_tiny_suite(tmp_path, ci=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 3 skipped" in result.stdout, result.stdout
    assert "hls-tune-no-such-program is not installed: the frobnicator renders" in result.stdout
    assert "a reason of its own" in result.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_a_missing_program_or_any_skip_fails_the_run(tmp_path, ci):
    result = _run_tiny_suite(tmp_path, ci=ci)
    assert result.returncode == 1, result.stdout + result.stderr
    # the CUDA-path test stays skipped: CI machines have no GPU, its CPU equivalent runs
    assert "2 failed, 1 passed, 1 skipped" in result.stdout, result.stdout
    assert "hls-tune-no-such-program is not installed: the frobnicator renders" in result.stdout
    assert "a reason of its own" in result.stdout


def test_ci_false_keeps_the_skips(tmp_path):
    result = _run_tiny_suite(tmp_path, ci="false")
    assert result.returncode == 0 and "1 passed, 3 skipped" in result.stdout, result.stdout
