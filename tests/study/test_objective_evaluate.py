"""The [evaluate] stage of a trial: the derived genotype trained from scratch, as the value,
resumed after a kill -9, multi-objective studies and their Pareto export (real processes)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from optuna_dashboard import get_note

from hls_tune.study.study import trial_metrics
from tests.support.evaluate_study import EVALUATE
from tests.support.helpers import hls_tune, start_hls_tune, write_study

FAST_HEARTBEAT = ("--heartbeat-interval", "1", "--grace-period", "3")


def _write(
    tmp_path: Path, study_lines: str, *, epochs: int = 2, seeds: int = 2, n_trials: int = 1
) -> Path:
    """The tiny study with `study_lines` added to [study] and an [evaluate] table."""
    path = write_study(
        tmp_path / "study.toml",
        n_trials=n_trials,
        epochs=2,
        extra=EVALUATE.format(epochs=epochs, seeds=seeds),
    )
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("[study]\n", "[study]\n" + study_lines, 1), encoding="utf-8")
    return path


def _study(url: str, name: str = "tiny") -> optuna.Study:
    from hls_tune.study.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url))


def _worker(url: str, ckpt: Path, *args: str):
    return (
        "worker",
        "--study",
        "tiny",
        "--storage",
        url,
        "--no-progress",
        "--checkpoint-dir",
        str(ckpt),
        *args,
    )


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --- validation -------------------------------------------------------------------------


def test_study_create_rejects_a_bad_evaluate_table_with_exit_2_and_writes_nothing(tmp_path):
    path = _write(tmp_path, "")
    path.write_text(path.read_text().replace("seeds = 2", "seeds = -1"), encoding="utf-8")
    db = tmp_path / "s.db"
    result = hls_tune("study", "create", str(path), "--storage", f"sqlite:///{db}")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "evaluate.seeds must be an integer >= 1 but got -1" in lines[0]
    assert not db.exists()


# --- the two-stage trial ----------------------------------------------------------------


@pytest.mark.slow
def test_a_trial_records_both_accuracies_and_the_architecture_is_its_value(tmp_path):
    path = _write(
        tmp_path, 'objective = "architecture"\nmetric = "val_balanced_accuracy"\n', epochs=6
    )
    # A supernet that barely learns (tiny weight LR) and a trained network that does, so
    # that the two figures differ and the value shows which one it is.
    text = path.read_text().replace("weight_lr = 0.1", "weight_lr = 0.0001\nweight_lr_min = 0.0")
    text = text.replace("max_per_class = 30", "max_per_class = 100")
    text = text.replace(
        "channels = 4\nlayers = 3\nepochs = 6", "channels = 8\nlayers = 3\nepochs = 6"
    )
    path.write_text(text.replace("weight_lr = 0.05", "weight_lr = 0.1"), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert hls_tune("study", "create", str(path), "--storage", url).returncode == 0
    worker = hls_tune(*_worker(url, tmp_path / "ckpt", "--artifacts", str(tmp_path / "art")))
    assert worker.returncode == 0, worker.stderr
    study = _study(url)
    (trial,) = study.get_trials()
    attrs = trial.user_attrs
    assert trial.state == TrialState.COMPLETE
    seeds = attrs["architecture_val_balanced_accuracy_seeds"]
    assert len(seeds) == 2
    assert attrs["architecture_val_balanced_accuracy"] == pytest.approx(sum(seeds) / 2)
    assert attrs["architecture_val_balanced_accuracy"] > attrs["supernet_val_balanced_accuracy"]
    assert trial.value == attrs["architecture_val_balanced_accuracy"]
    # the search's own figure is recorded too (and is the last search epoch's)
    assert attrs["supernet_val_balanced_accuracy"] == trial_metrics(trial)["val_balanced_accuracy"]
    assert attrs["architecture_params"] > 0 and attrs["architecture_madds"] > 0
    assert attrs["architecture_shot_accuracy"]
    assert set(attrs["architecture_shot_accuracy"]) <= {"many", "medium", "few"}
    for key in ("architecture_test_accuracy", "architecture_test_balanced_accuracy"):
        assert 0.0 <= attrs[key] <= 1.0
    assert attrs["search_seconds"] > 0 and attrs["evaluate_seconds"] > 0
    # the pruner's axis: evaluation seed 0's epochs 0-5; seed 1's curve is recorded beside
    assert sorted(trial.intermediate_values) == list(range(6))
    assert trial.intermediate_values[5] == pytest.approx(seeds[0])
    curves = trial.system_attrs["hls_tune:evaluation_history"]
    assert curves["longtail-seed-1"][-1] == pytest.approx(seeds[1])
    assert not any((tmp_path / "ckpt").rglob("*.pt"))  # both stages' checkpoints are gone
    note = get_note(optuna.trial.Trial(study, trial._trial_id))
    for name in ("supernet_val_balanced_accuracy", "architecture_val_balanced_accuracy"):
        assert f"| `{name}` | {attrs[name]:.4g} |" in note
    for name in ("architecture_params", "architecture_madds"):
        assert f"| `{name}` | {attrs[name]} |" in note


@pytest.mark.slow
def test_a_worker_killed_during_the_evaluation_resumes_it_not_the_search(tmp_path):
    path = _write(tmp_path, 'objective = "architecture"\n', epochs=12, seeds=1)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert hls_tune("study", "create", str(path), "--storage", url).returncode == 0
    ckpt = tmp_path / "ckpt"
    search_ckpt = ckpt / "tiny" / "trial-0.pt"
    eval_ckpt = ckpt / "tiny" / "trial-0-evaluate" / "seed-0" / "checkpoint.pt"
    victim = start_hls_tune(*_worker(url, ckpt, *FAST_HEARTBEAT))
    try:
        _wait_for(eval_ckpt.exists, 300, "the first evaluation checkpoint")
    finally:
        victim.kill()  # SIGKILL: no handler, no cleanup
        victim.wait()
    assert [t.state for t in _study(url).get_trials()] == [TrialState.RUNNING]
    search_state = torch.load(search_ckpt, weights_only=True)
    assert search_state["epoch"] == 1  # the search had finished (epochs 0-1)
    eval_epoch = torch.load(eval_ckpt, weights_only=True)["epoch"]
    assert eval_epoch < 11, "the evaluation finished before the kill; nothing to resume"

    survivor = hls_tune(*_worker(url, ckpt, *FAST_HEARTBEAT))
    assert survivor.returncode == 0, survivor.stderr
    trials = _study(url).get_trials()
    (retried,) = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert retried.state == TrialState.COMPLETE
    # the search was reloaded, not rerun: its time is the checkpoint's, to the bit
    assert retried.user_attrs["search_seconds"] == search_state["elapsed"]
    # the evaluation went on after its last checkpointed epoch (step axis: 2 search epochs)
    assert retried.user_attrs["resumed_from_epoch"] == 2 + eval_epoch + 1
    # every evaluation epoch was reported once, the restored ones re-reported by the retry
    assert sorted(retried.intermediate_values) == list(range(12))
    curve = retried.system_attrs["hls_tune:evaluation_history"]["longtail-seed-0"]
    assert len(curve) == 12
    assert retried.value == retried.user_attrs["architecture_val_balanced_accuracy"]


@pytest.mark.slow
def test_a_multi_objective_study_exports_its_pareto_front(tmp_path):
    path = _write(
        tmp_path,
        'objective = "architecture"\ndirections = ["maximize", "minimize"]\n'
        'size_objective = "architecture_madds"\n',
        seeds=1,
        n_trials=3,
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    created = hls_tune("study", "create", str(path), "--storage", url)
    assert created.returncode == 0, created.stderr
    worker = hls_tune(*_worker(url, tmp_path / "ckpt"))
    assert worker.returncode == 0, worker.stderr
    study = _study(url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    for trial in complete:
        assert trial.values == [
            trial.user_attrs["architecture_val_balanced_accuracy"],
            trial.user_attrs["architecture_madds"],
        ]
    out = tmp_path / "front"
    exported = hls_tune(
        "export", "--study", "tiny", "--storage", url, "--pareto", "--out", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    document = json.loads((out / "pareto.json").read_text())
    front = sorted(t.number for t in study.best_trials)
    assert [entry["trial"] for entry in document["front"]] == front
    assert document["objectives"] == [
        "architecture_val_balanced_accuracy",
        "architecture_madds",
    ]
    for entry in document["front"]:
        assert (out / f"tiny-trial{entry['trial']}.json").is_file()
    shown = hls_tune("study", "show", "tiny", "--storage", url)
    assert shown.returncode == 0, shown.stderr
    assert "architecture_madds" in shown.stdout


@pytest.mark.slow
def test_pareto_export_of_a_single_objective_study_is_a_usage_error(tmp_path):
    path = write_study(tmp_path / "study.toml", n_trials=1, epochs=1)
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert hls_tune("study", "create", str(path), "--storage", url).returncode == 0
    assert hls_tune(*_worker(url, tmp_path / "ckpt")).returncode == 0
    out = tmp_path / "front"
    exported = hls_tune(
        "export", "--study", "tiny", "--storage", url, "--pareto", "--out", str(out)
    )
    assert exported.returncode == 2
    lines = exported.stderr.strip().splitlines()
    assert len(lines) == 1 and "--pareto needs a multi-objective study" in lines[0]
    assert not out.exists()
