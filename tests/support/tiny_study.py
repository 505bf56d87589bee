"""The tiny study made by a real `hls-tune study create`, and its trials read back."""

from __future__ import annotations

from pathlib import Path

import optuna

from tests.support.helpers import hls_tune, write_study


def _create_study(tmp_path: Path, **study: object) -> str:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study_file = write_study(tmp_path / "s.toml", **study)  # type: ignore[arg-type]
    created = hls_tune("study", "create", str(study_file), "--storage", url)
    assert created.returncode == 0, created.stderr
    return url


def _trials(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="tiny", storage=url).get_trials(deepcopy=False)
