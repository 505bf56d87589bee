"""The Optuna objective: space → `engine.run_search` → report, prune, trial attributes.

A trial's user attributes hold what a person reads at a glance in `optuna trials` or the
dashboard (final metrics, shot accuracies, time, why it failed); its engine settings, genotype,
full metrics and per-epoch curves are system attributes (`hls_tune:*`), read back through
`study.trial_config`, `trial_genotype`, `trial_metrics` and `trial_history`.

With an [evaluate] table a trial has a second stage: the derived genotype is trained from
scratch (`engine.train.train`) once per evaluation seed, on the same data. Intermediate
values are reported on one step axis: search epoch e is step e, and epoch e of evaluation
seed i is step ``search_epochs + i * evaluate.epochs + e`` (search_epochs is
`SearchConfig.total_epochs`), so a pruner compares supernet accuracies at search steps and
trained-architecture accuracies of the same seed and epoch at evaluation steps. With
``trains_on = ["longtail", "balanced"]`` the trainings on the balanced counterpart follow
(run ``seeds + i``) and record ``architecture_balanced_*``; the value stays the long-tailed
training's, and those steps are reported but never pruned (the value is known by then).
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
from hls_tune.study.config import TRAINING_SETS, EvaluateSettings, StudyFile
from hls_tune.study.space import suggest
from hls_tune.study.study import (
    CONFIG_ATTR,
    GENOTYPE_ATTR,
    HISTORY_ATTR,
    METRICS_ATTR,
    OWN_TRIAL_ATTR,
    RETRIED_FROM_ATTR,
    SOURCE_ATTR,
)

FAIL_REASON_ATTR = "fail_reason"
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


def set_system_attr(trial: optuna.Trial, key: str, value: Any) -> None:
    """Stores a system attribute on a running trial (Optuna has no public setter)."""
    trial.storage.set_trial_system_attr(trial._trial_id, key, value)


def history_attrs(history: tuple[EpochMetrics, ...] | list[EpochMetrics]) -> dict[str, Any]:
    """Per-epoch curves stored on a trial: metric values, μ and each group's α-LR."""
    attrs: dict[str, Any] = {
        "val_accuracy_per_epoch": [m.val_accuracy for m in history],
        "val_balanced_accuracy_per_epoch": [m.val_balanced_accuracy for m in history],
        "train_loss_per_epoch": [m.train_loss for m in history],
        "mixing_ratio_per_epoch": [m.mixing_ratio for m in history],
    }
    if history:
        for group in history[0].alpha_lrs:
            attrs[f"alpha_lr_{group}_per_epoch"] = [m.alpha_lrs[group] for m in history]
    return attrs


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def glance_attrs(result: SearchResult) -> dict[str, Any]:
    """The user attributes of a complete trial: what a person reads at a glance."""
    metrics = result.metrics()
    attrs = {
        key: _rounded(metrics[key])
        for key in (
            "val_accuracy",
            "val_balanced_accuracy",
            "test_accuracy",
            "test_balanced_accuracy",
            "epochs_run",
        )
    }
    attrs["shot_accuracy"] = {k: _rounded(v) for k, v in result.shot_accuracy.items()}
    # measurements `compare` ranks and sums: kept to the bit
    attrs["supernet_val_balanced_accuracy"] = result.val_balanced_accuracy
    attrs["search_seconds"] = result.seconds
    attrs["alpha_lr_b2"] = _rounded(result.config.schedule.shared.b2)
    if result.source is not None:  # adapt_head: which shared source supernet, built here?
        attrs["source_supernet"] = {
            k: v for k, v in result.source.items() if k in ("key", "built", "epochs", "seconds")
        }
    return attrs


def result_system_attrs(result: SearchResult) -> dict[str, Any]:
    """The system attributes of a complete trial: settings, genotype, metrics, curves."""
    return {
        CONFIG_ATTR: result.config.to_dict(),
        GENOTYPE_ATTR: result.genotype.to_dict(),
        METRICS_ATTR: result.metrics(),
        HISTORY_ATTR: history_attrs(result.history),
    } | ({} if result.source is None else {SOURCE_ATTR: result.source})


def evaluate_train_config(
    config: engine.SearchConfig, genotype: engine.Genotype, settings: EvaluateSettings, index: int
) -> Any:
    """The `TrainConfig` of evaluation seed `index` of a trial searched with `config`.

    Same data, augmentation, device and (for a BBN genotype) mixing-ratio form as the
    search; size and recipe from [evaluate]; seed `config.seed + index`.
    """
    return engine.TrainConfig(
        data=config.data,
        network="bbn" if genotype.is_bbn else "plain",
        epochs=settings.epochs,
        channels=settings.channels,
        layers=settings.layers,
        head_cells=config.head_cells,
        batch_size=settings.batch_size,
        weight_lr=settings.lr,
        crop_padding=config.crop_padding,
        flip=config.flip,
        cutout=None if settings.cutout else 0,
        drop_path=0.2 if settings.drop_path else 0.0,
        auxiliary_weight=0.4 if settings.auxiliary else 0.0,
        mixing=config.schedule.mixing,
        device=config.device,
        seed=config.seed + index,
        eval_batch_size=config.eval_batch_size,
    )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def architecture_attrs(runs: list[Any]) -> dict[str, Any]:
    """The [evaluate] stage's user attributes: means over seeds (see CONTRACT of compare)."""

    def last(run: Any, name: str) -> float:
        value = getattr(run.history[-1], name) if run.history else None
        return float("nan") if value is None else float(value)

    balanced = [last(r, "val_balanced_accuracy") for r in runs]
    groups = runs[0].shot_accuracy.keys()
    return {
        "architecture_val_balanced_accuracy": _mean(balanced),
        "architecture_val_balanced_accuracy_seeds": balanced,
        "architecture_val_accuracy": _mean([last(r, "val_accuracy") for r in runs]),
        "architecture_test_accuracy": _mean([r.test_accuracy for r in runs]),
        "architecture_test_balanced_accuracy": _mean([r.test_balanced_accuracy for r in runs]),
        "architecture_shot_accuracy": {
            g: _mean([r.shot_accuracy[g] for r in runs]) for g in groups
        },
        "architecture_params": int(runs[0].params),
        "architecture_madds": int(runs[0].multiply_adds),
        "evaluate_seconds": sum(r.seconds for r in runs),
    }


# The figures of the architecture trained on the balanced set, recorded with the prefix
# ``architecture_balanced_`` (its size is the same network's).
BALANCED_FIGURES = (
    "architecture_val_balanced_accuracy",
    "architecture_val_balanced_accuracy_seeds",
    "architecture_test_balanced_accuracy",
    "architecture_shot_accuracy",
)


def evaluation_runs(settings: EvaluateSettings) -> list[tuple[str, int]]:
    """(training set, seed index) of each evaluation run, in the order of the trial's steps:
    every seed on the long-tailed set, then every seed on the balanced set."""
    return [(name, index) for name in settings.trains_on for index in range(settings.seeds)]


class _EvaluationPruned(Exception):
    def __init__(self, step: int) -> None:
        super().__init__(step)
        self.step = step


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
        set_system_attr(trial, OWN_TRIAL_ATTR, True)
        if trial.user_attrs.get(FAIL_REASON_ATTR) is not None:
            trial.set_user_attr(FAIL_REASON_ATTR, None)  # inherited from the retried original
        config, _ = suggest(trial, self.study_file)
        if self.device is not None:
            config = dataclasses.replace(config, device=self.device)
        set_system_attr(trial, CONFIG_ATTR, config.to_dict())
        data = prepare_data(config.data)
        history: list[EpochMetrics] = []
        shown = self.progress(trial.number, config.total_epochs) if self.progress else None

        def on_epoch(metrics: EpochMetrics) -> bool:
            if shown is not None:
                shown.show_epoch(metrics)
            history.append(metrics)
            if self.reports:
                trial.report(getattr(metrics, self.metric), metrics.epoch)
            return not (self.reports and trial.should_prune())

        def on_resume(restored: list[EpochMetrics]) -> None:
            # The retried trial re-reports what its crashed original had measured.
            history.extend(restored)
            for metrics in restored if self.reports else ():
                trial.report(getattr(metrics, self.metric), metrics.epoch)

        checkpoint = self.checkpoint_path(trial)
        try:
            hooks = RunHooks(
                on_epoch=on_epoch,
                on_resume=on_resume,
                on_step=shown.on_step if shown is not None else None,
                should_stop=self.should_stop,
            )
            result = engine.run_search(
                config,
                data=data,
                hooks=hooks,
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
            set_system_attr(trial, HISTORY_ATTR, history_attrs(result.history))
            set_system_attr(trial, GENOTYPE_ATTR, result.genotype.to_dict())
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

    @staticmethod
    def _record_search(trial: optuna.Trial, result: SearchResult) -> None:
        """What a finished search leaves on its trial: the settings, genotype, metrics and
        curves as system attributes, what a person reads at a glance as user attributes."""
        for key, value in result_system_attrs(result).items():
            set_system_attr(trial, key, value)
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
        resumes from its own checkpoint. `resumed_from_epoch` is then the first step (on
        the trial's step axis) that the retry computed itself.
        """
        from hls_tune.engine.train import train

        settings = self.study_file.evaluate
        assert settings is not None
        search_steps = config.total_epochs
        resumed = result.resumed_from_epoch
        eval_dir = self.evaluate_dir(trial)
        runs: dict[str, list[Any]] = {name: [] for name in TRAINING_SETS}

        def report(base: int, record: Any) -> None:
            value = getattr(record, self.metric)
            if self.reports and value is not None:
                trial.report(value, base + record.epoch)

        try:
            for position, (trains_on, index) in enumerate(evaluation_runs(settings)):
                base = search_steps + position * settings.epochs

                # Once the long-tailed trainings are done the trial has its value: the
                # balanced ones are reported (the curve shows them) but never pruned.
                prunable = self.reports and trains_on == "longtail"

                def on_epoch(record: Any, base: int = base, prunable: bool = prunable) -> bool:
                    report(base, record)
                    if prunable and trial.should_prune():
                        raise _EvaluationPruned(base + record.epoch)
                    return True

                def on_resume(restored: list[Any], base: int = base) -> None:
                    for record in restored:
                        report(base, record)

                folder = f"seed-{index}" if trains_on == "longtail" else f"{trains_on}-seed-{index}"
                run = train(
                    result.genotype,
                    evaluate_train_config(config, result.genotype, settings, index),
                    data=data if trains_on == "longtail" else balanced_counterpart(config.data),
                    hooks=RunHooks(
                        on_epoch=on_epoch, on_resume=on_resume, should_stop=self.should_stop
                    ),
                    out=eval_dir / folder if eval_dir is not None else None,
                )
                if run.resumed_from_epoch is not None:
                    resumed = base + run.resumed_from_epoch
                runs[trains_on].append(run)
        except _EvaluationPruned as pruned:
            self._remove_checkpoints(checkpoint, eval_dir)
            position, epoch = divmod(pruned.step - search_steps, settings.epochs)
            trains_on, index = evaluation_runs(settings)[position]
            reason = (
                f"pruned at step {pruned.step} (evaluation on the {trains_on} set, seed "
                f"{index}, epoch {epoch})"
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
        attrs = architecture_attrs(runs["longtail"])
        if runs["balanced"]:
            balanced = architecture_attrs(runs["balanced"])
            attrs |= {
                key.replace("architecture_", "architecture_balanced_", 1): balanced[key]
                for key in BALANCED_FIGURES
            }
            attrs["evaluate_seconds"] += balanced["evaluate_seconds"]
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
        set_system_attr(trial, HISTORY_ATTR, history_attrs(history))
