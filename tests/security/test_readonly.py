"""Listing and showing an SQLite study opens it read-only and changes nothing in the file.

Tests run as root, which ignores file permissions, so a chmod'ed file would prove nothing.
Instead: (1) the read-only storage refuses a write itself (SQLite enforces mode=ro for
root too), and (2) `study list`/`study show` leave the file byte for byte unchanged, in its
journal mode, with no -wal/-shm files, where every open used to switch it to WAL.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import optuna
import pytest

from hls_tune.study.storage import open_storage
from tests.support.helpers import hls_tune, write_study


def _created(tmp_path: Path) -> Path:
    db = tmp_path / "s.db"
    study = write_study(tmp_path / "a.toml")
    assert hls_tune("study", "create", str(study), "--storage", f"sqlite:///{db}").returncode == 0
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    return db


def test_read_only_storage_refuses_writes(tmp_path: Path) -> None:
    db = _created(tmp_path)
    storage = open_storage(f"sqlite:///{db}", read_only=True)
    assert [s.study_name for s in storage.get_all_studies()] == ["tiny"]
    with pytest.raises(Exception) as error:  # Optuna wraps the driver's error
        optuna.create_study(storage=storage, study_name="other")
    chain, seen = [], error.value
    while seen is not None:
        chain.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    assert any("readonly database" in text for text in chain), chain


@pytest.mark.parametrize("command", [("study", "list"), ("study", "show", "tiny")])
def test_listing_leaves_the_file_untouched(tmp_path: Path, command: tuple[str, ...]) -> None:
    db = _created(tmp_path)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    result = hls_tune(*command, "--storage", f"sqlite:///{db}")
    assert result.returncode == 0 and "tiny" in result.stdout, result.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.glob("s.db*")) == ["s.db"]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def _with_a_complete_trial(tmp_path: Path) -> Path:
    """The created study plus one complete trial as the objective records it."""
    from hls_tune.engine.nas.genotype import builtin_genotype
    from hls_tune.study.study import CONFIG_ATTR, GENOTYPE_ATTR, METRICS_ATTR, OWN_TRIAL_ATTR

    db = _created(tmp_path)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    metrics = {"val_balanced_accuracy": 0.5, "test_balanced_accuracy": 0.4}
    config = {"method": "hls", "seed": 0, "data": {"imbalance_ratio": 10}}
    study.add_trial(
        optuna.trial.create_trial(
            value=0.5,
            user_attrs={"supernet_val_balanced_accuracy": 0.5, "search_seconds": 1.0},
            system_attrs={
                OWN_TRIAL_ATTR: True,
                GENOTYPE_ATTR: builtin_genotype("darts_v2").to_dict(),
                CONFIG_ATTR: config,
                METRICS_ATTR: metrics,
            },
        )
    )
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    return db


@pytest.mark.parametrize(
    "command",
    [("export", "--out", "{out}"), ("compare",), ("compare", "--out", "{out}/table.md")],
)
def test_export_and_compare_leave_the_file_untouched(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    db = _with_a_complete_trial(tmp_path)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    out = tmp_path / "out"
    args = [part.format(out=out) for part in command]
    result = hls_tune(*args, "--study", "tiny", "--storage", f"sqlite:///{db}")
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.glob("s.db*")) == ["s.db"]
