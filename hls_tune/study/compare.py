"""The method comparison: a study's complete trials → mean ± std over seeds per method and
imbalance ratio, as a markdown table (the way the long-tailed NAS papers present theirs).

Each trial is placed by the settings it ran (its stored engine config: method,
``data.imbalance_ratio``, seed); its figures are the study objective (the trial value,
measured on the validation split) and the balanced-test-set figures the objective stores
(top-1 and balanced accuracy; many/medium/few-shot). Trials hls-tune did not create are
left out and counted.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from hls_tune.engine.settings import METHODS
from hls_tune.study.study import foreign_note, own_trials, trial_config, trial_metrics

# Column key → (header, where the value comes from).
COLUMNS = (
    ("objective", "objective"),
    ("test_accuracy", "test top-1"),
    ("test_balanced_accuracy", "balanced"),
    ("many", "many-shot"),
    ("medium", "medium-shot"),
    ("few", "few-shot"),
)


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation of one figure over seeds (n values).

    Example:
        >>> Summary.of([0.8, 0.9]).format()
        '85.0 ± 7.1'
    """

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary | None:
        """The summary of the finite values given, or None when there is none."""
        finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not finite:
            return None
        std = statistics.stdev(finite) if len(finite) > 1 else None
        return cls(statistics.fmean(finite), std, len(finite))

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        """`mean ± std` in percent (std left out for a single value)."""
        mean = f"{self.mean * scale:.{digits}f}"
        return mean if self.std is None else f"{mean} ± {self.std * scale:.{digits}f}"


@dataclass(frozen=True)
class Row:
    """One method at one imbalance ratio.

    Args:
        method: the engine method.
        imbalance_ratio: the data's imbalance ratio.
        seeds: the engine seeds of the trials summarised.
        figures: column key (see `COLUMNS`) → summary over the seeds (None: no value).
    """

    method: str
    imbalance_ratio: float
    seeds: tuple[int, ...]
    figures: dict[str, Summary | None]


@dataclass(frozen=True)
class Comparison:
    """The comparison table of one study.

    Args:
        study: the study name.
        metric: the objective's metric (val_accuracy or val_balanced_accuracy).
        rows: one row per method and imbalance ratio, ratio first, methods in SPEC order.
        complete: number of complete trials summarised.
        excluded: trial states left out (pruned, failed, running), with their counts.
        foreign: trials left out because hls-tune did not create them.
    """

    study: str
    metric: str
    rows: tuple[Row, ...]
    complete: int
    excluded: dict[str, int]
    foreign: int = 0

    def markdown(self) -> str:
        """The table in markdown, with a caption saying what the numbers are."""
        excluded = ", ".join(f"{n} {state}" for state, n in sorted(self.excluded.items()) if n)
        caption = (
            f"Study `{self.study}`: {self.complete} complete trials"
            + (f" ({excluded} left out)" if excluded else "")
            + f". Mean ± sample std over seeds, in %. objective = {self.metric} on the "
            "held-out long-tailed validation split; the other columns are on the balanced "
            "test set." + (f" ({foreign_note(self.foreign)}.)" if self.foreign else "")
        )
        header = ["method", "IR", "seeds", *(title for _, title in COLUMNS)]
        lines = [
            caption,
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---", "---:", "---:"] + ["---:"] * len(COLUMNS)) + "|",
        ]
        for row in self.rows:
            cells = [
                row.method,
                f"{row.imbalance_ratio:g}",
                str(len(row.seeds)),
                *(_format(row.figures[key]) for key, _ in COLUMNS),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _format(summary: Summary | None) -> str:
    return "–" if summary is None else summary.format()


def _setting(trial: optuna.trial.FrozenTrial, base: dict[str, Any]) -> tuple[str, float, int]:
    config = trial_config(trial)
    params = trial.params
    method = config.get("method", params.get("method", base.get("method")))
    ratio = (config.get("data") or {}).get(
        "imbalance_ratio",
        params.get("data.imbalance_ratio", (base.get("data") or {}).get("imbalance_ratio")),
    )
    seed = config.get("seed", params.get("seed", base.get("seed", 0)))
    return str(method), float(ratio), int(seed)


def _figures(trial: optuna.trial.FrozenTrial) -> dict[str, float | None]:
    metrics = trial_metrics(trial)
    shots = metrics.get("shot_accuracy") or trial.user_attrs.get("shot_accuracy") or {}
    return {
        "objective": trial.value,
        "test_accuracy": metrics.get("test_accuracy"),
        "test_balanced_accuracy": metrics.get("test_balanced_accuracy"),
        "many": shots.get("many"),
        "medium": shots.get("medium"),
        "few": shots.get("few"),
    }


def _method_order(method: str) -> tuple[int, str]:
    return (METHODS.index(method) if method in METHODS else len(METHODS), method)


def comparison_rows(
    trials: Sequence[optuna.trial.FrozenTrial], base: dict[str, Any] | None = None
) -> tuple[Row, ...]:
    """Groups complete trials by (method, imbalance ratio) and summarises each column.

    Args:
        trials: the study's trials; only COMPLETE ones are used.
        base: the study's fixed engine config (`SearchConfig.to_dict()`), the fallback
            for a trial that stores no config of its own.
    """
    base = base or {}
    groups: dict[tuple[str, float], list[tuple[int, dict[str, float | None]]]] = {}
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        method, ratio, seed = _setting(trial, base)
        groups.setdefault((method, ratio), []).append((seed, _figures(trial)))
    rows = []
    for (method, ratio), members in sorted(
        groups.items(), key=lambda item: (item[0][1], _method_order(item[0][0]))
    ):
        figures = {
            key: Summary.of(f[key] for _, f in members if f[key] is not None) for key, _ in COLUMNS
        }
        rows.append(Row(method, ratio, tuple(sorted(s for s, _ in members)), figures))
    return tuple(rows)


def compare_study(
    study: optuna.Study, metric: str, base: dict[str, Any] | None = None
) -> Comparison:
    """The comparison table of a study.

    Args:
        study: an hls-tune study (trials with the objective's user attributes).
        metric: the study's metric name, for the caption.
        base: the study's fixed engine config, for trials without a stored config.
    """
    trials, foreign = own_trials(study)
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    complete = counts.pop("complete", 0)
    return Comparison(
        study=study.study_name,
        metric=metric,
        rows=comparison_rows(trials, base),
        complete=complete,
        excluded=counts,
        foreign=foreign,
    )
