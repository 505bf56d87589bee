"""One worker: load the study's stored settings, run trials until the global budget is used."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from hls_tune.errors import NonFiniteLossError
from hls_tune.objective import FAIL_REASON_ATTR, Objective
from hls_tune.search import EpochMetrics
from hls_tune.storage import open_storage, redact
from hls_tune.study import budget_used, load_study

DEFAULT_CHECKPOINT_DIR = "checkpoints"
THREADS_ENV = "HLS_TUNE_THREADS"


@dataclass
class WorkerSummary:
    """What one worker did."""

    trials: int = 0
    states: dict[str, int] = field(default_factory=dict)

    def add(self, state: TrialState) -> None:
        self.trials += 1
        self.states[state.name.lower()] = self.states.get(state.name.lower(), 0) + 1


def set_threads_from_env() -> None:
    """Applies HLS_TUNE_THREADS to torch (several CPU workers must not oversubscribe cores)."""
    threads = os.environ.get(THREADS_ENV)
    if threads:
        import torch

        torch.set_num_threads(max(1, int(threads)))


class _TrialProgress:
    """A tqdm bar per trial over its epochs (to stderr)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.number: int | None = None

    def __call__(self, trial: optuna.Trial, metrics: EpochMetrics) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.number != trial.number:
            self.close()
            self.number = trial.number
            self.bar = tqdm(
                total=metrics.epochs,
                initial=metrics.epoch,
                desc=f"trial {trial.number}",
                unit="epoch",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
            )
        self.bar.update(1)
        self.bar.set_postfix(val=f"{metrics.val_accuracy:.3f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_worker(
    url: str,
    study_name: str,
    *,
    n_trials: int | None = None,
    device: str | None = None,
    checkpoint_dir: str | Path | None = DEFAULT_CHECKPOINT_DIR,
    progress: bool = True,
    log: Any = None,
) -> WorkerSummary:
    """Runs trials of a study until its global budget (or this worker's `n_trials`) is used.

    Settings come from the storage (the study file stored at creation), never a local
    file. A diverged trial ends as FAIL with its reason in the user attribute
    `fail_reason`; the worker goes on with the next trial.

    Args:
        url: storage URL.
        study_name: the study to work on.
        n_trials: at most this many trials from this worker (None: until the budget is used).
        device: overrides the study file's device.
        checkpoint_dir: directory of per-trial checkpoints (shared by all workers).
        progress: show a progress bar per trial.
        log: callable taking one line (default: print to stderr).
    """
    set_threads_from_env()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    storage = open_storage(url)
    loaded = load_study(url, study_name, storage=storage)
    study, study_file = loaded.study, loaded.study_file
    budget = study_file.study.n_trials
    bar = _TrialProgress(progress)
    objective = Objective(study_file, device=device, checkpoint_dir=checkpoint_dir, on_epoch=bar)
    summary = WorkerSummary()
    while n_trials is None or summary.trials < n_trials:
        if budget_used(study) >= budget:
            break
        finished: list[optuna.trial.FrozenTrial] = []
        study.optimize(
            objective,
            n_trials=1,
            catch=(NonFiniteLossError,),
            gc_after_trial=False,
            callbacks=[lambda _study, frozen, done=finished: done.append(frozen)],
        )
        bar.close()
        for frozen in finished:
            summary.add(frozen.state)
            say(_trial_line(frozen))
    say(
        f"worker done: {summary.trials} trials ({_format_states(summary.states)}); "
        f"study budget {min(budget_used(study), budget)}/{budget}"
    )
    return summary


def _format_states(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"


def _trial_line(trial: optuna.trial.FrozenTrial) -> str:
    state = trial.state.name.lower()
    if trial.state == TrialState.COMPLETE:
        return f"trial {trial.number} complete: value {trial.value:.4f}"
    if trial.state == TrialState.FAIL:
        reason = trial.user_attrs.get(FAIL_REASON_ATTR, "see the worker log")
        return f"trial {trial.number} failed: {redact(str(reason))}"
    steps = len(trial.intermediate_values)
    return f"trial {trial.number} {state} after {steps} epochs"
