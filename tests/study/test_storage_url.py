"""hls_tune/study/storage_url.py: which URL is used, its description, its validation."""

from __future__ import annotations

import pytest

from hls_tune.errors import ConfigError
from hls_tune.study.redact import redact
from hls_tune.study.storage import open_storage
from hls_tune.study.storage_url import STORAGE_ENV_VARS, describe, resolve_storage_url


def test_explicit_storage_url_wins_over_both_environment_variables(monkeypatch):
    monkeypatch.setenv("HLS_TUNE_STORAGE", "sqlite:///from_hls.db")
    monkeypatch.setenv("OPTUNA_STORAGE", "sqlite:///from_optuna.db")

    assert resolve_storage_url("sqlite:///explicit.db") == "sqlite:///explicit.db"


def test_hls_tune_storage_wins_over_optuna_storage(monkeypatch):
    monkeypatch.setenv("HLS_TUNE_STORAGE", "sqlite:///from_hls.db")
    monkeypatch.setenv("OPTUNA_STORAGE", "sqlite:///from_optuna.db")

    assert resolve_storage_url(None) == "sqlite:///from_hls.db"


def test_optuna_storage_is_used_when_hls_tune_storage_is_unset_or_empty(monkeypatch):
    monkeypatch.setenv("HLS_TUNE_STORAGE", "")
    monkeypatch.setenv("OPTUNA_STORAGE", "sqlite:///from_optuna.db")

    assert resolve_storage_url(None) == "sqlite:///from_optuna.db"
    monkeypatch.delenv("HLS_TUNE_STORAGE")
    assert resolve_storage_url("") == "sqlite:///from_optuna.db"


def test_no_storage_anywhere_is_a_config_error_that_says_how_to_give_one(monkeypatch):
    for name in STORAGE_ENV_VARS:
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(ConfigError, match=r"no storage given: pass --storage URL or set HLS_TUNE"):
        resolve_storage_url(None)


def test_describe_names_the_backend_and_target_without_the_password(tmp_path):
    assert describe(f"sqlite:///{tmp_path}/study.db") == f"sqlite ({tmp_path}/study.db)"
    assert describe(f"journal:{tmp_path}/study.log") == f"journal ({tmp_path}/study.log)"
    assert describe("postgresql://tuner:s3cret@db:5432/hls") == "postgresql (tuner@db:5432/hls)"
    assert describe("grpc://proxy") == "grpc (proxy:13000)"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://tuner:s3cret@db/hls",
        "redis://:s3cret@localhost:6379",
        "study.db",
        "journal://study.log",
        "postgresql+psycopg2://tuner:s3cret@db/hls",
        "postgresql://tuner:s3cret@db",
    ],
)
def test_unsupported_storage_is_a_config_error_naming_the_option_and_redacted_value(url):
    with pytest.raises(ConfigError) as caught:
        open_storage(url, create=True)

    message = str(caught.value)
    assert "--storage" in message
    assert "s3cret" not in message
    assert redact(url) in message


def test_two_slash_sqlite_url_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"three slashes.*did you mean sqlite:///x\.db"):
        describe("sqlite://x.db")
