"""The study tool end to end: real `hls-tune` processes on SQLite, PostgreSQL and journal."""

from __future__ import annotations

import ast
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from hls_tune.engine.nas.darts_format import parse_darts_python
from hls_tune.engine.nas.genotype import Genotype
from hls_tune.study.study import trial_genotype, trial_history, trial_metrics
from tests.support.helpers import REPO_ROOT, hls_tune, start_hls_tune, write_study

pytestmark = pytest.mark.slow


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials()


def _table_rows(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from studies").fetchone()[0]


def test_study_create_rejects_bad_files_with_exit_2_and_touches_no_storage(tmp_path):
    bad = write_study(tmp_path / "bad.toml", extra="\n[oops]\n")
    db = tmp_path / "s.db"
    result = hls_tune("study", "create", str(bad), "--storage", f"sqlite:///{db}")
    assert result.returncode == 2
    assert "unknown key oops" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not db.exists()


def test_study_create_is_idempotent_and_refuses_a_different_file(tmp_path):
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    first = write_study(tmp_path / "a.toml")
    assert hls_tune("study", "create", str(first), "--storage", url).returncode == 0
    again = hls_tune("study", "create", str(first), "--storage", url)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    changed = write_study(tmp_path / "b.toml", epochs=3)
    refused = hls_tune("study", "create", str(changed), "--storage", url)
    assert refused.returncode == 2
    assert "different study file" in refused.stderr and "--name tiny-2" in refused.stderr
    assert "-epochs = 2" in refused.stderr and "+epochs = 3" in refused.stderr
    assert _table_rows(db) == 1
    with_name = hls_tune("study", "create", str(changed), "--storage", url, "--name", "tiny-2")
    assert with_name.returncode == 0 and _table_rows(db) == 2


def test_storage_comes_from_the_environment_and_a_missing_one_is_a_usage_error(tmp_path):
    study = write_study(tmp_path / "a.toml")
    missing = hls_tune("study", "list")
    assert missing.returncode == 2 and "HLS_TUNE_STORAGE" in missing.stderr
    url = f"sqlite:///{tmp_path / 'env.db'}"
    assert hls_tune("study", "create", str(study), OPTUNA_STORAGE=url).returncode == 0
    listed = hls_tune("study", "list", HLS_TUNE_STORAGE=url)
    assert listed.returncode == 0 and "tiny" in listed.stdout


def test_unknown_study_name_is_a_usage_error_with_a_suggestion(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    hls_tune("study", "create", str(write_study(tmp_path / "a.toml")), "--storage", url)
    result = hls_tune("worker", "--study", "tinny", "--storage", url)
    assert result.returncode == 2
    assert "'tinny' does not exist" in result.stderr and "did you mean 'tiny'" in result.stderr


def test_two_sqlite_workers_share_the_budget_and_export_round_trips(tmp_path):
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    study = write_study(tmp_path / "a.toml", n_trials=4)
    assert hls_tune("study", "create", str(study), "--storage", url).returncode == 0
    workers = [
        start_hls_tune(
            "worker",
            "--study",
            "tiny",
            "--storage",
            url,
            "--no-progress",
            "--checkpoint-dir",
            str(tmp_path / "ckpt"),
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    assert not any("database is locked" in out for out in outputs), outputs
    trials = _trials(url, "tiny")
    assert len(trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sum(out.count("complete: value") for out in outputs) == 4
    attrs = trials[0].user_attrs
    for key in ("shot_accuracy", "search_seconds", "test_balanced_accuracy"):
        assert key in attrs, key
    assert trial_genotype(trials[0]) is not None and trial_metrics(trials[0])
    curves = trial_history(trials[0])
    assert "alpha_lr_head_conventional_per_epoch" in curves
    assert len(curves["mixing_ratio_per_epoch"]) == 2

    out = tmp_path / "genotypes"
    exported = hls_tune(
        "export", "--study", "tiny", "--storage", url, "--top-k", "2", "--out", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    best = max(trials, key=lambda t: (t.value, -t.number))
    record = json.loads((out / "best.json").read_text())
    assert record["trial"] == best.number and record["value"] == best.value
    assert Genotype.from_dict(record["genotype"]) == Genotype.from_dict(trial_genotype(best))
    py_text = (out / "tiny_genotypes.py").read_text()
    ast.parse(py_text)
    parsed = parse_darts_python(py_text)
    backbone = Genotype.from_dict(record["genotype"])
    assert parsed[f"tiny_trial{best.number}"].normal == backbone.normal
    assert parsed[f"tiny_trial{best.number}"].reduce == backbone.reduce
    # idempotent: a second export writes nothing; a different file is refused without --force
    again = hls_tune(
        "export", "--study", "tiny", "--storage", url, "--top-k", "2", "--out", str(out)
    )
    assert again.returncode == 0 and "wrote" not in again.stdout
    (out / "best.json").write_text("{}")
    refused = hls_tune("export", "--study", "tiny", "--storage", url, "--out", str(out))
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert (out / "best.json").read_text() == "{}"

    # Optuna's own CLI reads the study.
    optuna_exe = str(Path(sys.executable).with_name("optuna"))
    optuna_cli = subprocess.run(
        [optuna_exe, "trials", "--study-name", "tiny", "--storage", url, "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert optuna_cli.returncode == 0, optuna_cli.stderr
    assert len(json.loads(optuna_cli.stdout)) == 4
    best_cli = subprocess.run(
        [optuna_exe, "best-trial", "--study-name", "tiny", "--storage", url, "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert best_cli.returncode == 0 and json.loads(best_cli.stdout)["number"] == best.number


def test_study_show_and_delete(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    hls_tune("study", "create", str(write_study(tmp_path / "a.toml", n_trials=1)), "--storage", url)
    ckpt = str(tmp_path / "ckpt")
    worker = ("worker", "--study", "tiny", "--storage", url, "--no-progress")
    assert hls_tune(*worker, "--checkpoint-dir", ckpt).returncode == 0
    shown = hls_tune("study", "show", "tiny", "--storage", url)
    assert shown.returncode == 0
    assert "1 complete" in shown.stdout and "best: trial 0" in shown.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "hls_tune", "study", "delete", "tiny", "--storage", url],
        input="n\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 1 and _trials(url, "tiny")
    deleted = hls_tune("study", "delete", "tiny", "--storage", url, "--yes")
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert "no studies" in hls_tune("study", "list", "--storage", url).stdout


def test_a_study_name_cannot_escape_the_export_directory(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    name = "../../escape/ stüdy"
    study = write_study(tmp_path / "a.toml", n_trials=1)
    assert hls_tune("study", "create", str(study), "--storage", url, "--name", name).returncode == 0
    assert (
        hls_tune(
            "worker",
            "--study",
            name,
            "--storage",
            url,
            "--no-progress",
            "--checkpoint-dir",
            str(tmp_path / "ck"),
        ).returncode
        == 0
    )
    out = tmp_path / "deep" / "out"
    result = hls_tune("export", "--study", name, "--storage", url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*.json")}
    assert written and all(p.parts[:2] == ("deep", "out") for p in written), written
    assert not (tmp_path / "escape").exists()


@pytest.mark.postgres
def test_two_postgres_workers_finish_a_study_against_a_real_server(tmp_path, postgres_url):
    study = write_study(tmp_path / "a.toml", n_trials=3)
    assert hls_tune("study", "create", str(study), "--storage", postgres_url).returncode == 0
    workers = [
        start_hls_tune(
            "worker",
            "--study",
            "tiny",
            "--no-progress",
            "--checkpoint-dir",
            str(tmp_path / "ck"),
            HLS_TUNE_STORAGE=postgres_url,
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    trials = _trials(postgres_url, "tiny")
    assert len(trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)


def test_journal_storage_runs_a_study(tmp_path):
    url = f"journal:{tmp_path / 'study.log'}"
    assert (
        hls_tune(
            "study", "create", str(write_study(tmp_path / "a.toml", n_trials=1)), "--storage", url
        ).returncode
        == 0
    )
    ckpt = str(tmp_path / "ckpt")
    worker = ("worker", "--study", "tiny", "--storage", url, "--no-progress")
    assert hls_tune(*worker, "--checkpoint-dir", ckpt).returncode == 0
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log"))
    )
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE]


def test_study_create_says_whether_the_paper_reading_trial_is_queued_first(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    demo = REPO_ROOT / "studies" / "digits_lt_demo.toml"
    created = hls_tune("study", "create", str(demo), "--storage", url)
    assert created.returncode == 0, created.stderr
    assert "first trial: the paper-reading preset (enqueued)" in created.stdout
    assert "budget 6 trials" in created.stdout
    tied = hls_tune("study", "create", str(write_study(tmp_path / "t.toml")), "--storage", url)
    assert tied.returncode == 0, tied.stderr
    assert "no paper-reading trial enqueued" in tied.stdout
    first = _trials(url, "digits-lt-demo")[0]
    assert first.system_attrs["fixed_params"]["head_alpha_lr_shape"] == "constant"
