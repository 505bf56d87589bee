"""The Optuna objective: space → `engine.run_search` → report, prune, trial attributes.

A trial's user attributes hold what a person reads at a glance in `optuna trials` or the
dashboard (final metrics, shot accuracies, time, why it failed); its engine settings, genotype,
full metrics and per-epoch curves are system attributes (`hls_tune:*`), read back through
`study.trial_config`, `trial_genotype`, `trial_metrics` and `trial_history`.

With an [evaluate] table a trial has a second stage: the derived genotype is trained from
scratch (`engine.train.train`) once per evaluation seed, on the same data. With
``trains_on = ["longtail", "balanced"]`` the trainings on the balanced counterpart follow
(run ``seeds + i``) and record ``architecture_balanced_*``; the value stays the long-tailed
training's.

The pruner sees one quantity (Optuna's pruners compare a trial's best value over all its
steps): with objective "supernet" the search's epochs, with "architecture" the epochs of
the first evaluation run (seed 0 on the long-tailed set), step = epoch. Every other curve is
recorded (the search's as `hls_tune:history`, each evaluation run's in
``hls_tune:evaluation_history``) but never reported.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch

from hls_tune import engine
from hls_tune.engine.datasets import balanced_counterpart, prepare_data
from hls_tune.engine.epochs import RunHooks
from hls_tune.engine.progress import RunProgress
from hls_tune.engine.results import EpochMetrics, SearchResult
from hls_tune.errors import HlsTuneError, NonFiniteLossError, SearchInterrupted
from hls_tune.study.config import TRAINING_SETS, StudyFile
from hls_tune.study.optuna_internals import set_trial_system_attr
from hls_tune.study.space import suggest
from hls_tune.study.study import (
    CONFIG_ATTR,
    GENOTYPE_ATTR,
    HISTORY_ATTR,
    OWN_TRIAL_ATTR,
    RETRIED_FROM_ATTR,
)
from hls_tune.study.trial_attrs import (
    evaluate_train_config,
    evaluation_attrs,
    evaluation_runs,
    glance_attrs,
    history_attrs,
    result_system_attrs,
)

FAIL_REASON_ATTR = "fail_reason"
# Each evaluation run's per-epoch `metric` ("longtail-seed-0": [...]): the curves that are
# not on the pruner's axis are kept here (the one on it is also the intermediate values).
EVALUATION_HISTORY_ATTR = "hls_tune:evaluation_history"
RESUMED_ATTR = "resumed_from_epoch"


class TrialOutOfMemory(HlsTuneError):
    """The trial's search did not fit in device memory; the trial fails, the worker goes on."""


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's "can't allocate memory"."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    message = str(error)
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in message or "not enough memory" in message
    )


def safe_name(text: str) -> str:
    """A file-name-safe form of arbitrary text (a study name is data, not a path)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "study"
    return slug[:100]


def original_trial_number(trial: optuna.Trial) -> int:
    """The number of the first trial of this one's retry chain (itself when it is no retry).

    Optuna's RetryFailedTrialCallback records it as the system attribute `failed_trial`.
    """
    frozen = trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for candidate in frozen:
        if candidate.number == trial.number:
            return int(candidate.system_attrs.get(RETRIED_FROM_ATTR, trial.number))
    return trial.number


class _EvaluationPruned(Exception):
    def __init__(self, trains_on: str, index: int, epoch: int) -> None:
        super().__init__(trains_on, index, epoch)
        self.trains_on, self.index, self.epoch = trains_on, index, epoch


class Objective:
    """Runs one search per trial, reporting the study metric every epoch.

    Args:
        study_file: the study's stored file (fixed settings and space).
        device: overrides the study file's device (auto, cpu, cuda, cuda:N).
        checkpoint_dir: per-trial checkpoints live here (one file per original trial), so
            a retried trial resumes where its crashed original stopped.
        should_stop: polled before every search step; True interrupts the trial
            (SearchInterrupted) so that the worker can hand it back for a retry.
        artifact_store: an Optuna artifact store; when given, every trial that completes,
            is pruned or diverges uploads its figures and a dashboard note (`report.py`).
        progress: makes the progress display of a trial from its number and epoch count
            (steps inside each epoch, one line per epoch); None shows nothing.
    """

    def __init__(
        self,
        study_file: StudyFile,
        *,
        device: str | None = None,
        checkpoint_dir: str | Path | None = None,
        should_stop: Callable[[], bool] | None = None,
        artifact_store: Any | None = None,
        progress: Callable[[int, int], RunProgress] | None = None,
    ) -> None:
        self.artifact_store = artifact_store
        self.progress = progress
        self.should_stop = should_stop
        self.on_start: Callable[[int], None] | None = None
        self.study_file = study_file
        self.device = device
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.metric = study_file.study.metric
        # Optuna neither records intermediate values nor prunes in a multi-objective study.
        self.reports = not study_file.study.multi_objective
        # One quantity per pruner axis (Optuna's pruners compare a trial's best value over
        # all its steps): the trained network's epochs when the trial is judged on it, the
        # search's epochs otherwise. The other stage's curves are recorded, not reported.
        self.axis = "architecture" if study_file.study.objective == "architecture" else "supernet"

    @property
    def source_cache_dir(self) -> Path | None:
        """adapt_head's shared source supernets, next to the checkpoints (content-addressed,
        so every study and trial on these checkpoints reuses them)."""
        return None if self.checkpoint_dir is None else self.checkpoint_dir / "sources"

    def checkpoint_path(self, trial: optuna.Trial) -> Path | None:
        """Where this trial's (or its original's) checkpoint lives."""
        if self.checkpoint_dir is None:
            return None
        study = safe_name(trial.study.study_name)
        return self.checkpoint_dir / study / f"trial-{original_trial_number(trial)}.pt"

    def evaluate_dir(self, trial: optuna.Trial) -> Path | None:
        """Where this trial's evaluation checkpoints live (one `seed-<i>/` per seed)."""
        if self.checkpoint_dir is None:
            return None
        study = safe_name(trial.study.study_name)
        return self.checkpoint_dir / study / f"trial-{original_trial_number(trial)}-evaluate"

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        if self.on_start is not None:
            self.on_start(trial.number)
        set_trial_system_attr(trial, OWN_TRIAL_ATTR, True)
        if trial.user_attrs.get(FAIL_REASON_ATTR) is not None:
            trial.set_user_attr(FAIL_REASON_ATTR, None)  # inherited from the retried original
        config, _ = suggest(trial, self.study_file)
        if self.device is not None:
            config = dataclasses.replace(config, device=self.device)
        set_trial_system_attr(trial, CONFIG_ATTR, config.to_dict())
        data = prepare_data(config.data)
        history: list[EpochMetrics] = []
        shown = self.progress(trial.number, config.total_epochs) if self.progress else None

        checkpoint = self.checkpoint_path(trial)
        try:
            result = engine.run_search(
                config,
                data=data,
                hooks=self._search_hooks(trial, history, shown),
                checkpoint=checkpoint,
                source_cache=self.source_cache_dir,
            )
        except NonFiniteLossError as exc:
            self._record_failure(trial, str(exc), history)
            self._upload_artifacts(trial, config, history, "fail", reason=str(exc))
            raise
        except SearchInterrupted as exc:
            trial.set_user_attr(FAIL_REASON_ATTR, f"{exc} by a signal; handed back for a retry")
            raise
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            reason = f"out of memory on {config.device}: {str(exc).splitlines()[0]}"
            self._record_failure(trial, reason, history)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            raise TrialOutOfMemory(reason) from None
        finally:
            if shown is not None:
                shown.close()
        if result.resumed_from_epoch is not None:
            trial.set_user_attr(RESUMED_ATTR, result.resumed_from_epoch)
        if result.stopped_early:
            set_trial_system_attr(trial, HISTORY_ATTR, history_attrs(result.history))
            set_trial_system_attr(trial, GENOTYPE_ATTR, result.genotype.to_dict())
            trial.set_user_attr("epochs_run", len(result.history))
            if checkpoint is not None:
                checkpoint.unlink(missing_ok=True)
            reason = f"pruned after epoch {len(result.history) - 1}"
            self._upload_artifacts(trial, config, result.history, "pruned", reason=reason)
            raise optuna.TrialPruned(reason)
        self._record_search(trial, result)
        if self.study_file.evaluate is not None:
            return self._evaluate(trial, config, data, result, checkpoint)
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
        self._upload_artifacts(trial, config, result.history, "complete", result.metrics())
        return float(getattr(result, self.metric))

    def _search_hooks(
        self, trial: optuna.Trial, history: list[EpochMetrics], shown: RunProgress | None
    ) -> RunHooks:
        """The search's hooks: each epoch goes to `history` and the progress display, and to
        the pruner when the trial is judged on the supernet."""
        on_axis = self.reports and self.axis == "supernet"

        def on_epoch(metrics: EpochMetrics) -> bool:
            if shown is not None:
                shown.show_epoch(metrics)
            history.append(metrics)
            if on_axis:
                trial.report(getattr(metrics, self.metric), metrics.epoch)
            return not (on_axis and trial.should_prune())

        def on_resume(restored: list[EpochMetrics]) -> None:
            # The retried trial re-reports what its crashed original had measured.
            history.extend(restored)
            for metrics in restored if on_axis else ():
                trial.report(getattr(metrics, self.metric), metrics.epoch)

        return RunHooks(
            on_epoch=on_epoch,
            on_resume=on_resume,
            on_step=shown.on_step if shown is not None else None,
            should_stop=self.should_stop,
        )

    @staticmethod
    def _record_search(trial: optuna.Trial, result: SearchResult) -> None:
        """What a finished search leaves on its trial: the settings, genotype, metrics and
        curves as system attributes, what a person reads at a glance as user attributes."""
        for key, value in result_system_attrs(result).items():
            set_trial_system_attr(trial, key, value)
        for key, value in glance_attrs(result).items():
            trial.set_user_attr(key, value)

    def _evaluate(
        self,
        trial: optuna.Trial,
        config: engine.SearchConfig,
        data: Any,
        result: SearchResult,
        checkpoint: Path | None,
    ) -> float | tuple[float, float]:
        """The second stage: train the derived genotype once per seed, record, return.

        The finished search's checkpoint stays until the trial ends, so a retry of a trial
        killed here reloads the search instead of redoing it, and each seed's training
        resumes from its own checkpoint. `resumed_from_epoch` is then the first epoch (on
        the trial's run axis: search epochs, then evaluation runs one after the other)
        that the retry computed itself.
        """
        eval_dir = self.evaluate_dir(trial)
        curves: dict[str, list[float | None]] = {}
        try:
            runs, resumed = self._train_evaluation_runs(
                trial, config, data, result, eval_dir, curves
            )
        except _EvaluationPruned as pruned:
            set_trial_system_attr(trial, EVALUATION_HISTORY_ATTR, curves)
            self._remove_checkpoints(checkpoint, eval_dir)
            reason = (
                f"pruned at evaluation epoch {pruned.epoch} (the {pruned.trains_on} training, "
                f"seed {pruned.index})"
            )
            self._upload_artifacts(trial, config, result.history, "pruned", reason=reason)
            raise optuna.TrialPruned(reason) from None
        except NonFiniteLossError as exc:
            reason = f"evaluation: {exc}"
            trial.set_user_attr(FAIL_REASON_ATTR, reason)
            self._remove_checkpoints(checkpoint, eval_dir)
            self._upload_artifacts(trial, config, result.history, "fail", reason=reason)
            raise
        except SearchInterrupted as exc:
            message = f"evaluation {str(exc).removeprefix('search ')} by a signal"
            trial.set_user_attr(FAIL_REASON_ATTR, f"{message}; handed back for a retry")
            raise
        set_trial_system_attr(trial, EVALUATION_HISTORY_ATTR, curves)
        attrs = evaluation_attrs(runs)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if resumed is not None:
            trial.set_user_attr(RESUMED_ATTR, resumed)
        self._remove_checkpoints(checkpoint, eval_dir)
        note = result.metrics() | {
            "supernet_val_balanced_accuracy": result.val_balanced_accuracy,
            **{k: v for k, v in attrs.items() if not k.endswith("_seeds")},
        }
        self._upload_artifacts(trial, config, result.history, "complete", note)
        architecture = float(attrs[f"architecture_{self.metric}"])
        study = self.study_file.study
        if study.multi_objective:
            return architecture, float(attrs[study.size_objective])
        if study.objective == "architecture":
            return architecture
        return float(getattr(result, self.metric))

    def _train_evaluation_runs(
        self,
        trial: optuna.Trial,
        config: engine.SearchConfig,
        data: Any,
        result: SearchResult,
        eval_dir: Path | None,
        curves: dict[str, list[float | None]],
    ) -> tuple[dict[str, list[Any]], int | None]:
        """Trains every evaluation run (`evaluation_runs`), keeping each run's per-epoch
        `metric` in `curves`; only the first run (the long-tailed training of seed 0)
        reports to the pruner, at step = its epoch, and only when the trial is judged on
        the architecture. Returns the runs by training set and the first epoch this process
        computed after a resume (None: nothing was resumed)."""
        from hls_tune.engine.train import train

        settings = self.study_file.evaluate
        assert settings is not None
        resumed = result.resumed_from_epoch
        runs: dict[str, list[Any]] = {name: [] for name in TRAINING_SETS}
        for position, (trains_on, index) in enumerate(evaluation_runs(settings)):
            on_axis = self.reports and self.axis == "architecture" and position == 0
            curve = curves.setdefault(f"{trains_on}-seed-{index}", [])
            hooks = self._evaluation_hooks(trial, curve, on_axis, (trains_on, index))
            folder = f"seed-{index}" if trains_on == "longtail" else f"{trains_on}-seed-{index}"
            run = train(
                result.genotype,
                evaluate_train_config(config, result.genotype, settings, index),
                data=data if trains_on == "longtail" else balanced_counterpart(config.data),
                hooks=hooks,
                out=eval_dir / folder if eval_dir is not None else None,
            )
            if run.resumed_from_epoch is not None:
                base = config.total_epochs + position * settings.epochs
                resumed = base + run.resumed_from_epoch
            runs[trains_on].append(run)
        return runs, resumed

    def _evaluation_hooks(
        self, trial: optuna.Trial, curve: list[float | None], on_axis: bool, run: tuple[str, int]
    ) -> RunHooks:
        """Hooks of one evaluation run: every epoch's `metric` goes to `curve`; the run on
        the pruner's axis reports it at step = epoch and may be pruned."""

        def record(entry: Any) -> None:
            value = getattr(entry, self.metric)
            curve.append(value)
            if on_axis and value is not None:
                trial.report(value, entry.epoch)

        def on_epoch(entry: Any) -> bool:
            record(entry)
            if on_axis and trial.should_prune():
                raise _EvaluationPruned(*run, entry.epoch)
            return True

        def on_resume(restored: list[Any]) -> None:
            for entry in restored:
                record(entry)

        return RunHooks(on_epoch=on_epoch, on_resume=on_resume, should_stop=self.should_stop)

    @staticmethod
    def _remove_checkpoints(checkpoint: Path | None, eval_dir: Path | None) -> None:
        if checkpoint is not None:
            checkpoint.unlink(missing_ok=True)
        if eval_dir is not None:
            shutil.rmtree(eval_dir, ignore_errors=True)

    def _upload_artifacts(
        self,
        trial: optuna.Trial,
        config: Any,
        history: Any,
        state: str,
        metrics: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> None:
        """Figures and a note for the dashboard, while the trial still runs (never raises)."""
        if self.artifact_store is None:
            return
        from hls_tune.study.trial_artifacts import upload_trial_artifacts

        data = prepare_data(config.data)  # cached: the data this trial searched on
        upload_trial_artifacts(
            trial,
            self.artifact_store,
            config,
            history,
            state=state,
            shot_group=data.shot_group,
            train_counts=data.train_counts,
            metrics=metrics,
            reason=reason,
        )

    @staticmethod
    def _record_failure(trial: optuna.Trial, reason: str, history: list[EpochMetrics]) -> None:
        trial.set_user_attr(FAIL_REASON_ATTR, reason)
        set_trial_system_attr(trial, HISTORY_ATTR, history_attrs(history))
