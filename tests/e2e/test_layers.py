"""The layers of docs/architecture.md hold: import-linter's contracts in pyproject.toml pass,
they catch an upward import or a cycle, and the engine loads without Optuna."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import REPO_ROOT

REPO = REPO_ROOT
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(package_root: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the hls_tune found under `package_root`, with the repo's contracts
    (no cache: nothing is written)."""
    env = os.environ | {"PYTHONPATH": str(package_root)}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


def test_the_import_contracts_hold(tmp_path):
    result = lint_imports(REPO, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("engine/search.py", "from hls_tune.study import config", "not allowed to import"),
        ("engine/train.py", "import optuna", "hls_tune.engine is not allowed to import optuna"),
        ("engine/checkpoint.py", "from hls_tune.engine import search", "No cycles are allowed"),
    ],
)
def test_the_contracts_fail_on_an_upward_import_or_a_cycle(tmp_path, module, line, broken):
    copy = tmp_path / "src"
    shutil.copytree(REPO / "hls_tune", copy / "hls_tune", ignore=shutil.ignore_patterns("*.pyc"))
    target = copy / "hls_tune" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    result = lint_imports(copy, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("hls_tune.engine", ("optuna", "optuna_dashboard", "hls_tune.study", "hls_tune.cli")),
        ("hls_tune", ("optuna", "torch", "hls_tune.study")),
    ],
)
def test_importing_the_engine_loads_no_optuna(module, absent):
    code = f"import sys, {module}; print(sorted(m for m in {absent!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "[]"
