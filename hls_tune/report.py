"""Inspecting a study: per-trial artifacts and notes for optuna-dashboard, and a study report.

Per trial (written by the objective while the trial still runs, so Optuna accepts them):
cell diagrams of the genotype, the op weights of every α group over the epochs, the HLS
schedule, per-class validation accuracy by shot group, the genotype as a JSONL table, and a
markdown note. Per study (`hls-tune report`): a self-contained HTML page plus its PNG files.

Where artifacts live is `artifacts.py`'s business (re-exported here).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from optuna.artifacts import upload_artifact
from optuna.trial import FrozenTrial, TrialState

from hls_tune import plots
from hls_tune.artifacts import (
    ARTIFACTS_ENV,
    DEFAULT_ARTIFACTS_DIR,
    artifacts_dir,
    open_artifact_store,
)
from hls_tune.nas.genotype import Genotype
from hls_tune.safe_io import atomic_write_text
from hls_tune.search import EpochMetrics
from hls_tune.settings import SearchConfig

HLS_PARAMS = ("alpha_lr_b1", "alpha_lr_span", "alpha_lr_floor")
CATEGORICAL_PARAMS = ("mix_form", "alpha_lr_shape")

_logger = logging.getLogger("hls_tune.report")

__all__ = [
    "ARTIFACTS_ENV",
    "DEFAULT_ARTIFACTS_DIR",
    "ReportFigure",
    "artifacts_dir",
    "genotype_rows",
    "open_artifact_store",
    "study_figures",
    "trial_artifact_files",
    "trial_note",
    "upload_trial_artifacts",
    "write_report",
]


# --- per-trial files ------------------------------------------------------------------------


def _cells(genotype: Genotype) -> list[tuple[str, tuple, tuple[int, ...]]]:
    cells = []
    for cell in plots.CELL_GROUPS:
        edges = getattr(genotype, cell)
        if edges is not None:
            cells.append((cell, edges, getattr(genotype, f"{cell}_concat")))
    return cells


def genotype_rows(
    genotype: Genotype, alphas: Mapping[str, Sequence[Sequence[float]]] | None = None
) -> list[dict[str, Any]]:
    """One row per kept edge (cell, node, input, op and, with `alphas`, the op's weight).

    Args:
        genotype: the derived genotype.
        alphas: softmaxed op weights per α group (edges × ops), e.g. the last epoch's.
    """
    from hls_tune.nas.genotype import PRIMITIVES

    rows = []
    for cell, edges, concat in _cells(genotype):
        group = plots.CELL_GROUPS[cell]
        for position, (op, source) in enumerate(edges):
            node = position // 2
            row: dict[str, Any] = {
                "cell": cell,
                "node": node,
                "input": source,
                "input_state": ("c_{k-2}", "c_{k-1}")[source]
                if source < 2
                else f"node {source - 2}",
                "op": op,
                "in_output": node + 2 in concat,
            }
            if alphas is not None and group in alphas:
                weight = alphas[group][plots.edge_index(node, source)][PRIMITIVES.index(op)]
                row["op_weight"] = round(float(weight), 4)
            rows.append(row)
    return rows


def trial_artifact_files(
    out: str | Path,
    config: SearchConfig,
    history: Sequence[EpochMetrics],
    *,
    shot_group: Sequence[str],
    train_counts: Sequence[int] | None = None,
    genotype: Genotype | None = None,
    cell_engine: plots.CellEngine = "auto",
) -> list[Path]:
    """Writes one trial's figures and genotype table into `out` and lists them.

    Whatever the history allows is written: with no finished epoch only the schedule
    (and the genotype's cells when one is given).

    Args:
        out: directory for the files (created).
        config: the trial's engine settings.
        history: the epochs the search finished (may be partial: pruned or diverged).
        shot_group: `many` / `medium` / `few` per class (`prepare_data(...).shot_group`).
        train_counts: training images per class, written on the per-class bars.
        genotype: the genotype to draw (default: the last epoch's).
        cell_engine: cell diagrams with `dot`, `matplotlib` or `auto`.

    Returns:
        The files written: `cell_<cell>.png` (and `.svg` when drawn by Graphviz),
        `alphas.png`, `schedule.png`, `per_class_accuracy.png`, `genotype.jsonl`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if genotype is None and history:
        genotype = history[-1].genotype
    if genotype is not None:
        for cell, edges, concat in _cells(genotype):
            title = f"{cell} cell" + (f" (epoch {history[-1].epoch})" if history else "")
            png, engine = plots.cell_diagram(
                edges, concat, out / f"cell_{cell}.png", title=title, engine=cell_engine
            )
            files.append(png)
            if engine == "dot":  # an SVG is nearly free from dot, not from matplotlib
                files.append(
                    plots.cell_diagram(
                        edges, concat, png.with_suffix(".svg"), title=title, engine="dot"
                    )[0]
                )
        rows = genotype_rows(genotype, history[-1].alphas if history else None)
        jsonl = out / "genotype.jsonl"
        atomic_write_text(jsonl, "".join(json.dumps(r) + "\n" for r in rows))
        files.append(jsonl)
    if history:
        kept = {}
        if genotype is not None:
            kept = {g: getattr(genotype, c) for c, g in plots.CELL_GROUPS.items()}
        figure = plots.architecture_figure(history, kept={g: e for g, e in kept.items() if e})
        files.append(plots.save_figure(figure, out / "alphas.png"))
    files.append(plots.save_figure(plots.schedule_figure(config, history), out / "schedule.png"))
    if history:
        last = history[-1]
        figure = plots.per_class_figure(
            last.val_per_class_accuracy,
            shot_group,
            train_counts,
            title=(
                f"validation accuracy per class after epoch {last.epoch}\n"
                f"top-1 {last.val_accuracy:.3f}, balanced {last.val_balanced_accuracy:.3f}"
            ),
        )
        files.append(plots.save_figure(figure, out / "per_class_accuracy.png"))
    return files


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "–"
    return str(value)


def _cell_text(edges: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{op}@{source}" for op, source in edges)


def trial_note(
    number: int,
    state: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    genotype: Genotype | None,
    *,
    files: Sequence[str] = (),
    reason: str | None = None,
) -> str:
    """The markdown note of a finished trial: outcome, parameters, metrics and genotype.

    Args:
        number: the trial number.
        state: `complete`, `pruned` or `fail`.
        params: the trial's sampled parameters.
        metrics: final (or last-epoch) metrics; nested dicts (shot accuracy) are flattened.
        genotype: the derived genotype, if any.
        files: names of the artifacts uploaded with it.
        reason: why a trial was pruned or failed.
    """
    lines = [f"## Trial {number}: {state}", ""]
    if reason:
        lines += [f"*{reason}*", ""]
    lines += ["### Parameters", "", "| parameter | value |", "|---|---|"]
    lines += [f"| `{k}` | {_format(v)} |" for k, v in sorted(params.items())]
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        elif not isinstance(value, list | tuple):
            flat[key] = value
    lines += ["", "### Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| `{k}` | {_format(v)} |" for k, v in flat.items()]
    if genotype is not None:
        lines += ["", "### Genotype", "", "```"]
        lines += [f"{cell:<17} {_cell_text(edges)}" for cell, edges, _ in _cells(genotype)]
        lines += ["```"]
    if files:
        lines += ["", "Artifacts: " + ", ".join(f"`{name}`" for name in files)]
    return "\n".join(lines) + "\n"


def _last_epoch_metrics(history: Sequence[EpochMetrics]) -> dict[str, Any]:
    if not history:
        return {"epochs_run": 0}
    last = history[-1]
    return {
        "epochs_run": len(history),
        "val_accuracy": last.val_accuracy,
        "val_balanced_accuracy": last.val_balanced_accuracy,
        "train_loss": last.train_loss,
        "mixing_ratio": last.mixing_ratio,
    }


def upload_trial_artifacts(
    trial: optuna.Trial,
    artifact_store: Any,
    config: SearchConfig,
    history: Sequence[EpochMetrics],
    *,
    state: str,
    shot_group: Sequence[str],
    train_counts: Sequence[int] | None = None,
    metrics: Mapping[str, Any] | None = None,
    reason: str | None = None,
    cell_engine: plots.CellEngine = "auto",
) -> list[str]:
    """Draws a running trial's artifacts, uploads them and saves its dashboard note.

    Called by the objective just before the trial ends (COMPLETE, PRUNED or FAIL), while
    Optuna still accepts artifacts for it. A failure here is logged and never fails the
    trial: the search result matters more than its pictures.

    Args:
        trial: the running trial.
        artifact_store: an Optuna artifact store (see `open_artifact_store`).
        config: the trial's engine settings.
        history: the epochs finished so far.
        state: `complete`, `pruned` or `fail` (for the note).
        shot_group: shot group per class.
        train_counts: training images per class.
        metrics: final metrics (default: the last epoch's).
        reason: why the trial was pruned or failed.
        cell_engine: cell diagrams with `dot`, `matplotlib` or `auto`.

    Returns:
        The uploaded artifact ids (empty when drawing or uploading failed).
    """
    try:
        with tempfile.TemporaryDirectory(prefix="hls_tune_artifacts_") as tmp:
            files = trial_artifact_files(
                tmp,
                config,
                history,
                shot_group=shot_group,
                train_counts=train_counts,
                cell_engine=cell_engine,
            )
            ids = [
                upload_artifact(
                    artifact_store=artifact_store, file_path=str(f), study_or_trial=trial
                )
                for f in files
            ]
        from optuna_dashboard import save_note

        genotype = history[-1].genotype if history else None
        note = trial_note(
            trial.number,
            state,
            trial.params,
            metrics if metrics is not None else _last_epoch_metrics(history),
            genotype,
            files=[f.name for f in files],
            reason=reason,
        )
        save_note(trial, note)
        return ids
    except Exception:
        _logger.warning("trial %d: could not write its artifacts", trial.number, exc_info=True)
        return []


# --- the study report -----------------------------------------------------------------------


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


def _objective_label(study: optuna.Study) -> str:
    return str(study.user_attrs.get("hls_tune:metric", "objective value"))


def _trial_value(trial: FrozenTrial, name: str) -> Any:
    """A trial's parameter, else the engine setting of the same name from its stored config."""
    if name in trial.params:
        return trial.params[name]
    config = trial.user_attrs.get("config") or {}
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
    axes.set_ylabel(_objective_label(study))
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
    for t in trials:
        if not t.intermediate_values:
            continue
        steps = sorted(t.intermediate_values)
        style = (
            {"lw": 1.4, "alpha": 0.9}
            if t.state == TrialState.COMPLETE
            else {"lw": 1.0, "alpha": 0.5, "ls": "--", "color": "gray"}
        )
        axes.plot(steps, [t.intermediate_values[s] for s in steps], marker=".", **style)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(_objective_label(study))
    axes.set_title("per-epoch value of every trial (dashed grey: not complete)", fontsize=10)
    axes.grid(alpha=0.3)
    return figure


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
    axes.set_ylabel(_objective_label(study))
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3, axis="y")
    return figure


def _breakpoints_figure(study: optuna.Study, complete: Sequence[FrozenTrial]) -> Any:
    present = [n for n in HLS_PARAMS if any(n in t.params for t in complete)]
    title = "objective vs α-LR breakpoints"
    if not present:
        return _message_figure("no complete trial sampled alpha_lr_b1, _span or _floor", title)
    figure = plots.new_figure(3.4 * len(present) + 0.6, 3.4)
    shapes = sorted({str(_trial_value(t, "alpha_lr_shape")) for t in complete})
    colors = {s: f"C{i % 10}" for i, s in enumerate(shapes)}
    for k, name in enumerate(present):
        axes = figure.add_subplot(1, len(present), k + 1)
        for shape in shapes:
            chosen = [
                t
                for t in complete
                if name in t.params and str(_trial_value(t, "alpha_lr_shape")) == shape
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
            axes.set_ylabel(_objective_label(study))
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
) -> tuple[list[ReportFigure], list[tuple[FrozenTrial, list[ReportFigure]]]]:
    """Writes the study report's PNG files into `out`.

    Returns:
        The study-level figures, and for each of the `top_k` best complete trials (best
        first) the trial with its cell diagrams.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
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
    for name in CATEGORICAL_PARAMS:
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
            "alpha_lr_b1, alpha_lr_span and alpha_lr_floor, where the shape samples them.",
        )
    )
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    ranked = sorted(complete, key=lambda t: ((-t.value if maximize else t.value), t.number))
    top: list[tuple[FrozenTrial, list[ReportFigure]]] = []
    for trial in ranked[:top_k]:
        cells: list[ReportFigure] = []
        if "genotype" in trial.user_attrs:
            genotype = Genotype.from_dict(trial.user_attrs["genotype"])
            for cell, edges, concat in _cells(genotype):
                path, _ = plots.cell_diagram(
                    edges,
                    concat,
                    out / f"trial{trial.number}_cell_{cell}.png",
                    title=f"trial {trial.number}: {cell} cell",
                    engine=cell_engine,
                )
                cells.append(ReportFigure(path, f"{cell} cell"))
        top.append((trial, cells))
    return figures, top


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .sub { color: #666; margin-top: 0; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.4em 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f4f4f4; } code { font-size: 0.95em; }
.cells { display: flex; flex-wrap: wrap; gap: 0.5em; } .cells img { max-width: 48%; }
"""


def write_report(
    study: optuna.Study,
    out: str | Path,
    *,
    top_k: int = 3,
    cell_engine: plots.CellEngine = "auto",
) -> Path:
    """Writes `out/report.html` (every image embedded, so the page stands alone) and the PNGs.

    Args:
        study: the study to report on.
        out: output directory (created).
        top_k: how many of the best complete trials get a section with their cells.
        cell_engine: cell diagrams with `dot`, `matplotlib` or `auto`.

    Returns:
        The HTML file.
    """
    out = Path(out)
    figures, top = study_figures(study, out, top_k=top_k, cell_engine=cell_engine)
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(1 for t in trials if t.state == s) for s in TrialState}
    name = html.escape(study.study_name)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>hls-tune report: {name}</title><style>{_CSS}</style></head><body>",
        f"<h1>Study {name}</h1>",
        f'<p class="sub">{study.direction.name.lower()} {html.escape(_objective_label(study))}'
        f" · {len(trials)} trials: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + f" · optuna {html.escape(optuna.__version__)}</p>",
    ]
    for figure in figures:
        parts.append(f"<h2>{html.escape(figure.title)}</h2>")
        if figure.caption:
            parts.append(f"<p>{html.escape(figure.caption)}</p>")
        parts.append(_img(figure.path, figure.title))
    parts.append(f"<h2>Top {len(top)} trials</h2>")
    if not top:
        parts.append("<p>No complete trial yet.</p>")
    for rank, (trial, cells) in enumerate(top, start=1):
        parts.append(f"<h3>#{rank}: trial {trial.number}, value {trial.value:.4f}</h3>")
        rows = {f"param {k}": v for k, v in sorted(trial.params.items())}
        metrics = trial.user_attrs.get("metrics") or {}
        for key in ("test_accuracy", "test_balanced_accuracy", "search_seconds"):
            if metrics.get(key) is not None:
                rows[key] = metrics[key]
        for group, value in (trial.user_attrs.get("shot_accuracy") or {}).items():
            rows[f"test {group}-shot accuracy"] = value
        parts.append("<table><tr><th>what</th><th>value</th></tr>")
        parts += [
            f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(_format(v))}</td></tr>"
            for k, v in rows.items()
        ]
        parts.append("</table>")
        if cells:
            parts.append('<div class="cells">')
            parts += [_img(c.path, c.title) for c in cells]
            parts.append("</div>")
    parts.append("</body></html>")
    page = out / "report.html"
    atomic_write_text(page, "\n".join(parts) + "\n")
    return page
