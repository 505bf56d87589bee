"""hls_tune/study/compare.py: grouping trials by method and imbalance ratio, the paired
difference to darts, the markdown table, and the grid study run by real workers."""

from __future__ import annotations

import math

import optuna
import pytest

from hls_tune.study.compare import Difference, compare_study, comparison_rows
from tests.support.comparison import _trial
from tests.support.helpers import hls_tune, start_hls_tune


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
    assert darts.figures["supernet_val"].mean == pytest.approx(0.7)
    assert darts.figures["supernet_val"].std == pytest.approx(0.141421, rel=1e-4)
    assert darts.figures["supernet_test"].mean == pytest.approx(0.5)
    assert rows[3].figures["supernet_few"] is None
    assert darts.figures["architecture_val"] is None  # a supernet-only study


def test_the_difference_to_darts_is_paired_by_seed_with_a_t_interval():
    # Seeds differ a lot (seed 2 is hard for both), the method gains ~2 points on each:
    # paired, the interval excludes 0; an unpaired difference of means would not.
    darts = {0: 0.80, 1: 0.70, 2: 0.50, 3: 0.75}
    hls = {0: 0.83, 1: 0.71, 2: 0.52, 3: 0.77}
    trials = [_trial("darts", 10, s, v, architecture_val=v) for s, v in darts.items()]
    # hls also ran seed 9, which darts did not: it has no partner and is left out.
    trials += [_trial("hls", 10, s, v, architecture_val=v) for s, v in hls.items()]
    trials.append(_trial("hls", 10, 9, 0.10, architecture_val=0.10))
    row = next(r for r in comparison_rows(trials) if r.method == "hls")
    diff = row.differences["architecture_val"]
    d = [hls[s] - darts[s] for s in darts]  # 0.03, 0.01, 0.02, 0.02
    mean, sd = sum(d) / 4, math.sqrt(sum((x - sum(d) / 4) ** 2 for x in d) / 3)
    half = 3.182446305284263 * sd / 2  # t(0.975, 3) from the t table, sd / sqrt(4)
    assert diff.seeds == (0, 1, 2, 3) and diff.n == 4
    assert diff.mean == pytest.approx(mean) == pytest.approx(0.02)
    assert (diff.low, diff.high) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert diff.low > 0
    assert diff.format() == "+2.0 [+0.7, +3.3]"
    # time = search + evaluate, paired as well; darts itself has no difference row.
    assert row.differences["total_seconds"].mean == pytest.approx(0.0)
    assert next(r for r in comparison_rows(trials) if r.method == "darts").differences == {}
    assert Difference.paired({0: 0.5}, {0: 0.4}).format() == "+10.0"  # one pair: no interval


def test_the_markdown_table_counts_left_out_trials():
    study = optuna.create_study(direction="maximize", study_name="grid")
    study.add_trial(_trial("darts", 10, 0, 0.8))
    study.add_trial(_trial("darts", 10, 1, 0.6))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    text = compare_study(study, "val_balanced_accuracy").markdown()
    assert "2 complete trials (1 pruned left out)" in text
    assert "| darts | 10 | 2 | 70.0 ± 14.1 | 50.0 ± 14.1 | 90.0 ± 0.0 | 70.0 ± 0.0 |" in text
    # supernet-only: the architecture columns and tau read "—", no difference table.
    assert "| darts | 10 | 2 | — | — | — | — | — | — | — |" in text
    assert "Kendall τ-b: —" in text
    assert "Paired difference" not in text


def test_the_study_reports_how_well_each_accuracy_ranks_the_trained_architecture():
    study = optuna.create_study(direction="maximize", study_name="two-stage")
    supernet = [0.5, 0.6, 0.7, 0.8]
    architecture = [0.6, 0.8, 0.7, 0.9]  # one discordant pair: tau 4/6, exact p 1/3
    balanced = [0.9, 0.9, 0.8, 0.7]  # the same networks trained on the balanced set (a tie)
    for seed, (s, a, b) in enumerate(zip(supernet, architecture, balanced)):
        study.add_trial(_trial("darts", 10, seed, s, architecture_val=a, balanced=b))
    comparison = compare_study(study, "val_balanced_accuracy")
    tau = comparison.supernet_predicts_architecture
    assert (tau.tau, tau.p_value, tau.n) == (pytest.approx(4 / 6), pytest.approx(1 / 3), 4)
    # balanced vs long-tailed (the architecture's value): (0,1) tied in balanced, C = 1
    # ((1,2)), D = 4 ((0,2) (0,3) (1,3) (2,3)): tau-b = (1 - 4) / sqrt((6 - 1) * 6).
    assert comparison.balanced_predicts_longtail.tau == pytest.approx(-3 / 30**0.5)
    text = comparison.markdown()
    assert "τ-b = +0.667, p = 0.333 (exact), n = 4" in text
    assert "long-tailed set (val), Kendall τ-b = -0.548" in text


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
val_per_class = 10
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
    # the first table: the supernets at the end of the search
    first = compared.stdout.split("Supernet at the end of the search", 1)[1].split("\n\n")[1]
    rows = [line for line in first.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[:3] for row in rows] == [
        ["| darts", "10", "2"],
        ["| adapt_head", "10", "2"],
    ]
    for row in rows:
        assert row.count("±") >= 5, row  # the supernet columns have both seeds
