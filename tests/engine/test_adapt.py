"""hls_tune/engine/adapt.py: adapt_head (SPEC §5), the α phase that lets the target choose
the architecture, and every adapt_mode."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hls_tune import engine
from hls_tune.engine import adapt
from hls_tune.engine.datasets import prepare_data
from hls_tune.engine.epochs import RunHooks
from hls_tune.engine.settings import ADAPT_MODES, SearchConfig
from hls_tune.engine.source import source_supernet
from tests.support.adapt_study import ADAPT, ADAPT_STUDY, DATA
from tests.support.helpers import hls_tune


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sources")


def _alphas(metrics) -> torch.Tensor:
    return torch.cat([torch.tensor(v).flatten() for _, v in sorted(metrics["alphas"].items())])


@pytest.mark.parametrize("mode", ADAPT_MODES)
def test_every_adapt_mode_runs_and_reports_each_adaptation_epoch(mode, target, cache):
    config = SearchConfig(**ADAPT, adapt_mode=mode)
    seen, steps = [], []
    result = engine.run_search(
        config,
        data=target,
        source_cache=cache,
        hooks=RunHooks(
            on_epoch=lambda m: seen.append(m) or True,
            on_step=lambda epoch, step, total, images: steps.append((epoch, step, total)),
        ),
    )
    assert len(seen) == config.total_epochs == (1 if mode == "none" else 3)
    # the progress display hears every step of every adaptation epoch through run_search
    assert {epoch for epoch, _, _ in steps} == set(range(config.total_epochs))
    assert all(1 <= step <= total for _, step, total in steps)
    assert result.history == tuple(seen) and result.genotype == seen[-1].genotype
    assert 0.0 <= result.val_balanced_accuracy <= 1.0 and result.test_accuracy is not None
    assert result.source["epochs"] == 1
    if mode == "none":  # the source supernet as is
        assert result.genotype.to_dict() == result.source["genotype"]


def test_the_alpha_phase_lets_the_target_choose_the_architecture(target, cache):
    config = SearchConfig(**ADAPT)
    result = engine.run_search(config, data=target, source_cache=cache)
    head_done, last = result.history[0].to_dict(), result.history[-1].to_dict()
    # α is the source's after the weight phase and moves during the α phase.
    assert result.history[0].alpha_lrs == {"backbone_normal": 0.0, "backbone_reduce": 0.0}
    assert not torch.allclose(_alphas(head_done), _alphas(last))
    # Without the α phase the genotype is the source's; another target moves α elsewhere.
    frozen = engine.run_search(
        dataclasses.replace(config, adapt_alpha_epochs=0), data=target, source_cache=cache
    )
    assert frozen.genotype.to_dict() == frozen.source["genotype"]
    other = dataclasses.replace(DATA, imbalance_ratio=2.0)
    shifted = engine.run_search(
        dataclasses.replace(config, data=other), data=prepare_data(other), source_cache=cache
    )
    assert not torch.allclose(_alphas(last), _alphas(shifted.history[-1].to_dict()))
    assert result.genotype != frozen.genotype or shifted.genotype != result.genotype


def test_a_finetuned_or_head_adaptation_freezes_what_it_must(target, cache):
    config = SearchConfig(**ADAPT, adapt_mode="head_reweight")
    source = source_supernet(config, target, cache_dir=cache, device=torch.device("cpu"))
    run = adapt._Adaptation(config, source, target, torch.device("cpu"), RunHooks())
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    run.train_epoch(0)  # the head phase: only the head moves (BN statistics too stay)
    after = {k: v.clone() for k, v in run.model.state_dict().items()}
    head = {"classifier.weight", "classifier.bias"}
    assert {k for k in before if not torch.equal(before[k], after[k])} == head
    run.train_epoch(1)  # the α phase: only α moves
    moved = {k for k, v in run.model.state_dict().items() if not torch.equal(after[k], v)}
    assert moved and all(k.startswith("alphas.") for k in moved), moved
    tuned = adapt._Adaptation(
        dataclasses.replace(config, adapt_mode="finetune"),
        source,
        target,
        torch.device("cpu"),
        RunHooks(),
    )
    before = {k: v.clone() for k, v in tuned.model.state_dict().items()}
    tuned.train_epoch(0)
    moved = {k for k, v in tuned.model.state_dict().items() if not torch.equal(before[k], v)}
    assert not any(k.startswith("alphas.") for k in moved) and len(moved) > 10


def test_adapt_head_resumes_across_the_phase_boundary_exactly(target, cache, tmp_path):
    config = SearchConfig(**ADAPT)
    whole = engine.run_search(config, data=target, source_cache=cache)
    checkpoint = tmp_path / "a.pt"
    first = engine.run_search(
        config,
        data=target,
        source_cache=cache,
        checkpoint=checkpoint,
        hooks=RunHooks(on_epoch=lambda m: False),
    )
    assert first.stopped_early and len(first.history) == 1
    resumed = engine.run_search(config, data=target, source_cache=cache, checkpoint=checkpoint)
    assert resumed.resumed_from_epoch == 1 and not resumed.source["built"]
    assert [m.val_accuracy for m in resumed.history] == [m.val_accuracy for m in whole.history]
    assert resumed.genotype == whole.genotype and resumed.test_accuracy == whole.test_accuracy


@pytest.mark.parametrize(
    "line", ['adapt_mode = "head"', "adapt_alpha_epochs = -1", 'adapt_mode = ["none", "full"]']
)
def test_a_bad_adapt_setting_is_one_line_and_exit_2(tmp_path, line):
    text = ADAPT_STUDY.replace("adapt_mode = {ADAPT_MODES}", "")
    if line.startswith("adapt_mode = ["):
        text = text.replace("[space]\n", f"[space]\n{line}\n")
    elif line.startswith("adapt_alpha_epochs"):
        text = text.replace("adapt_alpha_epochs = 1", line)
    else:
        text = text.replace("[engine]\n", f"[engine]\n{line}\n")
    study_file = tmp_path / "bad.toml"
    study_file.write_text(text)
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    result = hls_tune("study", "create", str(study_file), "--storage", url)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    key = line.split(" =")[0]
    assert key in result.stderr and "must" in result.stderr, result.stderr
    assert not (tmp_path / "bad.db").exists()
