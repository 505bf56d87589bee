"""Per-trial artifacts and the trial note for optuna-dashboard.

Written by the objective while the trial still runs (so Optuna accepts them): cell
diagrams of the genotype, the op weights of every α group over the epochs, the HLS
schedule, per-class validation accuracy by shot group, the genotype as a JSONL table, and a
markdown note. Where artifacts live is `artifacts.py`'s business.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import upload_artifact

from hls_tune.engine import plots
from hls_tune.engine.nas.genotype import Genotype
from hls_tune.engine.results import EpochMetrics
from hls_tune.engine.safe_io import atomic_write_text
from hls_tune.engine.settings import SearchConfig

_logger = logging.getLogger("hls_tune.study.trial_artifacts")

__all__ = [
    "format_value",
    "genotype_cells",
    "genotype_rows",
    "trial_artifact_files",
    "trial_note",
    "upload_trial_artifacts",
]


def genotype_cells(genotype: Genotype) -> list[tuple[str, tuple, tuple[int, ...]]]:
    """(cell name, edges, concat) of each cell the genotype has, in the figures' order."""
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
    from hls_tune.engine.nas.genotype import PRIMITIVES

    rows = []
    for cell, edges, concat in genotype_cells(genotype):
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
        `alphas.png`, `schedule.png`, `training.png` (losses and α movement),
        `per_class_accuracy.png`, `genotype.jsonl`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if genotype is None and history:
        genotype = history[-1].genotype
    if genotype is not None:
        for cell, edges, concat in genotype_cells(genotype):
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
        files.append(plots.save_figure(plots.training_figure(history), out / "training.png"))
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


def format_value(value: Any) -> str:
    """A parameter or metric as a note or report shows it (floats to 4 digits, None as –)."""
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
    lines += [f"| `{k}` | {format_value(v)} |" for k, v in sorted(params.items())]
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        elif not isinstance(value, list | tuple):
            flat[key] = value
    lines += ["", "### Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| `{k}` | {format_value(v)} |" for k, v in flat.items()]
    if genotype is not None:
        lines += ["", "### Genotype", "", "```"]
        lines += [f"{cell:<17} {_cell_text(edges)}" for cell, edges, _ in genotype_cells(genotype)]
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
