"""Studies in an Optuna storage: create once from a study file, load with its settings.

The study file's text and hash are stored on the study (system attributes, out of the way of
Optuna's CLI and dashboard), so every worker, on any machine, runs the settings the study was
created with, never a local copy. Every trial hls-tune queues or runs carries a system
attribute marking it; a trial without it (someone called `study.optimize` on the storage with
an objective of their own) is ignored by `study show`, `export`, `compare` and the report.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from hls_tune.errors import ConfigError, HlsTuneError, did_you_mean
from hls_tune.study import optuna_internals
from hls_tune.study.config import StudyFile, parse_study_text
from hls_tune.study.optuna_internals import study_system_attrs
from hls_tune.study.space import grid_search_space, paper_reading_params
from hls_tune.study.storage import describe, open_storage

STUDY_FILE_ATTR = "hls_tune:study_file"
PRESET_ATTR = "hls_tune:preset"
STUDY_HASH_ATTR = "hls_tune:sha256"
METRIC_ATTR = "hls_tune:metric"
BUDGET_ATTR = "hls_tune:n_trials"
QUEUE_COMPLETE_ATTR = "hls_tune:queue_complete"  # False while `study create` queues
RETRIED_FROM_ATTR = "failed_trial"  # set by optuna's RetryFailedTrialCallback
# Trial system attributes: the markers of hls-tune's own trials, and what a finished trial
# stores beyond the few user attributes a person reads at a glance.
QUEUED_ATTR = "hls_tune:queued"  # on every budget ticket (and so on the trial claiming it)
OWN_TRIAL_ATTR = "hls_tune:trial"  # set by the objective when it starts running the trial
CONFIG_ATTR = "hls_tune:config"
GENOTYPE_ATTR = "hls_tune:genotype"
METRICS_ATTR = "hls_tune:metrics"
HISTORY_ATTR = "hls_tune:history"
SOURCE_ATTR = "hls_tune:source_supernet"  # adapt_head: the shared source (key, genotype …)


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
    hint = did_you_mean(name, names)
    known = ", ".join(repr(n) for n in names) or "none"
    return ConfigError(
        f"--study {name!r} does not exist in {describe(url)}{hint}; studies there: {known}."
    )


def create_study(url: str, study_file: StudyFile, name: str | None = None) -> tuple[str, bool]:
    """Creates the study (or finds an identical one).

    The budget is queued as WAITING trials (`queue_budget`); in an HLS study whose space
    can express it, the first of them carries the paper-reading preset's parameters
    (`paper_reading_params`, SPEC §4), so the budget still counts `n_trials` trials.

    Re-creating with the same file is a no-op; with a different file it is an error that
    shows what differs and suggests a new name. Validation happened when `study_file`
    was built, so nothing is written for a bad file.

    Returns:
        The study name and whether it was created now.
    """
    from hls_tune.study.config import check_study_name

    name = check_study_name("--name", name if name is not None else study_file.study.name)
    storage = open_storage(url, create=True)
    if name in study_names(storage):
        existing = optuna.load_study(study_name=name, storage=storage)
        stored_attrs = study_system_attrs(existing)
        stored = stored_attrs.get(STUDY_FILE_ATTR)
        if stored_attrs.get(STUDY_HASH_ATTR) == study_file.sha256:
            if stored_attrs.get(QUEUE_COMPLETE_ATTR, True):
                return name, False
            # An earlier `study create` was interrupted while queueing: finish the queue.
            _queue(existing, study_file)
            return name, True
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
    # Optuna's plots and the dashboard label the objective with this name, not "Objective 0".
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        settings = study_file.study
        study.set_metric_names(
            [f"architecture_{settings.metric}", settings.size_objective]
            if settings.multi_objective
            else [settings.metric]
        )
    # The study file is stored before the queue, so an interrupted create leaves a study that
    # `study create` completes and `study delete` removes.
    study_id = optuna_internals.study_id(study)
    storage.set_study_system_attr(study_id, QUEUE_COMPLETE_ATTR, False)
    storage.set_study_system_attr(study_id, STUDY_FILE_ATTR, study_file.text)
    storage.set_study_system_attr(study_id, STUDY_HASH_ATTR, study_file.sha256)
    study.set_user_attr(METRIC_ATTR, study_file.study.metric)
    study.set_user_attr(BUDGET_ATTR, study_file.study.n_trials)
    _queue(study, study_file)
    return name, True


def _queue(study: optuna.Study, study_file: StudyFile) -> None:
    """Queues what is missing of the budget (all of it for a new study): the paper-reading
    preset first where the space can express it, then tickets without parameters."""
    storage = optuna_internals.study_storage(study)
    have = len(study.get_trials(deepcopy=False))
    preset = paper_reading_params(study_file)
    study.set_user_attr(PRESET_ATTR, "paper_reading" if preset is not None else "none")
    if preset is not None and have == 0:
        # The paper's reading is measured first, next to whatever the sampler finds; it is
        # the first ticket of the budget, marked as hls-tune's like the others.
        study.enqueue_trial(preset, user_attrs={PRESET_ATTR: "paper_reading"})
        [first] = study.get_trials(deepcopy=False)
        storage.set_trial_system_attr(optuna_internals.trial_id(first), QUEUED_ATTR, True)
        have = 1
    queue_budget(study, max(0, study_file.study.n_trials - have))
    storage.set_study_system_attr(optuna_internals.study_id(study), QUEUE_COMPLETE_ATTR, True)


def stored_study_text(study: optuna.Study) -> str | None:
    """The study file's text stored at creation (None: not a study hls-tune created)."""
    return study_system_attrs(study).get(STUDY_FILE_ATTR)


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
    text = stored_study_text(bare)
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
    ticket = optuna.trial.create_trial(state=TrialState.WAITING, system_attrs={QUEUED_ATTR: True})
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


def is_own_trial(trial: FrozenTrial) -> bool:
    """Whether hls-tune ran the trial (or queued it and it has not run yet)."""
    if OWN_TRIAL_ATTR in trial.system_attrs:
        return True
    waiting = trial.state in (TrialState.WAITING, TrialState.RUNNING)
    return waiting and QUEUED_ATTR in trial.system_attrs


def own_trials(
    study: optuna.Study, states: Sequence[TrialState] | None = None
) -> tuple[list[FrozenTrial], int]:
    """The study's own trials (in `states`) and how many others it holds that hls-tune did
    not create (someone ran `study.optimize` on the storage with an objective of their own).

    A study without the study file in its system attributes (created before hls-tune
    marked its trials, or not by hls-tune at all) counts every trial as its own.
    """
    trials = study.get_trials(deepcopy=False, states=states)
    if STUDY_FILE_ATTR not in study_system_attrs(study):
        return list(trials), 0
    own = [t for t in trials if is_own_trial(t)]
    return own, len(trials) - len(own)


def foreign_note(count: int) -> str:
    """The line every reader prints about the trials it ignored ("" when none)."""
    if not count:
        return ""
    return (
        f"ignored {count} trial{'s' if count != 1 else ''} not created by hls-tune "
        "(run on this study with another objective)"
    )


def trial_config(trial: FrozenTrial) -> dict[str, Any]:
    """The engine settings the trial ran (`SearchConfig.to_dict()`), {} when unknown."""
    return trial.system_attrs.get(CONFIG_ATTR) or {}


def trial_genotype(trial: FrozenTrial) -> dict[str, Any] | None:
    """The trial's derived genotype (`Genotype.to_dict()`), None when it has none."""
    return trial.system_attrs.get(GENOTYPE_ATTR)


def trial_metrics(trial: FrozenTrial) -> dict[str, Any]:
    """A complete trial's final metrics (`SearchResult.metrics()`), {} when unknown."""
    return trial.system_attrs.get(METRICS_ATTR) or {}


def trial_history(trial: FrozenTrial) -> dict[str, list[Any]]:
    """The trial's per-epoch curves (`<name>_per_epoch` → one value per epoch)."""
    return dict(trial.system_attrs.get(HISTORY_ATTR) or {})


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Number of the study's own trials per state name (complete, pruned, fail, running,
    waiting)."""
    counts = {s.name.lower(): 0 for s in TrialState}
    for trial in own_trials(study)[0]:
        counts[trial.state.name.lower()] += 1
    return counts


def ranked_trials(study: optuna.Study, top_k: int) -> list[optuna.trial.FrozenTrial]:
    """The best `top_k` own COMPLETE trials, best first (ties: lower trial number first).

    In a multi-objective study: by the first objective (the architecture's accuracy).
    """
    complete, _ = own_trials(study, (TrialState.COMPLETE,))
    reverse = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    sign = -1.0 if reverse else 1.0
    return sorted(complete, key=lambda t: (sign * t.values[0], t.number))[:top_k]


def pareto_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The Pareto front of a multi-objective study (Optuna's `best_trials`), by number."""
    own = {t.number for t in own_trials(study, (TrialState.COMPLETE,))[0]}
    return sorted((t for t in study.best_trials if t.number in own), key=lambda t: t.number)
