"""One small finished study with artifacts, run once per test session by the real CLI and
shared by the report and dashboard tests (each a few tens of seconds of CPU otherwise)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from hls_tune.engine.plots import dot_available
from tests.support.helpers import hls_tune, write_study

STUDY_NAME = "tiny"
N_TRIALS = 2
EPOCHS = 2
CELLS = ("normal", "reduce", "head_conventional", "head_rebalancing")


def expected_artifacts(*, with_history: bool = True) -> set[str]:
    """The artifact file names of one trial (SVG cells only when Graphviz drew them)."""
    names = {f"cell_{cell}.png" for cell in CELLS} | {"genotype.jsonl", "schedule.png"}
    if dot_available():
        names |= {f"cell_{cell}.svg" for cell in CELLS}
    if with_history:
        names |= {"alphas.png", "training.png", "per_class_accuracy.png"}
    return names


@dataclass(frozen=True)
class FinishedStudy:
    """A finished tiny study: its SQLite URL, artifact directory and name."""

    url: str
    artifacts: Path
    name: str = STUDY_NAME


_lock = threading.Lock()
_cache: dict[str, FinishedStudy] = {}


def finished_study(factory: pytest.TempPathFactory) -> FinishedStudy:
    """Creates and runs the study the first time it is asked for; later calls reuse it."""
    with _lock:
        if "study" not in _cache:
            base = factory.mktemp("finished_study")
            url = f"sqlite:///{base / 'study.db'}"
            study_file = write_study(base / "tiny.toml", n_trials=N_TRIALS, epochs=EPOCHS)
            created = hls_tune("study", "create", str(study_file), "--storage", url)
            assert created.returncode == 0, created.stderr
            worker = hls_tune(
                "worker",
                "--study",
                STUDY_NAME,
                "--storage",
                url,
                "--no-progress",
                "--checkpoint-dir",
                str(base / "checkpoints"),
                "--artifacts",
                str(base / "artifacts"),
            )
            assert worker.returncode == 0, worker.stdout + worker.stderr
            _cache["study"] = FinishedStudy(url, base / "artifacts")
        return _cache["study"]
