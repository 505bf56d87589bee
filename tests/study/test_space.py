"""Conditional sampling (hls_tune.study.space, the only caller of `trial.suggest_*`): a trial
records exactly the parameters its α-LR shape and mixing form use, and under the grid
sampler every entry of the space. Real Optuna trials of an in-memory study."""

from __future__ import annotations

import itertools

import optuna
import pytest

from hls_tune.engine.schedules import ALPHA_GROUPS, ALPHA_LR_SHAPES, MIX_FORMS
from hls_tune.study.config import parse_study_text
from hls_tune.study.space import grid_search_space, suggest

STUDY = """
[study]
name = "space"
[data]
dataset = "digits"
[engine]
channels = 4
layers = 3
[space]
alpha_lr = {{ low = 1e-4, high = 1e-2, log = true }}
alpha_lr_shape = {shapes}
alpha_lr_b1 = {{ low = 0.1, high = 0.9 }}
alpha_lr_span = {{ low = 0.1, high = 0.9 }}
alpha_lr_floor = {{ low = 0.0, high = 0.5 }}
coupling = "mixing"
mix_form = {forms}
mix_steepness = {{ low = 1.0, high = 20.0 }}
mix_constant = {{ low = 0.0, high = 1.0 }}
mix_switch = {{ low = 0.1, high = 0.9 }}
"""

# Written out here, not derived from the code under test: what each shape and form uses.
ALWAYS = {"alpha_lr", "alpha_lr_shape", "mix_form"}  # `coupling` is fixed: never suggested
SHAPE_PARAMS = {
    "constant": set(),
    "step": {"alpha_lr_b1", "alpha_lr_floor"},
    "linear": {"alpha_lr_b1", "alpha_lr_span", "alpha_lr_floor"},
    "cosine": {"alpha_lr_b1", "alpha_lr_span", "alpha_lr_floor"},
    "exponential": {"alpha_lr_b1", "alpha_lr_span", "alpha_lr_floor"},
    "warmup_hold_decay": {"alpha_lr_b1", "alpha_lr_span", "alpha_lr_floor"},
}
FORM_PARAMS = {
    "parabolic": set(),
    "linear": set(),
    "cosine": set(),
    "sigmoid": {"mix_steepness"},
    "step": {"mix_switch"},
    "constant": {"mix_constant"},
    "parabolic_increment": set(),
}


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_the_tables_here_cover_every_shape_and_form():
    assert set(SHAPE_PARAMS) == set(ALPHA_LR_SHAPES)
    assert set(FORM_PARAMS) == set(MIX_FORMS)


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_trial_records_exactly_the_parameters_its_shape_and_form_use(sampler):
    study_file = parse_study_text(
        STUDY.format(shapes=list(ALPHA_LR_SHAPES), forms=list(MIX_FORMS)).replace("'", '"')
    )
    samplers = {
        "random": optuna.samplers.RandomSampler(seed=0),
        "tpe": optuna.samplers.TPESampler(seed=0, n_startup_trials=2),
    }
    study = optuna.create_study(sampler=samplers[sampler])
    combinations = list(itertools.product(ALPHA_LR_SHAPES, MIX_FORMS))
    for shape, form in combinations:
        study.enqueue_trial({"alpha_lr_shape": shape, "mix_form": form})
    for shape, form in combinations:
        trial = study.ask()
        config, values = suggest(trial, study_file)
        study.tell(trial, config.alpha_lr)
        recorded = study.trials[trial.number].params  # as the storage keeps them
        assert (recorded["alpha_lr_shape"], recorded["mix_form"]) == (shape, form)
        expected = ALWAYS | SHAPE_PARAMS[shape] | FORM_PARAMS[form]
        assert set(recorded) == expected, (shape, form)
        assert set(values) == expected | {"coupling"}, (shape, form)
        assert config.schedule.shared.shape == shape and config.schedule.mixing.form == form


def test_under_the_grid_sampler_every_trial_records_every_entry():
    one_each = STUDY.replace("{{ low = 0.1, high = 0.9 }}", "[0.5]")
    one_each = one_each.replace("{{ low = 0.0, high = 0.5 }}", "[0.2]")
    one_each = one_each.replace("{{ low = 0.0, high = 1.0 }}", "[0.3]")
    one_each = one_each.replace("{{ low = 1.0, high = 20.0 }}", "[5.0]")
    one_each = one_each.replace("{{ low = 1e-4, high = 1e-2, log = true }}", "[1e-3]")
    study_file = parse_study_text(
        one_each.format(shapes='["constant", "step"]', forms='["parabolic", "sigmoid"]')
    )
    space = grid_search_space(study_file)
    every = ALWAYS | set().union(*SHAPE_PARAMS.values(), *FORM_PARAMS.values())
    assert set(space) == every
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space, seed=0))
    seen = []

    def objective(trial: optuna.Trial) -> float:
        config, _ = suggest(trial, study_file)
        seen.append((config.schedule.shared.shape, config.schedule.mixing.form))
        return config.alpha_lr

    study.optimize(objective, n_trials=10)  # the grid sampler stops the study after 4
    assert [set(t.params) for t in study.trials] == [every] * 4
    assert sorted(seen) == sorted(itertools.product(["constant", "step"], ["parabolic", "sigmoid"]))


# --- per-group α schedules --------------------------------------------------------------

PER_GROUP = """
[study]
name = "per-group"
[data]
dataset = "digits"
[engine]
channels = 4
layers = 3
[space]
alpha_lr_shape = ["constant", "cosine"]
alpha_lr_b1 = { low = 0.1, high = 0.9 }
backbone_alpha_lr_shape = {backbone}
backbone_alpha_lr_b1 = { low = 0.0, high = 0.9 }
backbone_alpha_lr_span = { low = 0.0, high = 1.0 }
backbone_alpha_lr_floor = { low = 0.0, high = 0.5 }
head_alpha_lr_shape = ["constant", "step"]
head_alpha_lr_b1 = { low = 0.0, high = 0.9 }
head_alpha_lr_floor = { low = 0.0, high = 0.5 }
head_alpha_lr_mult = { low = 0.5, high = 2.0 }
head_rebalancing_alpha_lr_shape = ["constant", "linear"]
head_rebalancing_alpha_lr_b1 = { low = 0.0, high = 0.9 }
mix_form = "cosine"
"""

# Written out here: which parameter each level's shape makes matter.
LEVEL_PARAMS = {
    "backbone_": {"constant": set(), "step": {"backbone_alpha_lr_b1", "backbone_alpha_lr_floor"}},
    "head_": {"constant": set(), "step": {"head_alpha_lr_b1", "head_alpha_lr_floor"}},
    "head_rebalancing_": {"constant": set(), "linear": {"head_rebalancing_alpha_lr_b1"}},
}


def test_per_group_levels_record_only_the_parameters_their_shapes_use():
    """Backbone pair and head pair untied, the re-balancing head untied from the
    conventional one: the shared shape then has no effect (every group follows another
    level) and is never sampled; each level's breakpoints and floor only where its shape
    uses them; the multiplier always."""
    study_file = parse_study_text(PER_GROUP.replace("{backbone}", '["constant", "step"]'))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    combinations = list(
        itertools.product(["constant", "step"], ["constant", "step"], ["constant", "linear"])
    )
    for backbone, head, rebalancing in combinations:
        study.enqueue_trial(
            {
                "backbone_alpha_lr_shape": backbone,
                "head_alpha_lr_shape": head,
                "head_rebalancing_alpha_lr_shape": rebalancing,
            }
        )
    for backbone, head, rebalancing in combinations:
        trial = study.ask()
        config, _ = suggest(trial, study_file)
        study.tell(trial, 0.0)
        recorded = set(study.trials[trial.number].params)
        expected = (
            {"backbone_alpha_lr_shape", "head_alpha_lr_shape", "head_alpha_lr_mult"}
            | {"head_rebalancing_alpha_lr_shape"}
            | LEVEL_PARAMS["backbone_"][backbone]
            | LEVEL_PARAMS["head_"][head]
            | LEVEL_PARAMS["head_rebalancing_"][rebalancing]
        )
        assert recorded == expected, (backbone, head, rebalancing)
        schedule = config.schedule
        assert [schedule.level(g) for g in ("backbone_normal", "head_conventional")] == [
            "backbone",
            "head",
        ]
        assert schedule.level("head_rebalancing") == "head_rebalancing"


def test_a_shared_shape_that_some_group_still_follows_is_sampled():
    """Without a backbone key the backbone groups follow the shared shape, so it is
    sampled, and its b1 where that shape uses it."""
    text = PER_GROUP.replace("backbone_alpha_lr_shape = {backbone}\n", "")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("backbone_"))
    study_file = parse_study_text(text)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for shape in ("constant", "cosine"):
        study.enqueue_trial({"alpha_lr_shape": shape})
    for shape in ("constant", "cosine"):
        trial = study.ask()
        config, _ = suggest(trial, study_file)
        study.tell(trial, 0.0)
        recorded = set(study.trials[trial.number].params)
        assert "alpha_lr_shape" in recorded
        assert ("alpha_lr_b1" in recorded) == (shape == "cosine")
        assert config.schedule.level("backbone_reduce") == "shared"


def test_a_single_shape_study_ties_all_four_groups():
    study_file = parse_study_text(
        STUDY.format(shapes='["cosine"]', forms='["linear"]').replace("'", '"')
    )
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    config, _ = suggest(trial, study_file)
    schedule = config.schedule
    assert {schedule.level(g) for g in ALPHA_GROUPS} == {"shared"}
    assert schedule.shared.shape == "cosine"
    shapes = {round(schedule.shape(0.8, g), 12) for g in ALPHA_GROUPS}
    assert len(shapes) == 1 and shapes != {1.0}


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        (  # alpha_lr has no default: the sampler draws it for the preset trial too
            "alpha_lr = { low = 1e-4, high = 1e-2, log = true }\n"
            'backbone_alpha_lr_shape = ["cosine", "step"]\n'
            "backbone_alpha_lr_b1 = { low = 0.0, high = 1.0 }\n"
            'head_alpha_lr_shape = ["constant", "linear"]\n'
            'mix_form = ["cosine", "parabolic"]\n',
            {
                "backbone_alpha_lr_shape": "cosine",
                "backbone_alpha_lr_b1": 0.0,
                "head_alpha_lr_shape": "constant",
                "mix_form": "cosine",
            },
        ),
        ('mix_form = ["cosine", "parabolic"]\n', {"mix_form": "cosine"}),  # preset start
        (
            'backbone_alpha_lr_shape = ["cosine"]\n'
            "backbone_alpha_lr_b1 = { low = 0.1, high = 1.0 }\n"
            'head_alpha_lr_shape = ["constant"]\n',
            None,
        ),  # b1 = 0 is outside the range
        ('mix_form = "parabolic"\n', None),  # a fixed asymmetric μ contradicts the preset
        ('alpha_lr_shape = ["cosine", "constant"]\n', None),  # all groups tied
    ],
)
def test_the_preset_trial_sets_exactly_the_schedule_entries_the_space_samples(space, expected):
    from hls_tune.study.space import paper_reading_params

    text = '[study]\nname = "p"\n[data]\ndataset = "digits"\n[space]\n' + space
    assert paper_reading_params(parse_study_text(text)) == expected


@pytest.mark.parametrize(
    ("space", "line"),
    [
        ('mix_form = ["cosine", "parabolic"]\n', "the preset is one of its points"),
        ('mix_form = ["linear", "parabolic"]\n', "which does not contain the preset"),
    ],
)
def test_a_grid_study_queues_no_extra_preset_trial_and_says_whether_its_grid_holds_it(
    space, line
):
    from hls_tune.study.space import paper_reading_params, preset_note

    text = (
        '[study]\nname = "p"\n[study.sampler]\ntype = "grid"\n'
        '[data]\ndataset = "digits"\n[space]\n' + space
    )
    study_file = parse_study_text(text)
    assert paper_reading_params(study_file) is None
    assert line in preset_note(study_file, queued=False)
