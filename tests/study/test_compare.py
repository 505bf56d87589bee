"""The method comparison: grouping trials by method and imbalance ratio, mean ± std over
seeds, and the grid study run by real workers filling the table."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from hls_tune.study.compare import (
    Difference,
    Summary,
    compare_study,
    comparison_rows,
    kendall_tau_b,
)
from hls_tune.study.study import CONFIG_ATTR, METRICS_ATTR, OWN_TRIAL_ATTR
from tests.support.helpers import hls_tune, start_hls_tune


def _trial(method: str, ratio: float, seed: int, value: float, few: float | None = 0.5, **arch):
    """A complete trial as the objective records it; `arch` adds [evaluate] attributes
    (architecture_val=..., balanced=..., lt=...)."""
    shots = {"many": 0.9, "medium": 0.7} | ({} if few is None else {"few": few})
    system = {
        OWN_TRIAL_ATTR: True,
        CONFIG_ATTR: {"method": method, "seed": seed, "data": {"imbalance_ratio": ratio}},
        METRICS_ATTR: {"test_accuracy": value - 0.1, "test_balanced_accuracy": value - 0.2},
    }
    attrs = {
        "shot_accuracy": shots,
        "supernet_val_balanced_accuracy": value,
        "search_seconds": 100.0 + seed,
    }
    if "architecture_val" in arch:
        a = arch["architecture_val"]
        attrs |= {
            "architecture_val_balanced_accuracy": a,
            "architecture_val_balanced_accuracy_seeds": [a, a],
            "architecture_test_accuracy": a - 0.01,
            "architecture_test_balanced_accuracy": a - 0.02,
            "architecture_shot_accuracy": {"many": a + 0.1, "medium": a, "few": a - 0.1},
            "architecture_params": arch.get("params", 10_000),
            "architecture_madds": 200_000,
            "evaluate_seconds": 50.0,
        }
    if "balanced" in arch:  # [evaluate] trains_on = ["longtail", "balanced"]
        attrs["architecture_balanced_val_balanced_accuracy"] = arch["balanced"]
    return optuna.trial.create_trial(
        value=value,
        params={"method": method},
        distributions={"method": CategoricalDistribution(["darts", "hls", "adapt_head"])},
        user_attrs=attrs,
        system_attrs=system,
    )


def test_summary_is_the_mean_and_sample_std_in_percent():
    assert Summary.of([0.8, 0.9]).format() == "85.0 ± 7.1"
    assert Summary.of([0.5]).format() == "50.0"
    assert Summary.of([]) is None
    assert Summary.of([1000, 3000]).format("count") == "2,000 ± 1,414"


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


# Kendall tau-b by hand. x = 1 2 3 4, y = 1 3 2 4: 5 concordant pairs, 1 discordant, no
# ties: tau = 4/6; exact two-sided p = 2 * (orderings of 4 with <= 1 inversion) / 4!
# = 2 * (1 + 3) / 24 = 1/3.
# With ties, x = 1 1 2 3, y = 1 2 2 3: pairs (12) tie in x, (23) tie in y, the other 4 are
# concordant; n0 = 6, n1 = n2 = 1: tau-b = 4 / sqrt(5 * 5) = 0.8 (tau-a would be 4/6).
# Tie-corrected variance of S = C - D (Kendall 1970):
# (n(n-1)(2n+5) - sum t(t-1)(2t+5) - sum u(u-1)(2u+5)) / 18 + sum t(t-1) sum u(u-1) / (2n(n-1))
# + sum t(t-1)(t-2) sum u(u-1)(u-2) / (9n(n-1)(n-2)) = (156 - 18 - 18) / 18 + 4 / 24 + 0 = 41/6
# p = erfc(4 / sqrt(41/6) / sqrt 2).
def test_kendall_tau_b_matches_hand_computed_values():
    exact = kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4])
    assert exact.tau == pytest.approx(4 / 6)
    assert exact.method == "exact"
    assert exact.p_value == pytest.approx(1 / 3)
    tied = kendall_tau_b([1, 1, 2, 3], [1, 2, 2, 3])
    assert tied.tau == pytest.approx(0.8)
    assert tied.method == "normal"
    assert tied.p_value == pytest.approx(math.erfc(4 / math.sqrt(41 / 6) / math.sqrt(2)))
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]).tau == pytest.approx(-1.0)
    assert kendall_tau_b([1, 1, 1], [1, 2, 3]) is None  # undefined: x is constant
    assert kendall_tau_b([1], [1]) is None


def test_kendall_tau_b_agrees_with_scipy_on_random_samples():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(0)
    for n in (5, 12, 40, 70):
        for ties in (False, True):
            x = rng.integers(0, 4, n) if ties else rng.permutation(n)
            y = rng.integers(0, 4, n) if ties else rng.permutation(n)
            ours = kendall_tau_b(list(x), list(y))
            method = "exact" if ours.method == "exact" else "asymptotic"
            ref = kendalltau(x, y, variant="b", method=method)
            assert ours.tau == pytest.approx(ref.statistic, abs=1e-12), (n, ties)
            assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9), (n, ties)


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
