"""hls_tune/study/config.py: study files load; a bad one fails naming the key and the value."""

from __future__ import annotations

import dataclasses

import pytest

from hls_tune.engine.schedules import default_schedule
from hls_tune.engine.settings import SearchConfig
from hls_tune.errors import ConfigError
from hls_tune.study.config import config_with, load_study_file, parse_study_text
from tests.support.evaluate_study import _text
from tests.support.helpers import REPO_ROOT

STUDIES = REPO_ROOT / "studies"

MINIMAL = """
[study]
name = "t"
[data]
dataset = "digits"
[engine]
channels = 4
layers = 3
[space]
alpha_lr = { low = 1e-4, high = 1e-2, log = true }
"""


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_study_file_is_valid(path):
    study = load_study_file(path)
    assert study.study.name
    config = study.default_config()
    assert config.alpha_lr > 0
    if "method" in study.space:
        return  # a method comparison: each method at its own default schedule
    for name in (
        "alpha_lr",
        "backbone_alpha_lr_shape",
        "backbone_alpha_lr_b1",
        "backbone_alpha_lr_span",
        "backbone_alpha_lr_floor",
        "head_alpha_lr_shape",
        "head_alpha_lr_mult",
        "coupling",
        "mix_form",
    ):
        assert name in study.space, f"{path.name} does not expose {name}"
    # `hls-tune search` on a shipped HLS study runs the paper-reading preset
    assert config.schedule.curves(1.0, 21) == default_schedule("hls").curves(1.0, 21)


def test_paper_scale_study_file_matches_the_darts_search_recipe():
    config = load_study_file(STUDIES / "cifar10_lt_hls.toml").default_config()
    assert (config.channels, config.layers, config.epochs, config.batch_size) == (16, 8, 50, 64)
    assert config.data.imbalance_ratio == 100 and config.data.dataset == "cifar10"
    assert (config.weight_lr, config.weight_lr_min, config.momentum) == (0.025, 0.001, 0.9)
    assert (config.alpha_betas, config.alpha_weight_decay) == ((0.5, 0.999), 1e-3)


def test_span_maps_breakpoints_so_that_b2_is_never_below_b1():
    base = SearchConfig()
    for b1 in (0.0, 0.3, 1.0):
        for span in (0.0, 0.5, 1.0):
            schedule = config_with(base, {"alpha_lr_b1": b1, "alpha_lr_span": span}).schedule
            assert b1 <= schedule.shared.b2 <= 1.0
            assert schedule.shared.b2 == pytest.approx(b1 + span * (1 - b1))


def test_the_content_hash_changes_with_the_text():
    a = parse_study_text(MINIMAL)
    b = parse_study_text(MINIMAL + "\n# comment\n")
    assert a.sha256 != b.sha256 and a.text == MINIMAL


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[study\nname=1", ["not valid TOML"]),
        (MINIMAL.replace("[engine]", "[engine]\nchanels = 4"), ["engine.chanels", "channels"]),
        (MINIMAL.replace("[engine]", "[engine]\nepochs = 'ten'"), ["epochs", "'ten'", "integer"]),
        (
            MINIMAL.replace('dataset = "digits"', 'dataset = "mnist"'),
            ["data.dataset", "'mnist'", "cifar10"],
        ),
        (
            MINIMAL.replace("[data]", "[data]\nimbalance_ratio = 0.5"),
            ["data.imbalance_ratio", "0.5"],
        ),
        (
            MINIMAL.replace("log = true }", "log = true }\nmix_form = []"),
            ["space.mix_form.choices", "non-empty"],
        ),
        (
            MINIMAL.replace("low = 1e-4, high = 1e-2", "low = 1e-2, high = 1e-4"),
            ["space.alpha_lr", "low=0.01", "high=0.0001"],
        ),
        (MINIMAL.replace("low = 1e-4", "low = 0.0"), ["space.alpha_lr", "log range", "low > 0"]),
        (
            MINIMAL.replace("log = true }", "log = true }\nalpha_lr_shape = ['cosin']"),
            ["alpha_lr_shape", "'cosin'", "did you mean 'cosine'"],
        ),
        (
            MINIMAL.replace("log = true }", "log = true }\nmix_form = 'sigmoidal'"),
            ["mix_form", "'sigmoidal'"],
        ),
        (
            MINIMAL.replace("log = true }", "log = true }\nmethod = ['dart']"),
            ["method", "'dart'", "did you mean 'darts'"],
        ),
        (MINIMAL + "\n[study.sampler]\ntype = 'cmaes'\n", ["study.sampler.type", "'cmaes'", "tpe"]),
        (
            MINIMAL + "\n[study.pruner]\ntype = 'threshold'\n",
            ["study.pruner.type", "'threshold'", "median"],
        ),
        (
            MINIMAL + "\n[study.pruner]\nn_warmup_step = 3\n",
            ["study.pruner.n_warmup_step", "n_warmup_steps"],
        ),
        (
            MINIMAL.replace("log = true }", "log = true }\nalpha_lr_b1 = 1.5"),
            ["alpha_lr_b1", "1.5"],
        ),
        (
            MINIMAL.replace(
                "log = true }", "log = true }\nalpha_lr_floor = { low = -1.0, high = 1.0 }"
            ),
            ["alpha_lr_floor", "-1.0"],
        ),
        (
            MINIMAL.replace("[engine]", "[engine]\nalpha_lr = 0.1"),
            ["alpha_lr", "[engine]", "[space]"],
        ),
        (MINIMAL.replace("[study]", "[study]\nn_trials = 0"), ["study.n_trials", "0"]),
        (MINIMAL + "\n[extra]\n", ["unknown key extra"]),
        (MINIMAL + "\n[study.sampler]\ntype = 'grid'\n", ["grid sampler", "space.alpha_lr"]),
        (MINIMAL.replace('dataset = "digits"', 'dataset = "cifar10"'), ["data.root"]),
    ],
)
def test_bad_study_files_raise_one_error_naming_key_and_value(text, fragments):
    with pytest.raises(ConfigError) as caught:
        parse_study_text(text)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message


def test_a_missing_study_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_study_file(tmp_path / "nope.toml")


def test_grid_study_accepts_choice_lists_including_data_keys():
    text = """
[study]
name = "grid"
[study.sampler]
type = "grid"
[engine]
channels = 4
layers = 3
[space]
method = ["darts", "hls"]
seed = [0, 1]
[space.data]
imbalance_ratio = [10, 50]
"""
    study = parse_study_text(text)
    assert set(study.sampled()) == {"method", "seed", "data.imbalance_ratio"}
    config = config_with(study.base, {"method": "hls", "seed": 1, "data.imbalance_ratio": 50})
    assert (config.method, config.seed, config.data.imbalance_ratio) == ("hls", 1, 50)


def test_in_the_methods_grid_each_method_runs_at_its_own_default_schedule():
    """bbn_darts is "BBN simply combined with DARTS": BBN's parabolic μ whatever hls uses in
    the same grid; hls runs the paper-reading preset (symmetric cosine μ)."""
    study = load_study_file(STUDIES / "methods_grid.toml")
    bbn = config_with(study.base, {"method": "bbn_darts", "seed": 0})
    hls = config_with(study.base, {"method": "hls", "seed": 0})
    assert bbn.schedule.mixing.form == "parabolic" and not bbn.schedule.mixing.is_symmetric
    assert hls.schedule == default_schedule("hls") and hls.schedule.mixing.is_symmetric
    # built from a bbn_darts base, an hls trial still gets the preset
    other = dataclasses.replace(study.base, method="bbn_darts", schedule=None)
    assert config_with(other, {"method": "hls"}).schedule == default_schedule("hls")


def test_the_pc_darts_study_file_has_the_published_search_recipe():
    config = load_study_file(STUDIES / "cifar10_lt_pc_darts.toml").default_config()
    assert (config.partial_channels, config.alpha_start_epoch) == (4, 15)
    assert (config.batch_size, config.weight_lr, config.alpha_lr) == (256, 0.1, 6e-4)
    assert (config.epochs, config.weight_lr_min) == (50, 0.0)


def test_a_levels_breakpoint_without_its_shape_is_refused_naming_both_keys():
    text = (
        '[study]\nname = "x"\n[data]\ndataset = "digits"\n[space]\n'
        'alpha_lr_shape = ["cosine"]\nhead_rebalancing_alpha_lr_b1 = { low = 0.0, high = 1.0 }\n'
    )
    with pytest.raises(ConfigError, match=r"space\.head_rebalancing_alpha_lr_b1 has no effect"):
        parse_study_text(text)
    # with the preset as the start, the backbone level has a shape: its b1 matters
    parse_study_text(text.replace('alpha_lr_shape = ["cosine"]\nhead_rebalancing', "backbone"))


def test_an_evaluate_table_parses_into_its_settings():
    parsed = parse_study_text(_text('objective = "architecture"\n'))
    assert parsed.evaluate is not None
    assert (parsed.evaluate.epochs, parsed.evaluate.seeds, parsed.evaluate.cutout) == (2, 1, 0)
    assert parsed.study.objective == "architecture" and not parsed.study.multi_objective


@pytest.mark.parametrize(
    ("study_lines", "evaluate", "message"),
    [
        ("", "[evaluate]\nepoch = 3\n", "unknown key evaluate.epoch (did you mean 'epochs'?)"),
        ("", "[evaluate]\nseeds = 0\n", "evaluate.seeds must be an integer >= 1 but got 0"),
        ("", '[evaluate]\ncutout = "yes"\n', "evaluate.cutout must be an integer but got 'yes'"),
        ("", "[evaluate]\ncutout = false\n", "evaluate.cutout must be a side in pixels"),
        ("", "[evaluate]\nweight_lr = 0\n", "evaluate.weight_lr must be in (0.0, inf) but got 0"),
        ("", "[evaluate]\nlr = 0.1\n", "unknown key evaluate.lr: it is evaluate.weight_lr"),
        ('objective = "architecture"\n', "", "needs an [evaluate] table"),
        ('objective = "trained"\n', "", "study.objective must be one of"),
        (
            'objective = "architecture"\ndirections = ["maximize", "minimize"]\n',
            "median",
            'study.pruner.type must be "none" with study.directions',
        ),
        (
            'directions = ["maximize", "minimize"]\n',
            None,
            'study.directions needs study.objective = "architecture"',
        ),
        (
            'objective = "architecture"\ndirections = ["maximize"]\n',
            None,
            "study.directions must be two of maximize, minimize",
        ),
        ('size_objective = "architecture_madds"\n', None, "needs study.directions"),
        (
            "",
            '[evaluate]\ntrains_on = ["balanced"]\n',
            'evaluate.trains_on must include "longtail" (the architecture trained on the '
            "long-tailed set gives the trial's accuracy) but got ['balanced']",
        ),
        *(
            (
                "",
                f"[evaluate]\ntrains_on = {value}\n",
                'evaluate.trains_on must be a list of distinct names from "longtail", '
                f'"balanced" but got {shown}',
            )
            for value, shown in [
                ('"longtail"', "'longtail'"),
                ("[]", "[]"),
                ('["longtail", "lt"]', "['longtail', 'lt']"),
                ('["longtail", "longtail"]', "['longtail', 'longtail']"),
                ('["longtail", 1]', "['longtail', 1]"),
            ]
        ),
    ],
)
def test_bad_evaluate_and_objective_settings_name_the_key(study_lines, evaluate, message):
    if evaluate == "median":
        text = _text(study_lines, pruner="median")
    elif evaluate is None:
        text = _text(study_lines)
    else:
        text = _text(study_lines, evaluate)
    with pytest.raises(ConfigError) as error:
        parse_study_text(text)
    assert message in str(error.value)
