"""The private parts of Optuna hls-tune relies on, in one place.

Optuna has no public accessor for a study's storage and id, a trial's storage id, or the
heartbeat base class a storage wrapper must keep visible. Everything else of hls-tune reaches
them through these functions, and `tests/study/test_optuna_internals.py` pins the behaviour
each one relies on, so an Optuna release that moves one fails that test by name rather than
a worker in the middle of a study.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat

__all__ = ["BaseHeartbeat", "study_id", "study_storage", "trial_id"]


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage a study object talks to (``Study._storage``)."""
    return study._storage


def study_id(study: optuna.Study | optuna.study.StudySummary) -> int:
    """A study's id in its storage (``_study_id`` of a study or a study summary)."""
    return study._study_id


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """A trial's id in its storage (``_trial_id``; the trial number is per study)."""
    return trial._trial_id


def set_trial_system_attr(trial: optuna.Trial, key: str, value: Any) -> None:
    """Stores a system attribute on a running trial (Optuna has no public setter)."""
    study_storage(trial.study).set_trial_system_attr(trial_id(trial), key, value)


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's system attributes (Optuna keeps no public accessor for them)."""
    return dict(study_storage(study).get_study_system_attrs(study_id(study)))
