"""hls_tune/engine/epochs.py: the run contract the search, adapt and train loops share.

Every test runs all three loops, so a change to the shared epoch loop (the callback rule,
the stop poll, resume, the checkpoint header) fails once per loop, not in one of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hls_tune import engine
from hls_tune.engine.checkpoint import CheckpointFile, UnusableCheckpoint
from hls_tune.engine.datasets import prepare_data
from hls_tune.engine.epochs import RunHooks
from hls_tune.engine.nas.genotype import builtin_genotype
from hls_tune.engine.settings import DataConfig, SearchConfig, TrainConfig
from hls_tune.engine.train import CHECKPOINT_NAME, train
from hls_tune.errors import SearchInterrupted

DATA = DataConfig(
    dataset="digits", image_size=8, imbalance_ratio=10, val_fraction=0.15,
    max_per_class=30, val_per_class=5, many_above=20, few_below=8,
)  # fmt: skip
SEARCH = dict(
    data=DATA, channels=4, layers=3, epochs=3, batch_size=32, flip=False, crop_padding=1,
    device="cpu", fused=False,
)  # fmt: skip
LOOPS = ("search", "adapt", "train")


@pytest.fixture(scope="module")
def data():
    return prepare_data(DATA)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sources")


def _runner(loop: str, data: Any, sources: Path) -> Callable[..., Any]:
    """A function (hooks, checkpoint) → result running three epochs of `loop`."""
    if loop == "search":
        config = SearchConfig(method="darts", **SEARCH)
        return lambda hooks, checkpoint=None: engine.run_search(
            config, data=data, hooks=hooks, checkpoint=checkpoint
        )
    if loop == "adapt":
        # one source epoch (cached, not part of the run), then three adaptation epochs
        config = SearchConfig(
            method="adapt_head", head_epochs=1, adapt_alpha_epochs=2, **SEARCH | {"epochs": 1}
        )
        return lambda hooks, checkpoint=None: engine.run_search(
            config, data=data, hooks=hooks, checkpoint=checkpoint, source_cache=sources
        )
    config = TrainConfig(data=DATA, epochs=3, channels=4, layers=3, batch_size=32, device="cpu")

    def run_train(hooks: RunHooks, checkpoint: Path | None = None) -> Any:
        out = None if checkpoint is None else checkpoint.parent
        return train(builtin_genotype("darts_v2"), config, data=data, hooks=hooks, out=out)

    return run_train


def _checkpoint(loop: str, tmp_path: Path) -> Path:
    # train keeps its checkpoint as <out>/checkpoint.pt; the searches take a file path
    return tmp_path / (CHECKPOINT_NAME if loop == "train" else "run.pt")


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("answer", [None, False, 0, ""])
def test_a_callback_answer_that_is_not_true_stops_every_loop(loop, answer, data, sources):
    seen = []
    result = _runner(loop, data, sources)(RunHooks(on_epoch=lambda r: seen.append(r) or answer))
    assert len(seen) == 1 and len(result.history) == 1
    assert result.stopped_early


@pytest.mark.parametrize("loop", LOOPS)
def test_a_true_answer_or_no_callback_runs_every_epoch(loop, data, sources):
    run = _runner(loop, data, sources)
    seen = []
    kept_on = run(RunHooks(on_epoch=lambda r: seen.append(r) or True))
    assert len(seen) == len(kept_on.history) == 3 and not kept_on.stopped_early
    assert len(run(RunHooks()).history) == 3


@pytest.mark.parametrize("loop", LOOPS)
def test_should_stop_interrupts_before_a_step_and_the_last_checkpoint_stands(
    loop, data, sources, tmp_path
):
    run, path = _runner(loop, data, sources), _checkpoint(loop, tmp_path)
    polls = {"epochs": 0}

    def after_first_epoch(record: Any) -> bool:
        polls["epochs"] += 1
        return True

    with pytest.raises(SearchInterrupted):
        run(
            RunHooks(on_epoch=after_first_epoch, should_stop=lambda: polls["epochs"] >= 1),
            path,
        )
    assert polls["epochs"] == 1 and path.is_file()
    restored: list[Any] = []
    resumed = run(RunHooks(on_resume=restored.extend), path)
    # the interrupted run's one finished epoch is handed back, then the run goes on
    assert [r.epoch for r in restored] == [0]
    assert resumed.resumed_from_epoch == 1 and len(resumed.history) == 3


@pytest.mark.parametrize("loop", LOOPS)
def test_on_step_hears_every_step_of_every_epoch(loop, data, sources):
    steps: list[tuple[int, int, int]] = []
    _runner(loop, data, sources)(RunHooks(on_step=lambda e, s, n, images: steps.append((e, s, n))))
    assert {e for e, _, _ in steps} == {0, 1, 2}
    for epoch in range(3):
        in_epoch = [(s, n) for e, s, n in steps if e == epoch]
        total = in_epoch[0][1]
        assert [s for s, _ in in_epoch] == list(range(1, total + 1))


@pytest.mark.parametrize("loop", LOOPS)
def test_a_checkpoint_of_another_loop_is_refused_before_anything_changes(
    loop, data, sources, tmp_path
):
    other = {"search": "train", "adapt": "search", "train": "adapt"}[loop]
    path = _checkpoint(other, tmp_path)
    _runner(other, data, sources)(RunHooks(on_epoch=lambda r: False), path)
    # the other loop's file, under the name this loop reads
    target = _checkpoint(loop, tmp_path / "mine")
    target.parent.mkdir()
    target.write_bytes(path.read_bytes())
    with pytest.raises(UnusableCheckpoint, match="written by another run"):
        _runner(loop, data, sources)(RunHooks(), target)
    assert target.read_bytes() == path.read_bytes()  # refused, not overwritten


@pytest.mark.parametrize("loop", ["search", "adapt"])
def test_a_study_trial_sets_an_unusable_checkpoint_aside_and_starts_over(
    loop, data, sources, tmp_path
):
    path = tmp_path / "trial-0.pt"
    path.write_bytes(b"not a checkpoint")
    notices: list[str] = []
    result = _runner(loop, data, sources)(
        RunHooks(on_notice=notices.append), CheckpointFile(path, restart_unusable=True)
    )
    assert len(result.history) == 3 and result.resumed_from_epoch is None
    assert (tmp_path / "trial-0.pt.unusable").read_bytes() == b"not a checkpoint"
    assert len(notices) == 1 and "set aside" in notices[0]


def test_hooks_are_one_frozen_record():
    hooks = RunHooks()
    with pytest.raises(dataclasses.FrozenInstanceError):
        hooks.on_epoch = print  # type: ignore[misc]
