"""Careless and hostile study files and names: one line, exit 2, nothing written."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hls_tune.errors import ConfigError
from hls_tune.study.config import MAX_STUDY_FILE_BYTES, MAX_TRIALS, parse_study_text
from tests.support.helpers import hls_tune, start_hls_tune, write_study

MINIMAL = """
[study]
name = {name}
[data]
dataset = "digits"
[engine]
channels = 4
layers = 3
[space]
coupling = ["mixing", "none"]
"""
BAD_CATEGORIES = {"Cc", "Cf", "Co", "Cn", "Zl", "Zp"}


def _study(name: str, extra: str = "") -> str:
    # json.dumps escapes control characters as \\uXXXX, which TOML reads back unchanged
    # (DEL too, which JSON leaves raw but TOML refuses).
    quoted = json.dumps(name, ensure_ascii=False).replace("\x7f", "\\u007f")
    return MINIMAL.format(name=quoted) + extra


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
    | st.lists(
        st.sampled_from(["a", " ", "\n", "\r", "\x00", "\x1b", "\u2028", "\u200b", "\x7f", "é"]),
        max_size=8,
    ).map("".join)
)
def test_a_study_name_is_accepted_only_if_it_prints_as_one_clean_line(name: str) -> None:
    clean = (
        bool(name.strip())
        and len(name) <= 512
        and not any(unicodedata.category(c) in BAD_CATEGORIES for c in name)
    )
    try:
        parsed = parse_study_text(_study(name))
    except ConfigError as error:
        assert not clean, error
        assert "\n" not in str(error) and "study.name" in str(error)
    else:
        assert clean and parsed.study.name == name


def test_a_name_over_the_storage_limit_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"study\.name must be at most 512"):
        parse_study_text(_study("x" * 513))


@pytest.mark.parametrize(
    ("extra_key", "value", "key"),
    [
        (f"[data]\n{k}", v, k)
        for k in ("imbalance_ratio",)
        for v in ("inf", "-inf", "nan")
    ]
    + [(f"[engine]\n{k}", v, k) for k in ("alpha_lr", "weight_lr", "grad_clip", "momentum",
                                           "weight_decay") for v in ("inf", "nan")]
    + [("[engine]\nlayers", v, "layers") for v in ("1", "2", "0", "1000")]
    + [("[engine]\nchannels", v, "channels") for v in ("4000000", "200000", "0")],
)  # fmt: skip
def test_values_the_engine_cannot_run_are_refused(extra_key: str, value: str, key: str) -> None:
    section, name = extra_key.split("\n")
    text = _study("t").replace(f"{section}\n", f"{section}\n{name} = {value}\n", 1)
    text = text.replace("layers = 3\n", "") if name == "layers" else text
    text = text.replace("channels = 4\n", "") if name == "channels" else text
    with pytest.raises(ConfigError, match=rf"{key}.*{value.lstrip('-')}"):
        parse_study_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "[data]\ndataset = 'digits'\n",
        "[study]\n",
        "[study]\nn_trials = 2\n",
        _study("t").replace("[study]\nname", "[study]\nn_trials = 10_000_000\nname"),
        "a = " + "[" * 100_000,
        "a = " + "{b = " * 100_000,
        _study("t") + "#" + "x" * MAX_STUDY_FILE_BYTES,
    ],
    ids=["empty", "blank", "no-study", "no-name", "no-name-2", "huge-n-trials", "deep-array",
         "deep-table", "huge-file"],
)  # fmt: skip
def test_bad_study_files_are_refused_by_create_with_nothing_written(
    tmp_path: Path, text: str
) -> None:
    with pytest.raises(ConfigError):
        parse_study_text(text)
    study = tmp_path / "bad.toml"
    study.write_text(text, encoding="utf-8")
    db = tmp_path / "s.db"
    result = hls_tune("study", "create", str(study), "--storage", f"sqlite:///{db}")
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not db.exists()


@pytest.mark.parametrize("name", ["a\nb", "a\rb", "tab\there", "esc\x1b[2J", "x" * 600, " "])
def test_cli_refuses_a_bad_name_before_writing(tmp_path: Path, name: str) -> None:
    study = write_study(tmp_path / "a.toml")
    db = tmp_path / "s.db"
    result = hls_tune("study", "create", str(study), "--storage", f"sqlite:///{db}", "--name", name)
    assert result.returncode == 2 and "--name" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not db.exists()


def _count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
            return con.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_an_interrupted_create_is_completed_by_create_and_removable_by_delete(
    tmp_path: Path,
) -> None:
    study = write_study(tmp_path / "a.toml", n_trials=MAX_TRIALS)
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    creating = start_hls_tune("study", "create", str(study), "--storage", url)
    deadline = time.monotonic() + 300
    while _count(db, "SELECT COUNT(*) FROM trials") < 5:
        assert creating.poll() is None and time.monotonic() < deadline, creating.stdout.read()
        time.sleep(0.05)
    creating.send_signal(signal.SIGKILL)
    creating.wait()
    assert 0 < _count(db, "SELECT COUNT(*) FROM trials") < MAX_TRIALS
    listed = hls_tune("study", "show", "tiny", "--storage", url)
    assert listed.returncode == 0, listed.stderr
    deleted = hls_tune("study", "delete", "tiny", "--storage", url, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert _count(db, "SELECT COUNT(*) FROM studies") == 0
