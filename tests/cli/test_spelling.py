"""One spelling of each option across commands: `--study NAME` everywhere (the study
commands also take it positionally), `--storage` before the subcommand, `--json` for
`study list` and `study show`, help without arguments, shell completion."""

from __future__ import annotations

import json

import pytest

from tests.support.helpers import hls_tune, write_study


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> str:
    """A storage with two created (not yet run) studies."""
    base = tmp_path_factory.mktemp("spelling")
    url = f"sqlite:///{base / 'study.db'}"
    for name in ("alpha-study", "beta-study"):
        study = write_study(base / f"{name}.toml", name=name, n_trials=2)
        created = hls_tune("study", "create", str(study), "--storage", url)
        assert created.returncode == 0, created.stderr
    return url


def test_no_arguments_prints_help_and_exits_0():
    result = hls_tune()
    assert result.returncode == 0, result.stderr
    assert "Usage: hls-tune" in result.stdout and "Commands:" in result.stdout
    assert "study" in result.stdout and "worker" in result.stdout


def test_study_show_takes_the_study_as_option_or_argument(storage):
    by_option = hls_tune("study", "show", "--study", "alpha-study", "--storage", storage)
    by_argument = hls_tune("study", "show", "alpha-study", "--storage", storage)
    assert by_option.returncode == 0, by_option.stderr
    assert by_option.stdout == by_argument.stdout
    assert "study 'alpha-study': maximize val_balanced_accuracy, budget 2" in by_option.stdout


def test_two_different_studies_or_none_is_one_line_and_exit_2(storage):
    both = hls_tune("study", "show", "alpha-study", "--study", "beta-study", "--storage", storage)
    assert both.returncode == 2
    assert both.stderr.strip().splitlines() == [
        "error: give the study once: NAME 'alpha-study' and --study 'beta-study' differ."
    ]
    missing = hls_tune("study", "show", "--storage", storage)
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1 and "--study" in missing.stderr


def test_storage_before_the_subcommand(storage):
    shown = hls_tune("--storage", storage, "study", "show", "--study", "beta-study")
    assert shown.returncode == 0, shown.stderr
    assert "study 'beta-study'" in shown.stdout
    listed = hls_tune("--storage", storage, "study", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [s["study"] for s in json.loads(listed.stdout)] == ["alpha-study", "beta-study"]


def test_study_list_and_show_print_json(storage):
    listed = hls_tune("study", "list", "--storage", storage, "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [
        {"study": "alpha-study", "trials": 2, "finished": 0, "best": None},
        {"study": "beta-study", "trials": 2, "finished": 0, "best": None},
    ]
    shown = hls_tune("study", "show", "--study", "alpha-study", "--storage", storage, "--json")
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert document["study"] == "alpha-study" and document["budget"] == 2
    assert document["metric"] == "val_balanced_accuracy" and document["trials"] == {"waiting": 2}
    assert document["best"] == [] and document["ignored_foreign_trials"] == 0


def test_study_delete_takes_the_study_as_an_option(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = write_study(tmp_path / "gone.toml", name="gone")
    assert hls_tune("study", "create", str(study), "--storage", url).returncode == 0
    deleted = hls_tune("--storage", url, "study", "delete", "--study", "gone", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted study 'gone'" in deleted.stdout
    listed = hls_tune("study", "list", "--storage", url, "--json")
    assert json.loads(listed.stdout) == []


def test_bash_completion_script_and_study_names(storage):
    script = hls_tune(_HLS_TUNE_COMPLETE="bash_source")
    assert script.returncode == 0, script.stderr
    assert "_hls_tune_completion()" in script.stdout
    assert "complete -o nosort -F _hls_tune_completion hls-tune" in script.stdout
    # --study completes the names of the storage's studies, wherever --storage was given.
    for words in (
        f"hls-tune worker --storage {storage} --study al",
        f"hls-tune --storage {storage} export --study al",
        f"hls-tune study show --storage {storage} --study al",
    ):
        completed = hls_tune(
            _HLS_TUNE_COMPLETE="bash_complete",
            COMP_WORDS=words,
            COMP_CWORD=str(len(words.split()) - 1),
        )
        assert completed.returncode == 0, completed.stderr
        assert completed.stdout.splitlines() == ["plain,alpha-study"], (words, completed.stdout)
