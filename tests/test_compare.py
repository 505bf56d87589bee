"""The method comparison: grouping trials by method and imbalance ratio, mean ± std over
seeds, and the grid study run by real workers filling the table."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from hls_tune.study.compare import Summary, compare_study, comparison_rows

from .helpers import hls_tune, start_hls_tune


def _trial(method: str, ratio: float, seed: int, value: float, few: float | None = 0.5):
    shots = {"many": 0.9, "medium": 0.7} | ({} if few is None else {"few": few})
    return optuna.trial.create_trial(
        value=value,
        params={"method": method},
        distributions={"method": CategoricalDistribution(["darts", "hls", "adapt_head"])},
        user_attrs={
            "config": {"method": method, "seed": seed, "data": {"imbalance_ratio": ratio}},
            "metrics": {"test_accuracy": value - 0.1, "test_balanced_accuracy": value - 0.2},
            "shot_accuracy": shots,
        },
    )


def test_summary_is_the_mean_and_sample_std_in_percent():
    assert Summary.of([0.8, 0.9]).format() == "85.0 ± 7.1"
    assert Summary.of([0.5]).format() == "50.0"
    assert Summary.of([]) is None


def test_rows_group_seeds_by_method_and_ratio_in_spec_order():
    trials = [
        _trial("adapt_head", 10, 0, 0.9),
        _trial("darts", 10, 1, 0.6),
        _trial("darts", 10, 0, 0.8),
        _trial("darts", 40, 0, 0.5, few=None),
        _trial("hls", 10, 0, 0.7),
    ]
    rows = comparison_rows(trials)
    assert [(r.method, r.imbalance_ratio) for r in rows] == [
        ("darts", 10),
        ("hls", 10),
        ("adapt_head", 10),
        ("darts", 40),
    ]
    darts = rows[0]
    assert darts.seeds == (0, 1)
    assert darts.figures["objective"].mean == pytest.approx(0.7)
    assert darts.figures["objective"].std == pytest.approx(0.141421, rel=1e-4)
    assert darts.figures["test_balanced_accuracy"].mean == pytest.approx(0.5)
    assert rows[3].figures["few"] is None


def test_the_markdown_table_counts_left_out_trials():
    study = optuna.create_study(direction="maximize", study_name="grid")
    study.add_trial(_trial("darts", 10, 0, 0.8))
    study.add_trial(_trial("darts", 10, 1, 0.6))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    text = compare_study(study, "val_balanced_accuracy").markdown()
    assert "2 complete trials (1 pruned left out)" in text
    assert "| darts | 10 | 2 | 70.0 ± 14.1 | 60.0 ± 14.1 | 50.0 ± 14.1 | 90.0 ± 0.0 |" in text


GRID_STUDY = """
[study]
name = "grid"
metric = "val_balanced_accuracy"
n_trials = 4
[study.sampler]
type = "grid"
[study.pruner]
type = "none"

[data]
dataset = "digits"
image_size = 8
val_fraction = 0.15
max_per_class = 30
many_above = 20
few_below = 8

[engine]
channels = 4
layers = 3
epochs = 1
head_epochs = 1
batch_size = 32
flip = false
crop_padding = 1
weight_lr = 0.1
device = "cpu"
fused = false

[space]
method = ["darts", "adapt_head"]
seed = [0, 1]
alpha_lr = 3e-3
alpha_lr_shape = "constant"
mix_form = "cosine"
[space.data]
imbalance_ratio = [10]
"""


@pytest.mark.slow
def test_the_grid_study_run_by_real_workers_fills_the_comparison_table(tmp_path):
    study_file = tmp_path / "grid.toml"
    study_file.write_text(GRID_STUDY)
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    assert hls_tune("study", "create", str(study_file), "--storage", url).returncode == 0
    worker = ("worker", "--study", "grid", "--storage", url, "--no-progress")
    workers = [start_hls_tune(*worker, "--checkpoint-dir", str(tmp_path / "ck")) for _ in "ab"]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    out = tmp_path / "table.md"
    compared = hls_tune("compare", "--study", "grid", "--storage", url, "--out", str(out))
    assert compared.returncode == 0, compared.stderr
    assert out.read_text() == compared.stdout
    rows = [line for line in compared.stdout.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[:3] for row in rows] == [
        ["| darts", "10", "2"],
        ["| adapt_head", "10", "2"],
    ]
    for row in rows:
        assert row.count("±") == 6, row  # every column has a value for both seeds
