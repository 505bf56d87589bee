"""The method comparison: a study's complete trials → per method and imbalance ratio, mean ±
std over seeds, the paired difference to `darts` with its 95 % interval, and how well the
supernet's accuracy predicts the trained architecture's (Kendall τ-b).

Each trial is placed by the settings it ran (its stored engine config, read by
`trial_config`: method, ``data.imbalance_ratio``, seed). Its figures are user attributes:

- the supernet at the end of the search: ``supernet_val_balanced_accuracy``, its
  balanced-test-set figures (``metrics``, ``shot_accuracy``) and ``search_seconds``;
- the derived architecture trained from scratch (a study with an ``[evaluate]`` table):
  ``architecture_val_balanced_accuracy``, ``architecture_test_balanced_accuracy``,
  ``architecture_shot_accuracy``, ``architecture_params``, ``evaluate_seconds``; and, when
  ``[evaluate] trains_on`` adds the balanced set, the same network trained on it:
  ``architecture_balanced_val_balanced_accuracy`` (validated on the same images).

A supernet-only study has no architecture figures; those cells read "—".
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hls_tune.engine.settings import METHODS
from hls_tune.study.compare_stats import (
    Difference,
    KendallTau,
    Summary,
    finite_or_none,
    kendall_tau_b,
)
from hls_tune.study.study import foreign_note, own_trials, trial_metrics
from hls_tune.study.study import trial_config as _stored_config

BASELINE = "darts"
MISSING = "—"


def trial_config(trial: FrozenTrial) -> dict[str, Any]:
    """The engine config a trial ran (empty when it stores none): the one place that knows
    where a trial keeps it."""
    return _stored_config(trial)


def _attr(name: str) -> Callable[[FrozenTrial], Any]:
    return lambda trial: trial.user_attrs.get(name)


def _nested(name: str, key: str) -> Callable[[FrozenTrial], Any]:
    return lambda trial: (trial.user_attrs.get(name) or {}).get(key)


def _metric(key: str) -> Callable[[FrozenTrial], Any]:
    return lambda trial: trial_metrics(trial).get(key)


def _supernet_val(trial: FrozenTrial) -> Any:
    return trial.user_attrs.get("supernet_val_balanced_accuracy")


def _supernet_shot(key: str) -> Callable[[FrozenTrial], Any]:
    def read(trial: FrozenTrial) -> Any:
        attrs = trial.user_attrs
        shots = attrs.get("shot_accuracy") or trial_metrics(trial).get("shot_accuracy")
        return (shots or {}).get(key)

    return read


def _total_seconds(trial: FrozenTrial) -> Any:
    search = trial.user_attrs.get("search_seconds")
    evaluate = trial.user_attrs.get("evaluate_seconds")
    if search is None:
        return None
    return search + (evaluate or 0.0)


@dataclass(frozen=True)
class Column:
    """One figure of the comparison.

    Args:
        key: the name in JSON output.
        title: the markdown header.
        read: the figure of one trial (None: the trial has none).
        unit: "%" (a fraction shown in percent), "count" or "s".
    """

    key: str
    title: str
    read: Callable[[FrozenTrial], Any]
    unit: str = "%"


SUPERNET_COLUMNS = (
    Column("supernet_val", "val", _supernet_val),
    Column("supernet_test", "test", _metric("test_balanced_accuracy")),
    Column("supernet_many", "many", _supernet_shot("many")),
    Column("supernet_medium", "medium", _supernet_shot("medium")),
    Column("supernet_few", "few", _supernet_shot("few")),
    Column("search_seconds", "search (s)", _attr("search_seconds"), "s"),
)
ARCHITECTURE_COLUMNS = (
    Column("architecture_val", "val", _attr("architecture_val_balanced_accuracy")),
    Column("architecture_test", "test", _attr("architecture_test_balanced_accuracy")),
    Column("architecture_many", "many", _nested("architecture_shot_accuracy", "many")),
    Column("architecture_medium", "medium", _nested("architecture_shot_accuracy", "medium")),
    Column("architecture_few", "few", _nested("architecture_shot_accuracy", "few")),
    Column("architecture_params", "params", _attr("architecture_params"), "count"),
    Column("evaluate_seconds", "evaluate (s)", _attr("evaluate_seconds"), "s"),
)
TOTAL_SECONDS = Column("total_seconds", "search + evaluate (s)", _total_seconds, "s")
COLUMNS = (*SUPERNET_COLUMNS, *ARCHITECTURE_COLUMNS, TOTAL_SECONDS)
# The paired differences the markdown shows (JSON holds every column's).
DIFFERENCE_KEYS = (
    "supernet_val",
    "architecture_val",
    "architecture_test",
    "architecture_few",
    "architecture_params",
    "total_seconds",
)
_BY_KEY = {column.key: column for column in COLUMNS}


@dataclass(frozen=True)
class Row:
    """One method at one imbalance ratio.

    Args:
        method: the engine method.
        imbalance_ratio: the data's imbalance ratio.
        seeds: the engine seeds of the trials summarised.
        figures: column key (see `COLUMNS`) → summary over the seeds (None: no value).
        differences: column key → paired difference to darts at the same ratio (None: no
            seed in common, or this is darts).
    """

    method: str
    imbalance_ratio: float
    seeds: tuple[int, ...]
    figures: dict[str, Summary | None]
    differences: dict[str, Difference | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "method": self.method,
            "imbalance_ratio": self.imbalance_ratio,
            "seeds": list(self.seeds),
            "figures": {k: None if s is None else s.to_dict() for k, s in self.figures.items()},
            f"difference_to_{BASELINE}": {
                k: None if d is None else d.to_dict() for k, d in self.differences.items()
            },
        }


@dataclass(frozen=True)
class Comparison:
    """The comparison of one study.

    Args:
        study: the study name.
        metric: the objective's metric (val_accuracy or val_balanced_accuracy).
        rows: one row per method and imbalance ratio, ratio first, methods in SPEC order.
        complete: number of complete trials summarised.
        excluded: trial states left out (pruned, failed, running), with their counts.
        foreign: trials left out because hls-tune did not create them.
        supernet_predicts_architecture: τ-b between the supernet's and the trained
            architecture's balanced validation accuracy over the complete trials.
        balanced_predicts_longtail: τ-b between the architecture trained on a balanced set
            and on the long-tailed set (studies that train on both).
    """

    study: str
    metric: str
    rows: tuple[Row, ...]
    complete: int
    excluded: dict[str, int]
    supernet_predicts_architecture: KendallTau | None = None
    balanced_predicts_longtail: KendallTau | None = None
    foreign: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the whole comparison."""
        tau = self.supernet_predicts_architecture
        tau_bl = self.balanced_predicts_longtail
        return {
            "study": self.study,
            "metric": self.metric,
            "complete": self.complete,
            "excluded": self.excluded,
            "foreign": self.foreign,
            "units": {c.key: c.unit for c in COLUMNS},
            "rows": [row.to_dict() for row in self.rows],
            "supernet_vs_architecture": None if tau is None else tau.to_dict(),
            "balanced_vs_longtail": None if tau_bl is None else tau_bl.to_dict(),
        }

    def markdown(self) -> str:
        """The tables in markdown, with captions saying what the numbers are."""
        excluded = ", ".join(f"{n} {state}" for state, n in sorted(self.excluded.items()) if n)
        lines = [
            f"Study `{self.study}`: {self.complete} complete trials"
            + (f" ({excluded} left out)" if excluded else "")
            + f"; objective = {self.metric}. Mean ± sample std over seeds. Accuracies in %: "
            "val = balanced accuracy on the study's validation set ([data] val_source), test / "
            "many / medium / few = balanced test set. — = not recorded."
            + (f" ({foreign_note(self.foreign)}.)" if self.foreign else ""),
            "",
        ]
        lines += self._table(
            "Supernet at the end of the search",
            ["method", "IR", "seeds"],
            lambda row: [row.method, f"{row.imbalance_ratio:g}", str(len(row.seeds))],
            [
                (c.title, lambda row, c=c: _format(row.figures.get(c.key), c.unit))
                for c in SUPERNET_COLUMNS
            ],
            self.rows,
        )
        lines += self._table(
            "Derived architecture trained from scratch ([evaluate]; params of the network)",
            ["method", "IR", "seeds"],
            lambda row: [row.method, f"{row.imbalance_ratio:g}", str(len(row.seeds))],
            [
                (c.title, lambda row, c=c: _format(row.figures.get(c.key), c.unit))
                for c in ARCHITECTURE_COLUMNS
            ],
            self.rows,
        )
        differenced = [row for row in self.rows if row.method != BASELINE]
        if differenced:
            lines += self._table(
                f"Paired difference to `{BASELINE}` (same imbalance ratio, same seed): mean "
                "[95 % t-interval]; accuracies in percentage points, time in s",
                ["method", "IR", "pairs"],
                lambda row: [row.method, f"{row.imbalance_ratio:g}", _pairs(row)],
                [
                    (
                        f"Δ {_difference_title(key)}",
                        lambda row, key=key: _format_difference(
                            row.differences.get(key), _BY_KEY[key].unit
                        ),
                    )
                    for key in DIFFERENCE_KEYS
                ],
                differenced,
            )
        tau = self.supernet_predicts_architecture
        lines.append(
            "Supernet val → trained-architecture val, Kendall "
            + (
                f"{tau.format()}"
                if tau is not None
                else f"τ-b: {MISSING} (fewer than 2 trials with both accuracies)"
            )
        )
        if self.balanced_predicts_longtail is not None:
            lines.append("")
            lines.append(
                "Architecture trained on the balanced set → on the long-tailed set (val), "
                f"Kendall {self.balanced_predicts_longtail.format()}"
            )
        return "\n".join(lines) + "\n"

    @staticmethod
    def _table(
        caption: str,
        keys: list[str],
        key_cells: Callable[[Row], list[str]],
        value_cells: list[tuple[str, Callable[[Row], str]]],
        rows: Sequence[Row],
    ) -> list[str]:
        header = [*keys, *(title for title, _ in value_cells)]
        lines = [
            caption + ":",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---", "---:", "---:"] + ["---:"] * len(value_cells)) + "|",
        ]
        for row in rows:
            cells = [*key_cells(row), *(cell(row) for _, cell in value_cells)]
            lines.append("| " + " | ".join(cells) + " |")
        return [*lines, ""]


def _difference_title(key: str) -> str:
    column = _BY_KEY[key]
    if key.startswith("supernet_"):
        return f"supernet {column.title}"
    if key.startswith("architecture_"):
        return f"arch. {column.title}"
    return "time"


def _pairs(row: Row) -> str:
    return str(max((d.n for d in row.differences.values() if d is not None), default=0))


def _format(summary: Summary | None, unit: str) -> str:
    return MISSING if summary is None else summary.format(unit)


def _format_difference(difference: Difference | None, unit: str) -> str:
    return MISSING if difference is None else difference.format(unit)


def _setting(trial: FrozenTrial, base: dict[str, Any]) -> tuple[str, float, int]:
    config = trial_config(trial)
    params = trial.params
    method = config.get("method", params.get("method", base.get("method")))
    ratio = (config.get("data") or {}).get(
        "imbalance_ratio",
        params.get("data.imbalance_ratio", (base.get("data") or {}).get("imbalance_ratio")),
    )
    seed = config.get("seed", params.get("seed", base.get("seed", 0)))
    return str(method), float(ratio), int(seed)


def _method_order(method: str) -> tuple[int, str]:
    return (METHODS.index(method) if method in METHODS else len(METHODS), method)


def _per_seed(members: list[tuple[int, FrozenTrial]], column: Column) -> dict[int, float]:
    """seed → the column's value (the mean when several trials ran the same seed)."""
    values: dict[int, list[float]] = {}
    for seed, trial in members:
        value = finite_or_none(column.read(trial))
        if value is not None:
            values.setdefault(seed, []).append(value)
    return {seed: statistics.fmean(v) for seed, v in values.items()}


def comparison_rows(
    trials: Sequence[FrozenTrial], base: dict[str, Any] | None = None
) -> tuple[Row, ...]:
    """Groups complete trials by (method, imbalance ratio), summarises each column and
    pairs each method with darts at the same ratio by seed.

    Args:
        trials: the study's trials; only COMPLETE ones are used.
        base: the study's fixed engine config (`SearchConfig.to_dict()`), the fallback
            for a trial that stores no config of its own.
    """
    base = base or {}
    groups: dict[tuple[str, float], list[tuple[int, FrozenTrial]]] = {}
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        method, ratio, seed = _setting(trial, base)
        groups.setdefault((method, ratio), []).append((seed, trial))
    per_seed = {
        group: {c.key: _per_seed(members, c) for c in COLUMNS} for group, members in groups.items()
    }
    rows = []
    for (method, ratio), members in sorted(
        groups.items(), key=lambda item: (item[0][1], _method_order(item[0][0]))
    ):
        figures = {c.key: Summary.of(c.read(t) for _, t in members) for c in COLUMNS}
        baseline = per_seed.get((BASELINE, ratio))
        differences: dict[str, Difference | None] = {}
        if method != BASELINE and baseline is not None:
            differences = {
                c.key: Difference.paired(per_seed[(method, ratio)][c.key], baseline[c.key])
                for c in COLUMNS
            }
        seeds = tuple(sorted(s for s, _ in members))
        rows.append(Row(method, ratio, seeds, figures, differences))
    return tuple(rows)


def rank_correlation(
    trials: Sequence[FrozenTrial],
    x: Callable[[FrozenTrial], Any],
    y: Callable[[FrozenTrial], Any],
) -> KendallTau | None:
    """Kendall τ-b between two figures over the complete trials that have both."""
    pairs = []
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        a, b = finite_or_none(x(trial)), finite_or_none(y(trial))
        if a is not None and b is not None:
            pairs.append((a, b))
    return kendall_tau_b([a for a, _ in pairs], [b for _, b in pairs])


def compare_study(
    study: optuna.Study, metric: str, base: dict[str, Any] | None = None
) -> Comparison:
    """The comparison of a study.

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
        supernet_predicts_architecture=rank_correlation(
            trials, _supernet_val, _attr("architecture_val_balanced_accuracy")
        ),
        balanced_predicts_longtail=rank_correlation(
            trials,
            _attr("architecture_balanced_val_balanced_accuracy"),
            _attr("architecture_val_balanced_accuracy"),
        ),
    )
