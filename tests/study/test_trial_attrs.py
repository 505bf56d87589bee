"""hls_tune/study/trial_attrs.py: what a trial records of its search, per epoch."""

from __future__ import annotations

import pytest

from hls_tune import engine
from hls_tune.study.trial_attrs import history_attrs
from tests.support.tiny_search import tiny_config


@pytest.fixture(scope="module")
def history():
    return engine.run_search(tiny_config(method="hls", epochs=2)).history


def test_the_history_keeps_the_curves_the_papers_figures_need(history):
    """Validation loss, each BBN branch's loss and each α group's movement, per epoch."""
    attrs = history_attrs(history)
    assert attrs["val_loss_per_epoch"] == [m.val_loss for m in history]
    assert attrs["train_loss_per_epoch"] == [m.train_loss for m in history]
    for branch in ("conventional", "rebalancing"):
        assert attrs[f"branch_loss_{branch}_per_epoch"] == [
            m.branch_losses[branch] for m in history
        ]
    for group in ("backbone_normal", "backbone_reduce", "head_conventional", "head_rebalancing"):
        assert attrs[f"alpha_movement_{group}_per_epoch"] == [
            m.alpha_movement[group] for m in history
        ]
        assert attrs[f"alpha_lr_{group}_per_epoch"] == [m.alpha_lrs[group] for m in history]


def test_a_plain_method_records_no_branch_losses():
    history = engine.run_search(tiny_config(method="darts", epochs=1)).history
    attrs = history_attrs(history)
    assert not any(key.startswith("branch_loss_") for key in attrs)
    assert attrs["mixing_ratio_per_epoch"] == [None]


BBN_GENOTYPE_HEADS = {
    "head_conventional": [["sep_conv_5x5", 0], ["dil_conv_3x3", 1]] * 4,
    "head_rebalancing": [["skip_connect", 0], ["max_pool_3x3", 1]] * 4,
}


@pytest.mark.parametrize(
    ("network", "table", "expected"),
    [
        # one recipe for every genotype: both plain, or both BBN with the study's μ form
        ("plain", "", {"plain": ("plain", None), "bbn": ("plain", None)}),
        ("bbn", 'mix_form = "linear"\n', {"plain": ("bbn", "linear"), "bbn": ("bbn", "linear")}),
        # each genotype its own: a BBN genotype keeps its trial's μ (the preset's cosine)
        ("own", "", {"plain": ("plain", None), "bbn": ("bbn", "cosine")}),
    ],
)
def test_every_genotype_of_a_study_trains_under_the_evaluate_network(network, table, expected):
    from hls_tune.engine.nas.genotype import Genotype, builtin_genotype
    from hls_tune.engine.settings import SearchConfig
    from hls_tune.study.config import parse_study_text
    from hls_tune.study.trial_attrs import evaluate_train_config

    text = (
        '[study]\nname = "p"\n[data]\ndataset = "digits"\n'
        f'[evaluate]\nnetwork = "{network}"\n' + table
    )
    settings = parse_study_text(text).evaluate
    config = SearchConfig(method="hls")  # the paper-reading preset: cosine μ
    plain = builtin_genotype("darts_v2")
    genotypes = {"plain": plain, "bbn": Genotype.from_dict(plain.to_dict() | BBN_GENOTYPE_HEADS)}
    for kind, genotype in genotypes.items():
        train = evaluate_train_config(config, genotype, settings, 0)
        want_network, want_form = expected[kind]
        assert train.network == want_network
        if want_form is not None:
            assert train.mixing.form == want_form


def test_the_default_evaluate_network_is_plain():
    from hls_tune.study.config import parse_study_text

    text = '[study]\nname = "p"\n[data]\ndataset = "digits"\n[evaluate]\n'
    assert parse_study_text(text).evaluate.network == "plain"


def test_a_trial_records_the_second_breakpoint_of_each_level_a_group_follows():
    """b2 of the levels some α group follows and whose shape reads it, under that level's
    key; never the shared level's b2 when no group follows it."""
    from hls_tune.engine.schedules import PAPER_READING, HLSSchedule, LevelSchedule
    from hls_tune.engine.settings import SearchConfig
    from hls_tune.study.trial_attrs import followed_b2_attrs

    # the preset: backbone cosine (reads b2 = 1), heads constant (read none)
    assert followed_b2_attrs(SearchConfig(method="hls", schedule=PAPER_READING)) == {
        "backbone_alpha_lr_b2": 1.0
    }
    untied = HLSSchedule(
        shared=LevelSchedule("linear", b1=0.1, b2=0.4),
        head_rebalancing=LevelSchedule("cosine", b1=0.2, b2=0.9),
    )
    assert followed_b2_attrs(SearchConfig(method="hls", schedule=untied)) == {
        "alpha_lr_b2": 0.4,
        "head_rebalancing_alpha_lr_b2": 0.9,
    }
    step = HLSSchedule(shared=LevelSchedule("step", b1=0.5))  # a step reads no b2
    assert followed_b2_attrs(SearchConfig(method="hls", schedule=step)) == {}
    assert followed_b2_attrs(SearchConfig(method="darts")) == {}  # one constant α rate
