"""The global trial budget cannot be overshot: `study create` queues the budget as WAITING
trials and workers only claim them, with an atomic WAITING -> RUNNING change per storage."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hls_tune.study.config import load_study_file
from hls_tune.study.study import create_study, load_study, trials_done, work_left
from hls_tune.study.worker import _NothingQueued, open_worker_storage
from tests.support.helpers import REPO_ROOT, write_study

BUDGET = 12
CLAIMERS = 4


def _claim_all(url: str, name: str) -> list[list[int]]:
    """CLAIMERS threads, each with its own storage (own connections), claim trials in
    lock-step until nothing is queued; returns the trial numbers each one claimed."""
    studies = [
        optuna.load_study(study_name=name, storage=open_worker_storage(url))
        for _ in range(CLAIMERS)
    ]
    barrier = threading.Barrier(CLAIMERS)
    claimed: list[list[int]] = [[] for _ in range(CLAIMERS)]
    errors: list[BaseException] = []

    def claim(i: int) -> None:
        study = studies[i]
        try:
            while True:
                barrier.wait(timeout=60)  # all claimers ask at the same moment
                try:
                    trial = study.ask()
                except _NothingQueued:
                    barrier.abort()
                    return
                claimed[i].append(trial.number)
                study.tell(trial, 0.5)
        except threading.BrokenBarrierError:
            return
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(CLAIMERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return claimed


def _check_budget_kept(url: str, tmp_path: Path) -> None:
    study_file = load_study_file(write_study(tmp_path / "s.toml", n_trials=BUDGET))
    name, created = create_study(url, study_file)
    assert created
    claimed = _claim_all(url, name)
    numbers = [n for one in claimed for n in one]
    assert sorted(numbers) == list(range(BUDGET)), f"claimed twice or beyond the budget: {claimed}"
    final = optuna.load_study(study_name=name, storage=open_worker_storage(url))
    assert len(final.get_trials()) == BUDGET
    assert trials_done(final) == BUDGET and not work_left(final)


def test_create_queues_the_whole_budget_as_waiting_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study_file = load_study_file(write_study(tmp_path / "s.toml", n_trials=5))
    name, _ = create_study(url, study_file)
    study = optuna.load_study(study_name=name, storage=open_worker_storage(url))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.WAITING] * 5
    assert all(t.params == {} and "fixed_params" not in t.system_attrs for t in trials)
    assert trials_done(study) == 0 and work_left(study)


def test_a_worker_never_creates_a_trial_beyond_the_queue(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    name, _ = create_study(url, load_study_file(write_study(tmp_path / "s.toml", n_trials=1)))
    study = optuna.load_study(study_name=name, storage=open_worker_storage(url))
    study.tell(study.ask(), 0.1)
    with pytest.raises(_NothingQueued):
        study.ask()
    assert len(study.get_trials()) == 1


def test_concurrent_claims_on_sqlite_never_share_or_exceed_the_budget(tmp_path):
    _check_budget_kept(f"sqlite:///{tmp_path / 's.db'}", tmp_path)


def test_concurrent_claims_on_the_journal_file_never_share_or_exceed_the_budget(tmp_path):
    _check_budget_kept(f"journal:{tmp_path / 's.log'}", tmp_path)


def test_concurrent_claims_on_postgres_never_share_or_exceed_the_budget(tmp_path, postgres_url):
    _check_budget_kept(postgres_url, tmp_path)


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


STUDIES = REPO_ROOT / "studies"


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
