"""hls_tune/engine/source.py: adapt_head's balanced source, its key and its shared cache."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
import torch

from hls_tune.engine.datasets import prepare_data
from hls_tune.engine.settings import SearchConfig
from hls_tune.engine.source import balanced_source, source_key
from tests.support.adapt_study import ADAPT, ADAPT_STUDY, DATA
from tests.support.helpers import hls_tune, start_hls_tune
from tests.support.tiny_search import TINY_DATA


def test_the_balanced_source_leaves_out_the_target_validation_and_test_images(data):
    config = SearchConfig(method="adapt_head", data=TINY_DATA, device="cpu")
    source = balanced_source(config, data)
    counts = set(source.train_counts)
    assert len(counts) == 1 and counts.pop() == 60  # every class at the (capped) head count
    assert len(source.test) == len(data.test)
    held_out = {bytes(img.numpy()) for img in torch.cat([data.val.images, data.test.images])}
    for part in (source.weight, source.alpha, source.val):
        assert not any(bytes(img.numpy()) in held_out for img in part.images)


def test_the_source_key_depends_only_on_the_source_settings(target):
    config = SearchConfig(**ADAPT)
    key = source_key(config, target)
    for change in (
        dict(adapt_mode="finetune"), dict(head_epochs=3), dict(reweight="effective_number"),
        dict(adapt_alpha_epochs=0), dict(fused=True), dict(eval_batch_size=7),
    ):  # fmt: skip
        assert source_key(dataclasses.replace(config, **change), target) == key, change
    for change in (dict(epochs=2), dict(seed=1), dict(channels=6), dict(alpha_lr=0.1)):
        assert source_key(dataclasses.replace(config, **change), target) != key, change
    other_split = prepare_data(dataclasses.replace(DATA, seed=1))
    assert source_key(config, other_split) != key  # other held-out images


@pytest.mark.slow
def test_two_workers_started_together_search_the_source_once_and_share_it(tmp_path):
    study_file = tmp_path / "adapt.toml"
    study_file.write_text(ADAPT_STUDY.replace("{ADAPT_MODES}", '["head_ce", "finetune"]'))
    url = f"sqlite:///{tmp_path / 'adapt.db'}"
    assert hls_tune("study", "create", str(study_file), "--storage", url).returncode == 0
    worker = ("worker", "--study", "adapt", "--storage", url, "--no-progress")
    checkpoints = tmp_path / "ck"
    workers = [start_hls_tune(*worker, "--checkpoint-dir", str(checkpoints)) for _ in "ab"]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    study = optuna.load_study(study_name="adapt", storage=url)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(t.params["adapt_mode"] for t in trials) == ["finetune", "head_ce"]
    sources = [t.user_attrs["source_supernet"] for t in trials]
    assert len({s["key"] for s in sources}) == 1  # both trials adapted one source
    assert sorted(s["built"] for s in sources) == [False, True]  # searched exactly once
    assert [p.name for p in (checkpoints / "sources").glob("*.pt")] == [
        f"source-{sources[0]['key']}.pt"
    ]
