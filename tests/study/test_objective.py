"""hls_tune/study/objective.py: one trial in-process, its value, steps and attributes."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from hls_tune.study.config import load_study_file, parse_study_text
from hls_tune.study.objective import Objective
from hls_tune.study.study import trial_history
from tests.support.evaluate_study import EVALUATE, _text
from tests.support.helpers import write_study


def test_a_trial_trained_on_both_sets_records_both_and_compare_ranks_them():
    """trains_on = ["longtail", "balanced"]: each seed trains on both sets, the value stays
    the long-tailed training's, and `compare` rank-correlates the two over the trials."""
    from hls_tune.study.compare import compare_study
    from hls_tune.study.objective import Objective

    evaluate = EVALUATE.format(epochs=2, seeds=1) + 'trains_on = ["longtail", "balanced"]\n'
    study_file = parse_study_text(
        _text('objective = "architecture"\n', evaluate).replace("epochs = 2\n", "epochs = 1\n", 1)
    )
    # A pruner that would stop any trial from step 2 on (no accuracy reaches 1.1): only the
    # long-tailed training (steps 0-1) is on the pruner's axis; the balanced one, trained
    # after the value is known, is recorded beside it and never reaches the pruner.
    pruner = optuna.pruners.ThresholdPruner(lower=1.1, n_warmup_steps=2)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(0), pruner=pruner
    )
    study.optimize(Objective(study_file, device="cpu"), n_trials=3)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for trial in trials:
        attrs = trial.user_attrs
        longtail = attrs["architecture_val_balanced_accuracy"]
        balanced = attrs["architecture_balanced_val_balanced_accuracy"]
        assert trial.value == longtail
        assert attrs["architecture_balanced_val_balanced_accuracy_seeds"] == [balanced]
        assert 0.0 <= attrs["architecture_balanced_test_balanced_accuracy"] <= 1.0
        assert set(attrs["architecture_balanced_shot_accuracy"]) <= {"many", "medium", "few"}
        # the long-tailed training's epochs 0-1 are the steps; the balanced training's
        # curve is recorded beside them
        assert sorted(trial.intermediate_values) == [0, 1]
        assert trial.intermediate_values[1] == pytest.approx(longtail)
        curves = trial.system_attrs["hls_tune:evaluation_history"]
        assert curves["balanced-seed-0"][-1] == pytest.approx(balanced)
    # compare ranks the two recorded figures (τ-b is undefined when one of them ties
    # across all three trials, as near-chance networks may)
    from hls_tune.study.compare_stats import kendall_tau_b

    tau = compare_study(study, "val_balanced_accuracy").balanced_predicts_longtail
    expected = kendall_tau_b(
        [t.user_attrs["architecture_balanced_val_balanced_accuracy"] for t in trials],
        [t.user_attrs["architecture_val_balanced_accuracy"] for t in trials],
    )
    assert (tau is None) == (expected is None)
    if tau is not None:
        assert (tau.tau, tau.n) == (pytest.approx(expected.tau), 3)


def test_the_default_metric_is_balanced_and_the_pruner_sees_the_optimised_value(tmp_path):
    # A long-tailed validation split, where top-1 and balanced accuracy differ.
    path = write_study(tmp_path / "s.toml", epochs=2, pruner="median")
    path.write_text(path.read_text().replace("[data]\n", '[data]\nval_source = "longtail_split"\n'))
    study_file = load_study_file(path)
    assert study_file.study.metric == "val_balanced_accuracy"
    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(study_file, device="cpu"), n_trials=1)
    trial = study.trials[0]
    curves = trial_history(trial)
    balanced = curves["val_balanced_accuracy_per_epoch"]
    assert balanced != curves["val_accuracy_per_epoch"]  # the test can tell them apart
    assert [trial.intermediate_values[e] for e in range(2)] == balanced
    assert trial.value == balanced[-1]
