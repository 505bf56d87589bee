"""The study report (`hls-tune report`): a self-contained HTML page plus its PNG files.

The figures are made by `report_figures` (re-exported here); this module writes the page
that embeds them. The per-trial artifacts and notes are `trial_artifacts`; where artifacts
live is `artifacts.py`'s business (re-exported here). The top trials' α-evolution and
schedule figures are the ones their workers uploaded to the artifact store, copied into the
report. Trials hls-tune did not create are left out and counted in the page's header.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hls_tune.engine import plots
from hls_tune.engine.safe_io import atomic_write_text
from hls_tune.study.artifacts import (
    ARTIFACTS_ENV,
    DEFAULT_ARTIFACTS_DIR,
    artifacts_dir,
    open_artifact_store,
)
from hls_tune.study.report_figures import (
    ARTIFACT_FIGURES,
    CATEGORICAL_PARAMS,
    CURVE_LEGEND_ENTRIES,
    HLS_PARAMS,
    LEVEL_SHAPE_PARAMS,
    ReportFigure,
    objective_label,
    study_figures,
)

# Drawn alone by tests/e2e/test_optuna_tools.py.
from hls_tune.study.report_figures import _curves_figure as _curves_figure
from hls_tune.study.study import foreign_note, own_trials, trial_metrics
from hls_tune.study.trial_artifacts import format_value

__all__ = [
    "ARTIFACTS_ENV",
    "ARTIFACT_FIGURES",
    "CATEGORICAL_PARAMS",
    "CURVE_LEGEND_ENTRIES",
    "DEFAULT_ARTIFACTS_DIR",
    "HLS_PARAMS",
    "LEVEL_SHAPE_PARAMS",
    "ReportFigure",
    "artifacts_dir",
    "open_artifact_store",
    "study_figures",
    "write_report",
]


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
    artifact_store: Any | None = None,
) -> Path:
    """Writes `out/report.html` (every image embedded, so the page stands alone) and the PNGs.

    Args:
        study: the study to report on.
        out: output directory (created).
        top_k: how many of the best complete trials get a section with their figures.
        cell_engine: cell diagrams with `dot`, `matplotlib` or `auto`.
        artifact_store: the trials' artifact store (their α-evolution and schedule figures).

    Returns:
        The HTML file.
    """
    out = Path(out)
    figures, top = study_figures(
        study, out, top_k=top_k, cell_engine=cell_engine, artifact_store=artifact_store
    )
    trials, foreign = own_trials(study)
    parts = _page_header(study, trials, foreign)
    for figure in figures:
        parts.append(f"<h2>{html.escape(figure.title)}</h2>")
        if figure.caption:
            parts.append(f"<p>{html.escape(figure.caption)}</p>")
        parts.append(_img(figure.path, figure.title))
    parts.append(f"<h2>Top {len(top)} trials</h2>")
    if not top:
        parts.append("<p>No complete trial yet.</p>")
    for rank, (trial, cells) in enumerate(top, start=1):
        parts += _trial_section(rank, trial, cells, artifact_store)
    parts.append("</body></html>")
    page = out / "report.html"
    atomic_write_text(page, "\n".join(parts) + "\n")
    return page


def _page_header(study: optuna.Study, trials: Sequence[FrozenTrial], foreign: int) -> list[str]:
    """The page's head, title and the line that counts the trials (and the `foreign` ones)."""
    counts = {s.name.lower(): sum(1 for t in trials if t.state == s) for s in TrialState}
    name = html.escape(study.study_name)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>hls-tune report: {name}</title><style>{_CSS}</style></head><body>",
        f"<h1>Study {name}</h1>",
        f'<p class="sub">{study.direction.name.lower()} {html.escape(objective_label(study))}'
        f" · {len(trials)} trials: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + f" · optuna {html.escape(optuna.__version__)}</p>",
    ]
    if foreign:
        parts.append(f'<p class="sub">{html.escape(foreign_note(foreign))}</p>')
    return parts


def _trial_section(
    rank: int, trial: FrozenTrial, cells: Sequence[ReportFigure], artifact_store: Any | None
) -> list[str]:
    """One top trial's section: its parameters and test figures, cell diagrams, other PNGs."""
    parts = [f"<h3>#{rank}: trial {trial.number}, value {trial.value:.4f}</h3>"]
    rows = {f"param {k}": v for k, v in sorted(trial.params.items())}
    metrics = trial_metrics(trial)
    for key in ("test_accuracy", "test_balanced_accuracy", "search_seconds"):
        if metrics.get(key) is not None:
            rows[key] = metrics[key]
    shots = metrics.get("shot_accuracy") or trial.user_attrs.get("shot_accuracy") or {}
    for group, value in shots.items():
        rows[f"test {group}-shot accuracy"] = value
    parts.append("<table><tr><th>what</th><th>value</th></tr>")
    parts += [
        f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(format_value(v))}</td></tr>"
        for k, v in rows.items()
    ]
    parts.append("</table>")
    diagrams = [c for c in cells if c.title.endswith(" cell")]
    if diagrams:
        parts.append('<div class="cells">')
        parts += [_img(c.path, c.title) for c in diagrams]
        parts.append("</div>")
    for figure in cells:
        if figure not in diagrams:
            parts.append(f"<h4>{html.escape(figure.title)}</h4>")
            parts.append(_img(figure.path, figure.title))
    if artifact_store is not None and len(diagrams) == len(cells):
        parts.append(
            "<p>No α-evolution or schedule figure: the artifact store holds none for this "
            "trial (it ran with --no-artifacts, or with another --artifacts directory).</p>"
        )
    return parts
