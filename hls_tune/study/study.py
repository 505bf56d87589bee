"""Studies in an Optuna storage: create once from a study file, load with its settings.

The study file's text and hash are stored on the study (user attributes), so every worker,
on any machine, runs the settings the study was created with, never a local copy.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.config import StudyFile, parse_study_text
from hls_tune.study.space import grid_search_space
from hls_tune.study.storage import describe, open_storage

STUDY_FILE_ATTR = "hls_tune:study_file"
STUDY_HASH_ATTR = "hls_tune:sha256"
RETRIED_FROM_ATTR = "failed_trial"  # set by optuna's RetryFailedTrialCallback


def make_sampler(study_file: StudyFile) -> optuna.samplers.BaseSampler:
    """The study file's sampler (TPE, random or grid) with its seed and options.

    A seeded TPE or random sampler is wrapped in `TrialSeededSampler`, so that every worker
    process, each with its own copy of the sampler, still draws different parameters for
    different trials.
    """
    settings = study_file.study.sampler
    if settings.type == "grid":
        # Grid points are assigned by trial number (then at random among unvisited ones).
        return optuna.samplers.GridSampler(grid_search_space(study_file), seed=settings.seed)

    def build(seed: int | None) -> optuna.samplers.BaseSampler:
        if settings.type == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if settings.type == "nsga2":
            return optuna.samplers.NSGAIISampler(
                seed=seed, population_size=settings.population_size
            )
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=settings.multivariate,
            group=settings.group and settings.multivariate,
            n_startup_trials=settings.n_startup_trials,
            constant_liar=settings.constant_liar,
        )

    if settings.seed is None:
        return build(None)
    return TrialSeededSampler(build, settings.seed)


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A seeded sampler whose random draws depend on (seed, trial number), not on the worker.

    Each worker process builds the study's sampler from the stored study file, so with a
    plain seed every worker would replay the same random sequence and two workers would
    run their first (and every later) trials with identical parameters. Here the wrapped
    sampler is rebuilt before each trial with a seed derived from the study seed and the
    trial number: a trial's parameters depend only on the seed, its number and the study's
    history, whichever worker runs it. A worker runs one trial at a time, so rebuilding in
    `before_trial` is safe.

    Args:
        build: makes the wrapped sampler from a seed.
        seed: the study file's seed.
    """

    def __init__(self, build: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._build = build
        self._seed = seed
        self._sampler = build(seed)

    def trial_seed(self, number: int) -> int:
        """The wrapped sampler's seed for trial `number` (well mixed, in [0, 2**32))."""
        return int(np.random.SeedSequence([self._seed, number]).generate_state(1)[0])

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._sampler = self._build(self.trial_seed(trial.number))
        self._sampler.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._sampler.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._sampler.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._sampler.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._sampler.reseed_rng()

    def __str__(self) -> str:
        return f"{self._sampler} (seeded per trial)"


def make_pruner(study_file: StudyFile) -> optuna.pruners.BasePruner:
    """The study file's pruner; `patience` wraps it in a PatientPruner."""
    settings = study_file.study.pruner
    args: dict[str, Any] = dict(settings.args)
    pruner: optuna.pruners.BasePruner
    if settings.type == "median":
        pruner = optuna.pruners.MedianPruner(**args)
    elif settings.type == "successive_halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner(**args)
    elif settings.type == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(**args)
    else:
        pruner = optuna.pruners.NopPruner()
    if settings.patience is not None and settings.type != "none":
        pruner = optuna.pruners.PatientPruner(
            pruner, patience=settings.patience, min_delta=settings.min_delta
        )
    return pruner


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of every study in the storage."""
    return [s.study_name for s in storage.get_all_studies()]


def _missing_study(storage: optuna.storages.BaseStorage, name: str, url: str) -> ConfigError:
    names = study_names(storage)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    known = ", ".join(repr(n) for n in names) or "none"
    return ConfigError(
        f"--study {name!r} does not exist in {describe(url)}{hint}; studies there: {known}."
    )


def create_study(url: str, study_file: StudyFile, name: str | None = None) -> tuple[str, bool]:
    """Creates the study (or finds an identical one).

    Re-creating with the same file is a no-op; with a different file it is an error that
    shows what differs and suggests a new name. Validation happened when `study_file`
    was built, so nothing is written for a bad file.

    Returns:
        The study name and whether it was created now.
    """
    name = name or study_file.study.name
    if not name.strip():
        raise ConfigError(f"--name must be a non-empty string but got {name!r}.")
    storage = open_storage(url, create=True)
    if name in study_names(storage):
        existing = optuna.load_study(study_name=name, storage=storage)
        stored = existing.user_attrs.get(STUDY_FILE_ATTR)
        if existing.user_attrs.get(STUDY_HASH_ATTR) == study_file.sha256:
            return name, False
        diff = "".join(
            difflib.unified_diff(
                (stored or "").splitlines(keepends=True),
                study_file.text.splitlines(keepends=True),
                "stored",
                "given",
                n=0,
            )
        )
        suffix = 2
        while f"{name}-{suffix}" in study_names(storage):
            suffix += 1
        raise ConfigError(
            f"study {name!r} already exists with a different study file; "
            f"create a new study instead, e.g. --name {name}-{suffix}. Differences:\n"
            + diff.rstrip()
        )
    settings = study_file.study
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=None if settings.multi_objective else settings.direction,
        directions=list(settings.directions) if settings.directions else None,
        sampler=make_sampler(study_file),
    )
    queue_budget(study, study_file.study.n_trials)
    study.set_user_attr(STUDY_FILE_ATTR, study_file.text)
    study.set_user_attr(STUDY_HASH_ATTR, study_file.sha256)
    study.set_user_attr("hls_tune:metric", study_file.study.metric)
    study.set_user_attr("hls_tune:n_trials", study_file.study.n_trials)
    return name, True


@dataclass
class LoadedStudy:
    """An Optuna study with the study file it was created from."""

    study: optuna.Study
    study_file: StudyFile


def load_study(
    url: str,
    name: str,
    *,
    storage: optuna.storages.BaseStorage | None = None,
) -> LoadedStudy:
    """Loads a study and its stored study file, with the file's sampler and pruner."""
    storage = storage if storage is not None else open_storage(url)
    if name not in study_names(storage):
        raise _missing_study(storage, name, url)
    bare = optuna.load_study(study_name=name, storage=storage)
    text = bare.user_attrs.get(STUDY_FILE_ATTR)
    if text is None:
        raise HlsTuneError(
            f"study {name!r} was not created by hls-tune (no stored study file); "
            "create it with `hls-tune study create`."
        )
    study_file = parse_study_text(text, source=f"study {name!r}")
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(study_file),
        pruner=make_pruner(study_file),
    )
    return LoadedStudy(study, study_file)


def delete_study(url: str, name: str) -> None:
    """Deletes a study and all its trials."""
    storage = open_storage(url)
    if name not in study_names(storage):
        raise _missing_study(storage, name, url)
    optuna.delete_study(study_name=name, storage=storage)


def retried_numbers(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Numbers of failed trials that a retry trial has replaced."""
    return {
        t.system_attrs[RETRIED_FROM_ATTR] for t in trials if RETRIED_FROM_ATTR in t.system_attrs
    }


def queue_budget(study: optuna.Study, n_trials: int) -> None:
    """Queues the study's whole budget as `n_trials` WAITING trials without parameters.

    Workers only ever claim a WAITING trial (an atomic WAITING -> RUNNING change in the
    storage) and never create one, so any number of workers finishing trials at the same
    moment cannot run more than the budget. The sampler fills in the parameters when a trial
    is claimed, exactly as for a trial it created itself; a retry of a crashed trial is
    queued the same way (by Optuna's retry callback) and replaces the failed one.
    """
    ticket = optuna.trial.create_trial(state=TrialState.WAITING)
    for _ in range(n_trials):
        study.add_trial(ticket)


def trials_done(study: optuna.Study) -> int:
    """Trials of the budget that are finished: COMPLETE, PRUNED, and FAIL unless a retry
    replaced them (a diverged run counts; a crashed or interrupted one is retried)."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    return sum(
        1
        for t in trials
        if t.state.is_finished() and (t.state != TrialState.FAIL or t.number not in retried)
    )


def work_left(study: optuna.Study, *, running: bool = True) -> bool:
    """Whether a trial is still queued (WAITING) or, with `running`, still RUNNING."""
    states = (TrialState.WAITING, TrialState.RUNNING) if running else (TrialState.WAITING,)
    return bool(study.get_trials(deepcopy=False, states=states))


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Number of trials per state name (complete, pruned, fail, running, waiting)."""
    counts = {s.name.lower(): 0 for s in TrialState}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] += 1
    return counts


def ranked_trials(study: optuna.Study, top_k: int) -> list[optuna.trial.FrozenTrial]:
    """The best `top_k` COMPLETE trials, best first (ties: lower trial number first).

    In a multi-objective study: by the first objective (the architecture's accuracy).
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    reverse = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    sign = -1.0 if reverse else 1.0
    return sorted(complete, key=lambda t: (sign * t.values[0], t.number))[:top_k]


def pareto_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The Pareto front of a multi-objective study (Optuna's `best_trials`), by number."""
    return sorted(study.best_trials, key=lambda t: t.number)
