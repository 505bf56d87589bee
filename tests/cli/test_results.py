"""hls_tune/cli/results.py: `hls-tune export`, `report` and `compare` as real processes."""

from __future__ import annotations

import json

import optuna
import pytest

from tests.support.comparison import _trial
from tests.support.helpers import hls_tune

GRADED_STUDY = """
[study]
name = "graded"
metric = "val_balanced_accuracy"
n_trials = 4
[study.sampler]
type = "random"
[study.pruner]
type = "none"

[data]
dataset = "digits"
image_size = 8
max_per_class = 30
val_per_class = 10

[engine]
channels = 4
layers = 3
epochs = 1
device = "cpu"

[space]
method = ["darts", "hls"]
seed = [0, 1, 2]
"""


def test_the_compare_command_prints_the_table_tau_and_json(tmp_path):
    study_file = tmp_path / "graded.toml"
    study_file.write_text(GRADED_STUDY)
    db = tmp_path / "graded.db"
    url = f"sqlite:///{db}"
    created = hls_tune("study", "create", str(study_file), "--storage", url)
    assert created.returncode == 0, created.stderr
    study = optuna.load_study(study_name="graded", storage=url)
    darts = [0.60, 0.70, 0.50]
    hls = [0.64, 0.73, 0.55]
    for seed in range(3):
        study.add_trial(_trial("darts", 10, seed, darts[seed] - 0.1, architecture_val=darts[seed]))
        study.add_trial(_trial("hls", 10, seed, hls[seed] - 0.2, architecture_val=hls[seed]))
    out = tmp_path / "table.md"
    compared = hls_tune("compare", "--study", "graded", "--storage", url, "--out", str(out))
    assert compared.returncode == 0, compared.stderr
    assert out.read_text() == compared.stdout
    text = compared.stdout
    # architecture val: hls - darts per seed = 4, 3, 5 points: mean 4, sd 1,
    # t(0.975, 2) = 4.302653 -> 4 +- 2.48; supernet val: -6, -7, -5 -> -6 +- 2.48.
    assert "| hls | 10 | 3 | -6.0 [-8.5, -3.5] | +4.0 [+1.5, +6.5] |" in text
    assert "| hls | 10 | 3 | 64.0 ± 9.0 | 62.0 ± 9.0 | 74.0 ± 9.0 | 64.0 ± 9.0 |" in text
    # supernet vals 0.5 0.6 0.4 0.44 0.53 0.35 against 0.6 0.7 0.5 0.64 0.73 0.55:
    # 12 concordant, 3 discordant pairs, no ties: tau = 9/15; exact p = 2 * (orderings of 6
    # with <= 3 inversions: 1 + 5 + 14 + 29) / 6! = 98/720 = 0.136.
    assert "Kendall τ-b = +0.600, p = 0.136 (exact), n = 6" in text
    as_json = hls_tune("compare", "--study", "graded", "--storage", url, "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    hls_row = next(r for r in data["rows"] if r["method"] == "hls")
    diff = hls_row["difference_to_darts"]["architecture_val"]
    assert diff["mean"] == pytest.approx(0.04)
    assert diff["ci95"] == pytest.approx(
        [0.04 - 4.302653 * 0.01 / 3**0.5, 0.04 + 4.302653 * 0.01 / 3**0.5]
    )
    assert data["supernet_vs_architecture"]["tau_b"] == pytest.approx(0.6)
    assert data["balanced_vs_longtail"] is None


@pytest.mark.slow
def test_export_says_when_the_study_has_fewer_trials_than_top_k(tmp_path_factory, tmp_path):
    from tests.support.report_study import N_TRIALS, STUDY_NAME, finished_study

    study = finished_study(tmp_path_factory)
    complete = [
        t
        for t in optuna.load_study(study_name=STUDY_NAME, storage=study.url).get_trials()
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    asked = N_TRIALS + 1
    out = tmp_path / "genotypes"
    args = ("export", "--study", STUDY_NAME, "--storage", study.url, "--out", str(out))
    result = hls_tune(*args, "--top-k", str(asked))
    assert result.returncode == 0, result.stderr
    assert len(list(out.glob("tiny-trial*.json"))) == len(complete)  # plus best.json
    s = "" if len(complete) == 1 else "s"
    assert (
        f"--top-k {asked}: the study has {len(complete)} complete trial{s} with a genotype; "
        f"exported {len(complete)}." in result.stderr
    )
    # as many as asked for: nothing to say
    enough = hls_tune(*args, "--top-k", "1", "--force")
    assert enough.returncode == 0 and "--top-k" not in enough.stderr
