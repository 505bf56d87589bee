"""The study report's figures (`hls-tune report`): the study-level PNGs (optimization history,
learning curves, parameter importances, objective vs categorical parameters and vs α-LR
breakpoints) and, for the best trials, their cell diagrams and the α-evolution and schedule
PNGs their workers uploaded to the artifact store (`study_figures`).

The HTML page that embeds them is `report`'s business.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState

from hls_tune.engine import plots
from hls_tune.engine.nas.genotype import Genotype
from hls_tune.study import optuna_internals
from hls_tune.study.keys import SHAPE_KEYS, SHAPE_PARAMS
from hls_tune.study.study import own_trials, trial_config, trial_genotype
from hls_tune.study.trial_artifacts import genotype_cells

# Every level's breakpoints and floor (shared first, then backbone_, head_, <group>_).
HLS_PARAMS = tuple(name for names in SHAPE_PARAMS.values() for name in names)
CATEGORICAL_PARAMS = ("mix_form", "alpha_lr_shape")
# The per-level shapes get a figure only when some trial sampled them.
LEVEL_SHAPE_PARAMS = tuple(k for k in SHAPE_KEYS if k != "alpha_lr_shape")


@dataclass(frozen=True)
class ReportFigure:
    """One figure of the study report: its file, a heading and a caption."""

    path: Path
    title: str
    caption: str = ""


def _message_figure(text: str, title: str) -> Any:
    figure = plots.new_figure(6.0, 2.4)
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, wrap=True)
    axes.set_title(title)
    return figure


def objective_label(study: optuna.Study) -> str:
    """The name of the study's objective (its metric) for axis labels and the page header."""
    return str(study.user_attrs.get("hls_tune:metric", "objective value"))


def _trial_value(trial: FrozenTrial, name: str) -> Any:
    """A trial's parameter, else the engine setting of the same name from its stored config."""
    if name in trial.params:
        return trial.params[name]
    config = trial_config(trial)
    schedule = config.get("schedule") or {}
    return schedule.get(name, config.get(name))


def _history_figure(study: optuna.Study, trials: Sequence[FrozenTrial]) -> Any:
    figure = plots.new_figure(7.0, 3.6)
    axes = figure.add_subplot()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    axes.plot(
        [t.number for t in complete], [t.value for t in complete], "o", label="complete", ms=6
    )
    if pruned:
        axes.plot(
            [t.number for t in pruned],
            [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
            "x",
            color="gray",
            label="pruned (last epoch)",
            ms=7,
        )
    if complete:
        best, xs, ys = None, [], []
        for t in sorted(complete, key=lambda t: t.number):
            assert t.value is not None
            if best is None or (t.value > best if maximize else t.value < best):
                best = t.value
            xs.append(t.number)
            ys.append(best)
        axes.step(xs, ys, where="post", color="C3", label="best so far")
    axes.set_xlabel("trial")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(objective_label(study))
    counts = {s: sum(1 for t in trials if t.state == s) for s in TrialState}
    axes.set_title(
        f"optimization history: {counts[TrialState.COMPLETE]} complete, "
        f"{counts[TrialState.PRUNED]} pruned, {counts[TrialState.FAIL]} failed",
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def _curves_figure(study: optuna.Study, trials: Sequence[FrozenTrial]) -> Any:
    figure = plots.new_figure(7.0, 3.6)
    axes = figure.add_subplot()
    drawn = [t for t in trials if t.intermediate_values]
    shown = set(_best_numbers(study, drawn, CURVE_LEGEND_ENTRIES))
    for t in drawn:
        steps = sorted(t.intermediate_values)
        complete = t.state == TrialState.COMPLETE
        style = (
            {"lw": 1.4, "alpha": 0.9}
            if complete
            else {"lw": 1.0, "alpha": 0.5, "ls": "--", "color": "gray"}
        )
        # Complete trials are named in the legend (the best ones when there are many);
        # the rest share one grey entry.
        label = f"trial {t.number}" if complete and t.number in shown else "_nolegend_"
        axes.plot(
            steps, [t.intermediate_values[s] for s in steps], marker=".", label=label, **style
        )
    if any(t.state != TrialState.COMPLETE for t in drawn):
        axes.plot([], [], lw=1.0, ls="--", color="gray", label="not complete (pruned, failed)")
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(objective_label(study))
    more = sum(1 for t in drawn if t.state == TrialState.COMPLETE) - len(shown)
    axes.set_title(
        "per-epoch value of every trial"
        + (f" (legend: the best {len(shown)}, {more} more complete)" if more > 0 else ""),
        fontsize=10,
    )
    axes.grid(alpha=0.3)
    if drawn:
        axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return figure


CURVE_LEGEND_ENTRIES = 10


def _best_numbers(study: optuna.Study, trials: Sequence[FrozenTrial], count: int) -> list[int]:
    """Numbers of the best `count` complete trials."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete.sort(key=lambda t: ((-t.value if maximize else t.value), t.number))  # type: ignore[operator]
    return [t.number for t in complete[:count]]


def _importance_figure(study: optuna.Study, complete: Sequence[FrozenTrial]) -> Any:
    title = "parameter importances"
    if len(complete) < 2:
        return _message_figure(
            f"needs at least 2 complete trials (this study has {len(complete)})", title
        )
    if len({t.value for t in complete}) < 2:
        return _message_figure(
            "every complete trial has the same value: nothing to attribute", title
        )
    try:
        with warnings.catch_warnings():  # few-trial accuracy warnings: the title says how few
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        return _message_figure(f"not computable yet: {error}", title)
    if not importances:
        return _message_figure("no parameter varied across the complete trials", title)
    names = list(importances)[::-1]
    figure = plots.new_figure(6.5, 0.45 * len(names) + 1.4)
    axes = figure.add_subplot()
    axes.barh(names, [importances[n] for n in names], color="C0")
    for y, name in enumerate(names):
        axes.text(importances[name], y, f" {importances[name]:.2f}", va="center", fontsize=8)
    axes.set_xlabel("importance (normalised to sum to 1)")
    axes.set_xlim(0, max(1.0, max(importances.values()) * 1.15))
    axes.set_title(f"{title} ({len(complete)} complete trials)", fontsize=10)
    return figure


def _categorical_figure(study: optuna.Study, complete: Sequence[FrozenTrial], name: str) -> Any:
    groups: dict[str, list[float]] = {}
    for t in complete:
        groups.setdefault(str(_trial_value(t, name)), []).append(float(t.value))  # type: ignore[arg-type]
    title = f"objective vs {name}"
    if not groups:
        return _message_figure("no complete trial yet", title)
    labels = sorted(groups)
    figure = plots.new_figure(max(4.5, 1.1 * len(labels) + 2.0), 3.4)
    axes = figure.add_subplot()
    axes.boxplot([groups[k] for k in labels], tick_labels=labels, widths=0.5, showfliers=False)
    for i, label in enumerate(labels, start=1):
        values = groups[label]
        # Deterministic jitter keeps the points apart and the figure reproducible.
        offsets = [((j * 0.618) % 1.0 - 0.5) * 0.3 for j in range(len(values))]
        axes.plot([i + o for o in offsets], values, "o", color="C0", alpha=0.7, ms=5)
    axes.set_xlabel(name)
    axes.set_ylabel(objective_label(study))
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3, axis="y")
    return figure


def _level_of(name: str) -> str:
    """The level prefix of a breakpoint or floor key ("" for the shared level)."""
    return next(prefix for prefix, names in SHAPE_PARAMS.items() if name in names)


def _breakpoints_figure(study: optuna.Study, complete: Sequence[FrozenTrial]) -> Any:
    present = [n for n in HLS_PARAMS if any(n in t.params for t in complete)]
    title = "objective vs α-LR breakpoints"
    if not present:
        return _message_figure("no complete trial sampled alpha_lr_b1, _span or _floor", title)
    figure = plots.new_figure(3.4 * len(present) + 0.6, 3.4)
    # Each level's breakpoints are coloured by that level's own shape.
    level_shape = {n: _level_of(n) + "alpha_lr_shape" for n in present}
    shapes = sorted({str(_trial_value(t, level_shape[n])) for t in complete for n in present})
    colors = {s: f"C{i % 10}" for i, s in enumerate(shapes)}
    for k, name in enumerate(present):
        axes = figure.add_subplot(1, len(present), k + 1)
        for shape in shapes:
            chosen = [
                t
                for t in complete
                if name in t.params and str(_trial_value(t, level_shape[name])) == shape
            ]
            axes.plot(
                [t.params[name] for t in chosen],
                [t.value for t in chosen],
                "o",
                color=colors[shape],
                label=shape,
                ms=5,
            )
        axes.set_xlabel(name)
        if k == 0:
            axes.set_ylabel(objective_label(study))
        axes.grid(alpha=0.3)
    figure.legend(
        handles=[Line2D([], [], marker="o", ls="", color=colors[s], label=s) for s in shapes],
        loc="outside right center",
        fontsize=8,
        title="α-LR shape",
    )
    figure.suptitle(title, fontsize=10)
    return figure


def study_figures(
    study: optuna.Study,
    out: str | Path,
    *,
    top_k: int = 3,
    cell_engine: plots.CellEngine = "auto",
    artifact_store: Any | None = None,
) -> tuple[list[ReportFigure], list[tuple[FrozenTrial, list[ReportFigure]]]]:
    """Writes the study report's PNG files into `out`.

    Args:
        study: the study.
        out: output directory.
        top_k: how many of the best complete trials get their own figures.
        cell_engine: cell diagrams with `dot`, `matplotlib` or `auto`.
        artifact_store: the store the workers uploaded the trials' figures to; each top
            trial's α-evolution and schedule figures are copied from it.

    Returns:
        The study-level figures, and for each of the `top_k` best complete trials (best
        first) the trial with its figures (cell diagrams, then α evolution and schedule).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trials, _ = own_trials(study)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    figures = _study_level_figures(study, trials, complete, out)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    ranked = sorted(complete, key=lambda t: ((-t.value if maximize else t.value), t.number))
    top: list[tuple[FrozenTrial, list[ReportFigure]]] = []
    for trial in ranked[:top_k]:
        cells = _cell_figures(trial, out, cell_engine)
        cells += _trial_artifact_figures(study, trial, artifact_store, out)
        top.append((trial, cells))
    return figures, top


def _study_level_figures(
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    complete: Sequence[FrozenTrial],
    out: Path,
) -> list[ReportFigure]:
    """The figures about the whole study, saved into `out`, in the report's order."""
    figures = [
        ReportFigure(
            plots.save_figure(_history_figure(study, trials), out / "optimization_history.png"),
            "Optimization history",
            "Each complete trial's value, the best so far, and where pruned trials stopped.",
        ),
        ReportFigure(
            plots.save_figure(_curves_figure(study, trials), out / "learning_curves.png"),
            "Learning curves",
            "The value reported after every epoch (what the pruner sees).",
        ),
        ReportFigure(
            plots.save_figure(_importance_figure(study, complete), out / "param_importances.png"),
            "Parameter importances",
            "optuna.importance.get_param_importances over the complete trials.",
        ),
    ]
    sampled_levels = [n for n in LEVEL_SHAPE_PARAMS if any(n in t.params for t in complete)]
    for name in (*CATEGORICAL_PARAMS, *sampled_levels):
        figures.append(
            ReportFigure(
                plots.save_figure(
                    _categorical_figure(study, complete, name), out / f"objective_vs_{name}.png"
                ),
                f"Objective vs {name}",
                "A box per value, one dot per complete trial.",
            )
        )
    figures.append(
        ReportFigure(
            plots.save_figure(
                _breakpoints_figure(study, complete), out / "objective_vs_breakpoints.png"
            ),
            "Objective vs breakpoints and floor",
            "Each level's alpha_lr_b1, alpha_lr_span and alpha_lr_floor (alpha_lr_*, "
            "backbone_alpha_lr_*, head_alpha_lr_*, ...), where its shape samples them.",
        )
    )
    return figures


def _cell_figures(
    trial: FrozenTrial, out: Path, cell_engine: plots.CellEngine
) -> list[ReportFigure]:
    """The diagrams of the trial's derived cells (none if it stored no genotype)."""
    cells: list[ReportFigure] = []
    stored = trial_genotype(trial)
    if stored is not None:
        genotype = Genotype.from_dict(stored)
        for cell, edges, concat in genotype_cells(genotype):
            path, _ = plots.cell_diagram(
                edges,
                concat,
                out / f"trial{trial.number}_cell_{cell}.png",
                title=f"trial {trial.number}: {cell} cell",
                engine=cell_engine,
            )
            cells.append(ReportFigure(path, f"{cell} cell"))
    return cells


# Uploaded trial figures the report copies, by file-name prefix, with their headings.
ARTIFACT_FIGURES = (
    ("alphas", "α evolution (op weights of every α group over the epochs)"),
    ("schedule", "α learning-rate schedule of each group"),
    ("training", "training vs validation loss, each branch's loss, each α group's movement"),
)


def _trial_artifact_figures(
    study: optuna.Study, trial: FrozenTrial, store: Any | None, out: Path
) -> list[ReportFigure]:
    """The trial's uploaded α-evolution and schedule PNGs, copied into `out`."""
    if store is None:
        return []
    from optuna.artifacts import get_all_artifact_meta

    try:
        metas = get_all_artifact_meta(trial, storage=optuna_internals.study_storage(study))
    except Exception:  # an artifact store the storage cannot list: no figures, no failure
        return []
    figures = []
    for prefix, title in ARTIFACT_FIGURES:
        for meta in sorted(metas, key=lambda m: m.filename):
            name = meta.filename
            if not (name.startswith(prefix) and name.endswith(".png")):
                continue
            path = out / f"trial{trial.number}_{Path(name).name}"
            try:
                with store.open_reader(meta.artifact_id) as reader:
                    path.write_bytes(reader.read())
            except Exception:  # deleted or unreadable: leave it out
                continue
            figures.append(ReportFigure(path, title))
    return figures
