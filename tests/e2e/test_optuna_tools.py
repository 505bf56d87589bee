"""Studies read well in Optuna's own tools: metric names, small user attributes, trials
of other objectives ignored, and the report's figures."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hls_tune.engine.schedules import LEVELS, level_key
from hls_tune.study.report import _curves_figure
from hls_tune.study.study import (
    CONFIG_ATTR,
    GENOTYPE_ATTR,
    HISTORY_ATTR,
    METRICS_ATTR,
    OWN_TRIAL_ATTR,
)
from tests.support.helpers import cli_env, hls_tune, write_study

# What a person reads at a glance in `optuna trials`; anything else belongs elsewhere.
GLANCE_KEYS = {
    "val_accuracy",
    "val_balanced_accuracy",
    "test_accuracy",
    "test_balanced_accuracy",
    "epochs_run",
    "shot_accuracy",
    "search_seconds",
    # the second breakpoint of each followed level whose shape reads it
    *(level_key(level, "b2") for level in LEVELS),
    "supernet_val_balanced_accuracy",
}
# A row of `optuna trials` for a trial of the tiny study was 3,477 characters when the study
# file's config and per-epoch curves were user attributes; the sampled parameters alone take
# about 250.
MAX_ROW_CHARS = 1000
# What the `optuna` console script runs.
OPTUNA_CLI = "import sys; from optuna.cli import main; sys.exit(main())"


@dataclass(frozen=True)
class ToolsStudy:
    url: str
    artifacts: Path
    rows: list[str]  # `optuna trials` table rows, before the foreign trial was added
    foreign_number: int
    name: str = "tools"


@pytest.fixture(scope="module")
def tools_study(tmp_path_factory) -> ToolsStudy:
    """Two hls-tune trials run by a real worker, then one trial of a plain objective that
    someone ran with `study.optimize` on the same storage (with the best value of all)."""
    base = tmp_path_factory.mktemp("tools")
    url = f"sqlite:///{base / 'study.db'}"
    study_file = write_study(base / "tools.toml", name="tools", n_trials=2, epochs=2)
    text = study_file.read_text().replace(
        'name = "tools"', 'name = "tools"\nmetric = "val_balanced_accuracy"'
    )
    study_file.write_text(text)
    created = hls_tune("study", "create", str(study_file), "--storage", url)
    assert created.returncode == 0, created.stderr
    worker = hls_tune(
        "worker",
        "--study",
        "tools",
        "--storage",
        url,
        "--no-progress",
        "--checkpoint-dir",
        str(base / "checkpoints"),
        "--artifacts",
        str(base / "artifacts"),
    )
    assert worker.returncode == 0, worker.stdout + worker.stderr
    listing = subprocess.run(
        [
            sys.executable,
            "-c",
            OPTUNA_CLI,
            "trials",
            "--study-name",
            "tools",
            "--storage",
            url,
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
        check=False,
    )
    assert listing.returncode == 0, listing.stderr
    rows = [line for line in listing.stdout.splitlines() if line.startswith("|")]

    study = optuna.load_study(study_name="tools", storage=url)
    study.optimize(lambda trial: 1.0 + 0 * trial.suggest_float("x", 0.0, 1.0), n_trials=1)
    foreign = study.get_trials()[-1]
    assert foreign.state == TrialState.COMPLETE and foreign.value == 1.0
    return ToolsStudy(url, base / "artifacts", rows, foreign.number)


def test_the_study_names_its_metric_for_optuna_plots_and_the_dashboard(tools_study):
    study = optuna.load_study(study_name=tools_study.name, storage=tools_study.url)
    assert study.metric_names == ["val_balanced_accuracy"]
    # `optuna trials` names the value by it too.
    assert all("{'val_balanced_accuracy': " in row for row in tools_study.rows[1:])


def test_optuna_trials_rows_hold_what_a_person_reads_at_a_glance(tools_study):
    header, *trials = tools_study.rows
    assert "user_attrs" in header and len(trials) == 2
    for row in trials:
        assert len(row) <= MAX_ROW_CHARS, (len(row), row)
    study = optuna.load_study(study_name=tools_study.name, storage=tools_study.url)
    for trial in study.get_trials()[:2]:
        assert set(trial.user_attrs) <= GLANCE_KEYS, set(trial.user_attrs) - GLANCE_KEYS
        # The full record moved to system attributes, where every reader finds it.
        for key in (OWN_TRIAL_ATTR, CONFIG_ATTR, GENOTYPE_ATTR, METRICS_ATTR, HISTORY_ATTR):
            assert key in trial.system_attrs, key
        assert len(trial.system_attrs[HISTORY_ATTR]["val_accuracy_per_epoch"]) == 2
    assert not any(len(str(v)) > 200 for v in study.user_attrs.values()), study.user_attrs


def test_study_show_ignores_a_trial_of_another_objective_and_says_so(tools_study):
    shown = hls_tune(
        "study", "show", "--study", tools_study.name, "--storage", tools_study.url, "--json"
    )
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["ignored_foreign_trials"] == 1
    assert document["trials"] == {"complete": 2}
    assert tools_study.foreign_number not in [b["trial"] for b in document["best"]]
    text = hls_tune("study", "show", tools_study.name, "--storage", tools_study.url)
    assert text.returncode == 0, text.stderr
    assert "ignored 1 trial not created by hls-tune" in text.stdout
    assert f"best: trial {tools_study.foreign_number} " not in text.stdout


def test_export_and_compare_ignore_the_foreign_trial(tools_study, tmp_path):
    out = tmp_path / "genotypes"
    exported = hls_tune(
        "export", "--study", tools_study.name, "--storage", tools_study.url, "--out", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    assert "ignored 1 trial not created by hls-tune" in exported.stderr
    record = json.loads((out / "best.json").read_text())
    assert record["trial"] != tools_study.foreign_number
    assert record["config"]["method"] == "hls" and record["metrics"]["epochs_run"] == 2

    compared = hls_tune("compare", "--study", tools_study.name, "--storage", tools_study.url)
    assert compared.returncode == 0, compared.stderr
    assert "2 complete trials" in compared.stdout
    assert "ignored 1 trial not created by hls-tune" in compared.stdout
    assert "| hls | 10 | 2 |" in compared.stdout


def test_the_report_has_alpha_and_schedule_figures_and_ignores_the_foreign_trial(
    tools_study, tmp_path
):
    out = tmp_path / "report"
    result = hls_tune(
        "report",
        "--study",
        tools_study.name,
        "--storage",
        tools_study.url,
        "--out",
        str(out),
        "--top-k",
        "1",
        "--artifacts",
        str(tools_study.artifacts),
    )
    assert result.returncode == 0, result.stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "ignored 1 trial not created by hls-tune" in page
    assert f"trial {tools_study.foreign_number}," not in page
    alphas = list(out.glob("trial*_alphas.png"))
    assert len(alphas) == 1 and alphas[0].stat().st_size > 1000
    assert list(out.glob("trial*_schedule*.png"))
    assert "α evolution" in page and "schedule of each group" in page
    assert "2 complete" in page


def test_the_learning_curve_figure_has_a_legend(tools_study):
    study = optuna.load_study(study_name=tools_study.name, storage=tools_study.url)
    own = [t for t in study.get_trials() if t.number != tools_study.foreign_number]
    figure = _curves_figure(study, own)
    legend = figure.axes[0].get_legend()
    assert legend is not None
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == [f"trial {t.number}" for t in own]
