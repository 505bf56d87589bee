"""hls_tune/study/study.py: create queues the budget (the preset first); samplers and pruners."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hls_tune.study.config import load_study_file
from hls_tune.study.study import create_study, load_study, trials_done, work_left
from hls_tune.study.worker import open_worker_storage
from tests.support.helpers import REPO_ROOT, hls_tune, write_study

STUDIES = REPO_ROOT / "studies"

REPO = REPO_ROOT

STUDY = """
[study]
name = "pruners"
n_trials = {n_trials}
[study.sampler]
type = "random"
seed = {seed}
[study.pruner]
{pruner}

[data]
dataset = "digits"
image_size = 8
imbalance_ratio = 10
val_fraction = 0.15
many_above = 60
few_below = 20

[engine]
method = "hls"
channels = 4
layers = 3
epochs = 3
batch_size = 32
flip = false
crop_padding = 1
device = "cpu"
seed = 0

[space]
weight_lr = [0.1, 0.001]
"""


def test_create_queues_the_whole_budget_as_waiting_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study_file = load_study_file(write_study(tmp_path / "s.toml", n_trials=5))
    name, _ = create_study(url, study_file)
    study = optuna.load_study(study_name=name, storage=open_worker_storage(url))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.WAITING] * 5
    assert all(t.params == {} and "fixed_params" not in t.system_attrs for t in trials)
    assert trials_done(study) == 0 and work_left(study)


def _worker_study(url: str, name: str) -> optuna.Study:
    """The study as one worker process sees it: its own sampler built from the stored file."""
    return load_study(url, name, storage=open_worker_storage(url)).study


def _suggest(study: optuna.Study) -> tuple[int, dict]:
    trial = study.ask()
    trial.suggest_float("alpha_lr_b1", 0.0, 1.0)
    trial.suggest_categorical("mix_form", ["parabolic", "cosine", "sigmoid", "constant"])
    return trial.number, trial.params


def _seeded_study_file(tmp_path: Path, sampler: str, file: str = "s.toml"):
    path = write_study(tmp_path / file, n_trials=4)
    path.write_text(path.read_text().replace('type = "random"', f'type = "{sampler}"'))
    return load_study_file(path)


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_two_workers_with_the_seeded_sampler_draw_different_parameters(tmp_path, sampler):
    # Each worker builds the study's sampler from the same stored seed; a plain seeded
    # sampler made both workers' first trials identical.
    url = f"sqlite:///{tmp_path / 's.db'}"
    name, _ = create_study(url, _seeded_study_file(tmp_path, sampler))
    first, second = _worker_study(url, name), _worker_study(url, name)
    (number_a, params_a), (number_b, params_b) = _suggest(first), _suggest(second)
    assert (number_a, number_b) == (0, 1)
    assert params_a != params_b


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_trials_parameters_do_not_depend_on_which_worker_ran_it(tmp_path, sampler):
    study_file = _seeded_study_file(tmp_path, sampler)
    one_url, two_url = f"sqlite:///{tmp_path / 'one.db'}", f"sqlite:///{tmp_path / 'two.db'}"
    one, _ = create_study(one_url, study_file)
    two, _ = create_study(two_url, study_file)
    alone = _worker_study(one_url, one)
    by_one_worker = [_suggest(alone), _suggest(alone)]
    by_two_workers = [_suggest(_worker_study(two_url, two)), _suggest(_worker_study(two_url, two))]
    assert by_one_worker == by_two_workers


@pytest.mark.parametrize("file", ["digits_lt_demo.toml", "cifar10_lt_hls.toml"])
def test_an_hls_study_queues_the_paper_reading_preset_first_within_its_budget(tmp_path, file):
    """SPEC §4: the first queued trial carries the preset's parameters; the budget still
    counts n_trials; the trial a worker claims first runs the preset's schedule."""
    from hls_tune.engine.schedules import default_schedule
    from hls_tune.study.space import suggest

    url = f"sqlite:///{tmp_path / 's.db'}"
    study_file = load_study_file(STUDIES / file)
    name, _ = create_study(url, study_file)
    study = optuna.load_study(study_name=name, storage=open_worker_storage(url))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.WAITING] * study_file.study.n_trials
    first = trials[0].system_attrs["fixed_params"]
    assert first["backbone_alpha_lr_shape"] == "cosine"
    assert first["head_alpha_lr_shape"] == "constant"
    assert first["mix_form"] == "cosine" and first["coupling"] == "mixing"
    assert "head_alpha_lr_b1" not in first  # a constant head shape uses no breakpoint
    assert all("fixed_params" not in t.system_attrs for t in trials[1:])
    assert study.user_attrs["hls_tune:preset"] == "paper_reading"

    trial = study.ask()
    assert trial.number == 0
    config, _ = suggest(trial, study_file)
    assert config.schedule.curves(1.0, 21) == default_schedule("hls").curves(1.0, 21)
    assert set(study.get_trials()[0].params) == set(first)  # nothing else was sampled
    suggest(study.ask(), study_file)  # the sampler's own choice from here on
    assert len(study.get_trials()) == study_file.study.n_trials


def test_a_single_shape_study_cannot_express_the_preset_and_queues_blank_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    name, _ = create_study(url, load_study_file(write_study(tmp_path / "s.toml", n_trials=3)))
    study = optuna.load_study(study_name=name, storage=open_worker_storage(url))
    assert all("fixed_params" not in t.system_attrs for t in study.get_trials())
    assert len(study.get_trials()) == 3 and study.user_attrs["hls_tune:preset"] == "none"


def _study_file(pruner: str, *, n_trials: int = 2, seed: int = 0):
    from hls_tune.study.config import parse_study_text

    text = STUDY.format(pruner=pruner, n_trials=n_trials, seed=seed)
    return parse_study_text(text, source="pruners.toml")


def _pruner(pruner: str) -> optuna.pruners.BasePruner:
    from hls_tune.study.study import make_pruner

    return make_pruner(_study_file(pruner))


def _first_pruned_step(
    pruner: optuna.pruners.BasePruner, finished: list[float], running: list[float]
) -> int | None:
    """Runs one finished trial, then reports `running` step by step (maximize); returns the
    first step at which the pruner says prune, None if it never does."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    done = study.ask()
    for step, value in enumerate(finished):
        done.report(value, step)
    study.tell(done, finished[-1])
    trial = study.ask()
    for step, value in enumerate(running):
        trial.report(value, step)
        if trial.should_prune():
            return step
    return None


def test_median_takes_every_setting_of_the_study_file():
    pruner = _pruner(
        'type = "median"\nn_startup_trials = 7\nn_warmup_steps = 2\n'
        "interval_steps = 3\nn_min_trials = 4"
    )
    assert type(pruner) is optuna.pruners.MedianPruner
    assert (
        pruner._n_startup_trials,
        pruner._n_warmup_steps,
        pruner._interval_steps,
        pruner._n_min_trials,
    ) == (7, 2, 3, 4)


def test_median_prunes_a_worse_trial_only_after_its_warmup():
    pruner = _pruner('type = "median"\nn_startup_trials = 1\nn_warmup_steps = 2')
    assert _first_pruned_step(pruner, [0.9] * 5, [0.1] * 5) == 2
    assert _first_pruned_step(pruner, [0.5] * 5, [0.6] * 5) is None


def test_successive_halving_takes_every_setting_of_the_study_file():
    pruner = _pruner(
        'type = "successive_halving"\nmin_resource = 2\nreduction_factor = 3\n'
        "min_early_stopping_rate = 1"
    )
    assert type(pruner) is optuna.pruners.SuccessiveHalvingPruner
    assert (pruner._min_resource, pruner._reduction_factor, pruner._min_early_stopping_rate) == (
        2,
        3,
        1,
    )


@pytest.mark.parametrize("max_resource", ["5", '"auto"'])
def test_hyperband_takes_every_setting_of_the_study_file(max_resource):
    pruner = _pruner(
        f'type = "hyperband"\nmin_resource = 1\nmax_resource = {max_resource}\nreduction_factor = 2'
    )
    assert type(pruner) is optuna.pruners.HyperbandPruner
    expected = 5 if max_resource == "5" else "auto"
    assert (pruner._min_resource, pruner._max_resource, pruner._reduction_factor) == (
        1,
        expected,
        2,
    )


@pytest.mark.parametrize("extra", ["", "\npatience = 2"])
def test_none_never_prunes(extra):
    pruner = _pruner(f'type = "none"{extra}')
    assert type(pruner) is optuna.pruners.NopPruner
    assert _first_pruned_step(pruner, [0.9] * 5, [0.0] * 5) is None


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_patience_wraps_the_configured_pruner_with_its_settings():
    pruner = _pruner(
        'type = "median"\nn_startup_trials = 1\nn_warmup_steps = 0\npatience = 3\nmin_delta = 0.25'
    )
    assert type(pruner) is optuna.pruners.PatientPruner
    assert (pruner._patience, pruner._min_delta) == (3, 0.25)
    inner = pruner._wrapped_pruner
    assert type(inner) is optuna.pruners.MedianPruner
    assert (inner._n_startup_trials, inner._n_warmup_steps) == (1, 0)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_patience_delays_pruning_until_that_many_steps_without_improvement():
    base = 'type = "median"\nn_startup_trials = 1\nn_warmup_steps = 0'
    falling = [0.5 - 0.02 * step for step in range(10)]
    # The median alone prunes the worse trial at once; with patience p, Optuna's
    # PatientPruner asks it only once the last p + 1 steps are all below the best before
    # them by more than min_delta.
    assert _first_pruned_step(_pruner(base), [0.9] * 10, falling) == 0
    assert _first_pruned_step(_pruner(f"{base}\npatience = 3"), [0.9] * 10, falling) == 4
    assert _first_pruned_step(_pruner(f"{base}\npatience = 2"), [0.9] * 10, falling) == 3
    patient = _pruner(f"{base}\npatience = 2\nmin_delta = 0.05")
    assert _first_pruned_step(patient, [0.9] * 10, falling) == 5
    # Still the median's decision: a trial above the median is never pruned.
    assert _first_pruned_step(_pruner(f"{base}\npatience = 2"), [0.1] * 10, falling) is None


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("path", sorted((REPO / "studies").glob("*.toml")), ids=lambda p: p.name)
def test_each_shipped_study_loads_with_its_own_pruner(tmp_path, path):
    from hls_tune.study.config import parse_study_text
    from hls_tune.study.study import create_study, load_study

    study_file = parse_study_text(path.read_text(encoding="utf-8"), source=path.name)
    settings = study_file.study.pruner
    url = f"sqlite:///{tmp_path / 's.db'}"
    name, _ = create_study(url, study_file)
    pruner = load_study(url, name).study.pruner
    if settings.patience is not None and settings.type != "none":
        assert type(pruner) is optuna.pruners.PatientPruner
        assert pruner._patience == settings.patience
        pruner = pruner._wrapped_pruner
    expected = {
        "median": optuna.pruners.MedianPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "none": optuna.pruners.NopPruner,
    }[settings.type]
    assert type(pruner) is expected
    if settings.type == "median":
        assert pruner._n_startup_trials == settings.args.get("n_startup_trials", 5)
        assert pruner._n_warmup_steps == settings.args.get("n_warmup_steps", 0)


@pytest.mark.slow
def test_a_worker_with_the_median_pruner_prunes_the_trial_that_cannot_learn(tmp_path):
    # Same seed, same data, same initial weights: the two trials differ only in weight_lr.
    # Seed 3 draws 0.1 for trial 0 and 0.001 for trial 1, so the median of trial 0's curve
    # is the bar trial 1 has to clear from its second epoch on; at a hundredth of the
    # learning rate it cannot (0.08 against 0.20 at epoch 1 on this machine).
    path = tmp_path / "study.toml"
    pruner = 'type = "median"\nn_startup_trials = 1\nn_warmup_steps = 1'
    path.write_text(STUDY.format(pruner=pruner, n_trials=2, seed=3), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 's.db'}"
    created = hls_tune("study", "create", str(path), "--storage", url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    result = hls_tune(
        "worker",
        "--study",
        "pruners",
        "--storage",
        url,
        "--no-progress",
        "--no-artifacts",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    from hls_tune.study.storage import open_storage

    trials = optuna.load_study(study_name="pruners", storage=open_storage(url)).get_trials()
    assert [t.params["weight_lr"] for t in trials] == [0.1, 0.001], "the seed's draws changed"
    good, bad = trials
    assert good.state == TrialState.COMPLETE, result.stderr
    assert bad.state == TrialState.PRUNED, (bad.intermediate_values, good.intermediate_values)
    # Pruned at its first step past the warm-up, not merely at the end.
    assert sorted(bad.intermediate_values) == [0, 1]
    assert bad.intermediate_values[1] < good.intermediate_values[1]
    assert "trial 1 pruned after 2 epochs" in result.stderr
