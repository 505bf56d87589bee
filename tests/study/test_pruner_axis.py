"""The pruner sees one quantity: with objective = "architecture" only the trained network of
the first long-tailed training run reports, at step = its epoch; with "supernet" only the
search's epochs do. A study whose steps would mean different things in different trials is
refused at `study create`.

Optuna's MedianPruner and PatientPruner compare a trial's best value over all its steps so
far, so a single supernet value on the axis would shield a trained network that cannot
learn; these tests run Optuna's real pruners over real trials.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hls_tune.errors import ConfigError
from hls_tune.study.config import parse_study_text
from hls_tune.study.objective import Objective
from hls_tune.study.study import HISTORY_ATTR
from tests.support.helpers import TINY_STUDY, hls_tune

EVALUATE_EPOCHS = 3
SEARCH_EPOCHS = 2
# A trained network that cannot learn: its weights never move from their initialisation.
FROZEN_EVALUATE = f"""
[evaluate]
channels = 4
layers = 3
epochs = {EVALUATE_EPOCHS}
batch_size = 32
weight_lr = 1e-12
cutout = 0
drop_path = 0.0
auxiliary_weight = 0.0
seeds = 2
"""


def _study_text(objective: str, pruner: str = "none", evaluate: str = FROZEN_EVALUATE) -> str:
    text = TINY_STUDY.format(name="axis", n_trials=1, pruner=pruner, epochs=SEARCH_EPOCHS)
    return text.replace("[study]\n", f'[study]\nobjective = "{objective}"\n', 1) + evaluate


def _reference_trials(study: optuna.Study, value: float, steps: int) -> None:
    """Two finished trials whose every reported step scored `value`."""
    for _ in range(2):
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=value,
                params={"alpha_lr": 3e-3},
                distributions={"alpha_lr": FloatDistribution(1e-4, 1e-2, log=True)},
                intermediate_values=dict.fromkeys(range(steps), value),
            )
        )


def test_the_median_pruner_stops_an_architecture_that_cannot_learn_at_its_first_step():
    study_file = parse_study_text(_study_text("architecture", pruner="median"))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    # Trained networks of other trials reached 0.5 at every evaluation epoch; the supernet's
    # own values (whatever they are) must not shield this trial's chance-level network.
    _reference_trials(study, 0.5, EVALUATE_EPOCHS)
    study.optimize(Objective(study_file, device="cpu"), n_trials=1)
    trial = study.get_trials()[-1]
    assert trial.state == TrialState.PRUNED
    # only the first long-tailed training reported, at step = its epoch: step 0
    assert list(trial.intermediate_values) == [0]
    assert trial.intermediate_values[0] < 0.5
    # the supernet's curve is still the trial's history (for the dashboard and the report)
    history = trial.system_attrs[HISTORY_ATTR]
    assert len(history["val_balanced_accuracy_per_epoch"]) == SEARCH_EPOCHS
    curves = trial.system_attrs["hls_tune:evaluation_history"]
    assert curves == {"longtail-seed-0": [trial.intermediate_values[0]]}


def test_the_patient_pruner_window_holds_the_trained_network_alone():
    """PatientPruner consults its wrapped pruner only after the best value of the steps
    before its window beat the window's best by min_delta. On one axis a network that stays
    near chance (its BatchNorm statistics still move it by a few points) never declines by
    0.25, so it is not pruned, and its window holds only its own epochs: no supernet value
    stands before it."""
    study_file = parse_study_text(_study_text("architecture", pruner="median"))
    pruner = optuna.pruners.PatientPruner(
        optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
        patience=1,
        min_delta=0.25,
    )
    study = optuna.create_study(direction="maximize", pruner=pruner)
    _reference_trials(study, 0.5, EVALUATE_EPOCHS)
    study.optimize(Objective(study_file, device="cpu"), n_trials=1)
    trial = study.get_trials()[-1]
    assert trial.state == TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == list(range(EVALUATE_EPOCHS))
    assert all(v < 0.5 for v in trial.intermediate_values.values())  # below the others


def test_a_learning_architecture_reports_one_run_and_completes():
    evaluate = FROZEN_EVALUATE.replace("weight_lr = 1e-12", "weight_lr = 0.05")
    study_file = parse_study_text(_study_text("architecture", evaluate=evaluate))
    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(study_file, device="cpu"), n_trials=1)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.COMPLETE
    # seed 0 only: seed 1 would report the same steps again
    assert sorted(trial.intermediate_values) == list(range(EVALUATE_EPOCHS))
    seeds = trial.user_attrs["architecture_val_balanced_accuracy_seeds"]
    assert trial.intermediate_values[EVALUATE_EPOCHS - 1] == pytest.approx(seeds[0])
    curves = trial.system_attrs["hls_tune:evaluation_history"]
    assert sorted(curves) == ["longtail-seed-0", "longtail-seed-1"]
    assert curves["longtail-seed-1"][-1] == pytest.approx(seeds[1])


def test_with_the_supernet_as_objective_only_the_search_reports():
    study_file = parse_study_text(_study_text("supernet"))
    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(study_file, device="cpu"), n_trials=1)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.COMPLETE
    assert sorted(trial.intermediate_values) == list(range(SEARCH_EPOCHS))
    assert trial.value == trial.intermediate_values[SEARCH_EPOCHS - 1]


AXIS_KEYS = [
    ('epochs = { low = 2, high = 4 }\n', "space.epochs"),
    ("epochs = [2, 3]\n", "space.epochs"),
    ('method = ["hls", "adapt_head"]\n', "space.method"),
]


@pytest.mark.parametrize(("line", "key"), AXIS_KEYS)
def test_a_pruner_whose_steps_would_differ_between_trials_is_refused(line, key):
    text = _study_text("supernet", pruner="median").replace("[space]\n", "[space]\n" + line)
    fixed = {"space.epochs": "epochs = 2\n", "space.method": 'method = "hls"\n'}[key]
    text = text.replace(fixed, "", 1)  # a key lives in [engine] or [space], not both
    with pytest.raises(ConfigError, match=rf"^{key} changes what the pruner's steps mean"):
        parse_study_text(text)
    # the same space without a pruner, or judged on the trained network, is fine
    parse_study_text(text.replace('type = "median"', 'type = "none"'))
    parse_study_text(text.replace('objective = "supernet"', 'objective = "architecture"'))


def test_a_sampled_key_that_keeps_the_axis_is_allowed():
    text = _study_text("supernet", pruner="median").replace(
        "[space]\n", '[space]\nmethod = ["hls", "darts", "bbn_darts"]\n'
    )
    text = text.replace('method = "hls"\n', "", 1)
    parse_study_text(text)


@pytest.mark.slow
def test_study_create_refuses_it_with_exit_2_and_writes_nothing(tmp_path):
    path = tmp_path / "study.toml"
    text = _study_text("supernet", pruner="median").replace("epochs = 2\n", "", 1)
    path.write_text(text.replace("[space]\n", "[space]\nepochs = [2, 3]\n"), encoding="utf-8")
    db = tmp_path / "s.db"
    result = hls_tune("study", "create", str(path), "--storage", f"sqlite:///{db}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "space.epochs changes what the pruner's steps mean" in lines[0]
    assert not db.exists()
