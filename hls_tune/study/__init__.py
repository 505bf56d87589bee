"""The study layer: Optuna studies of the engine (study files, search space, objective,
storages, workers, export, comparison, dashboard artifacts and the study report).

The names below are the public surface. They load on first use (PEP 562), so importing one
light module (say `hls_tune.study.config`) does not pull in torch, matplotlib or Optuna.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "StudyFile": "config",
    "load_study_file": "config",
    "parse_study_text": "config",
    "suggest": "space",
    "Objective": "objective",
    "open_storage": "storage",
    "resolve_storage_url": "storage",
    "redact": "storage",
    "create_study": "study",
    "load_study": "study",
    "delete_study": "study",
    "ranked_trials": "study",
    "run_worker": "worker",
    "export_study": "export",
    "compare_study": "compare",
    "open_artifact_store": "artifacts",
    "upload_trial_artifacts": "trial_artifacts",
    "write_report": "report",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'hls_tune.study' has no attribute {name!r}")
    return getattr(importlib.import_module(f"hls_tune.study.{_PUBLIC[name]}"), name)
