"""`hls-tune search` and `train` end to end: study-file overrides, --network, and resuming
after a real interruption (the process is killed once an epoch checkpoint exists) to the
same result as an uninterrupted run. Real processes, one torch thread, seeded runs."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.support.helpers import hls_tune, start_hls_tune, write_study

pytestmark = pytest.mark.slow  # real processes, end to end

DEADLINE_S = 300.0
EPOCHS = 4


def _load(out: Path) -> dict[str, Any]:
    return {
        name: json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
        for name in ("metrics", "genotype", "history")
        if (out / f"{name}.json").exists()
    }


def _without_timing(value: Any) -> Any:
    """The run's figures without wall times and without where it resumed."""
    skip = {"seconds", "search_seconds", "train_seconds", "resumed_from_epoch"}
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in skip}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _kill_after_first_checkpoint(args: list[str], checkpoint: Path, signum: int, cwd: Path) -> int:
    """Starts `hls-tune ARGS`, waits for its first epoch checkpoint, sends `signum`.

    Returns the epoch the checkpoint holds (the last one finished before the signal).
    """
    process = start_hls_tune(*args, cwd=cwd)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not checkpoint.exists():  # written atomically after each epoch
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no epoch checkpoint within the deadline"
            time.sleep(0.02)
        process.send_signal(signum)
        process.communicate(timeout=DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signum
    epoch = torch.load(checkpoint, weights_only=True)["epoch"]
    assert epoch < EPOCHS - 1, "the run finished before it was interrupted"
    return epoch


# --- search --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_study(tmp_path_factory.mktemp("study") / "tiny.toml", epochs=2)


def _search_args(study_file: Path, out: Path, checkpoint: Path) -> list[str]:
    # --epochs and --device override the study file's epochs = 2 and device = "cpu".
    return [
        "search",
        str(study_file),
        "--out",
        str(out),
        "--epochs",
        str(EPOCHS),
        "--device",
        "auto",
        "--checkpoint",
        str(checkpoint),
    ]


@pytest.fixture(scope="module")
def uninterrupted_search(
    study_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Any, Path]:
    work = tmp_path_factory.mktemp("search")
    result = hls_tune(
        *_search_args(study_file, work / "out", work / "search.pt"),
        cwd=work,
        timeout=DEADLINE_S,
    )
    return result, work / "out"


def test_search_runs_end_to_end_with_the_study_files_settings_overridden(
    uninterrupted_search: tuple[Any, Path],
) -> None:
    result, out = uninterrupted_search
    assert result.returncode == 0, result.stderr
    assert f"wrote {out / 'genotype.json'} and {out / 'metrics.json'}" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "genotype.json",
        "history.json",
        "metrics.json",
    ]
    files = _load(out)
    config = files["metrics"]["config"]
    assert (config["epochs"], config["device"]) == (EPOCHS, "auto")  # the flags won
    assert (config["channels"], config["data"]["image_size"]) == (4, 8)  # the file's
    assert files["metrics"]["epochs_run"] == EPOCHS
    assert files["metrics"]["resumed_from_epoch"] is None
    assert 0.0 <= files["metrics"]["test_accuracy"] <= 1.0
    assert [epoch["epoch"] for epoch in files["history"]] == list(range(EPOCHS))
    assert files["genotype"] == files["history"][-1]["genotype"]
    assert files["genotype"]["head_conventional"]  # the HLS search derives BBN head cells


def test_search_killed_after_an_epoch_resumes_to_the_uninterrupted_result(
    study_file: Path, uninterrupted_search: tuple[Any, Path], tmp_path: Path
) -> None:
    _, full_out = uninterrupted_search
    out, checkpoint = tmp_path / "out", tmp_path / "search.pt"
    args = _search_args(study_file, out, checkpoint)
    epoch = _kill_after_first_checkpoint(args, checkpoint, signal.SIGKILL, tmp_path)
    saved_history = torch.load(checkpoint, weights_only=True)["history"]
    assert not out.exists()

    resumed = hls_tune(*args, cwd=tmp_path, timeout=DEADLINE_S)
    assert resumed.returncode == 0, resumed.stderr
    files, full = _load(out), _load(full_out)
    assert files["metrics"]["resumed_from_epoch"] == epoch + 1
    # The epochs before the interruption come from the checkpoint, not a rerun.
    assert files["history"][: epoch + 1] == saved_history
    assert _without_timing(files) == _without_timing(full)


# --- train ---------------------------------------------------------------------------------


def _train_args(study_file: Path, out: Path, *extra: str) -> list[str]:
    # --study-file gives the data; --imbalance-ratio and --max-per-class override it.
    return [
        "train",
        "darts_v2",
        "--study-file",
        str(study_file),
        "--imbalance-ratio",
        "5",
        "--max-per-class",
        "20",
        "--epochs",
        str(EPOCHS),
        "--channels",
        "4",
        "--layers",
        "3",
        "--batch-size",
        "16",
        "--cutout",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]


def test_train_interrupted_after_an_epoch_resumes_to_the_uninterrupted_result(
    study_file: Path, tmp_path: Path
) -> None:
    """BBN training of a plain genotype (--bbn): its mixing, drop path and cutout draw
    random numbers, so a resume that lost any random state would diverge."""
    full = hls_tune(
        *_train_args(study_file, tmp_path / "full", "--bbn"), cwd=tmp_path, timeout=DEADLINE_S
    )
    assert full.returncode == 0, full.stderr
    expected = _load(tmp_path / "full")["metrics"]
    assert expected["network"] == "bbn" and expected["config"]["network"] == "bbn"
    data = expected["config"]["data"]
    assert (data["imbalance_ratio"], data["max_per_class"]) == (5, 20)  # the flags won
    assert (data["image_size"], data["val_fraction"]) == (8, 0.15)  # the study file's
    assert expected["resumed_from_epoch"] is None

    out = tmp_path / "resumed"
    args = _train_args(study_file, out, "--bbn")
    epoch = _kill_after_first_checkpoint(args, out / "checkpoint.pt", signal.SIGTERM, tmp_path)
    assert not (out / "metrics.json").exists()
    resumed = hls_tune(*args, cwd=tmp_path, timeout=DEADLINE_S)
    assert resumed.returncode == 0, resumed.stderr
    metrics = _load(out)["metrics"]
    assert metrics["resumed_from_epoch"] == epoch + 1
    assert [e["epoch"] for e in metrics["history"]] == list(range(EPOCHS))
    assert _without_timing(metrics) == _without_timing(expected)


def test_train_trains_plain_by_default_and_a_bbn_genotype_as_bbn_when_asked(
    study_file: Path, uninterrupted_search: tuple[Any, Path], tmp_path: Path
) -> None:
    result, searched = uninterrupted_search
    assert result.returncode == 0, result.stderr
    genotype = str(searched / "genotype.json")  # has BBN head cells
    common = ["--epochs", "1", "--channels", "4", "--layers", "3", "--batch-size", "16"]
    common += ["--study-file", str(study_file), "--device", "cpu"]
    # plain by default (the default of a study's [evaluate] network); own: its BBN heads
    for flags, network in (([], "plain"), (["--network", "own"], "bbn"), (["--bbn"], "bbn")):
        out = tmp_path / f"{network}{len(flags)}{''.join(flags)}"
        ran = hls_tune("train", genotype, *common, "--out", str(out), *flags, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
        metrics = _load(out)["metrics"]
        assert (metrics["network"], metrics["config"]["network"]) == (network, network)
        assert f"train: {'BBN' if network == 'bbn' else 'plain'} network" in ran.stderr


@pytest.mark.slow
def test_train_takes_the_data_of_an_exported_record_and_flags_override_it(tmp_path: Path):
    """A record written by `hls-tune export` holds its trial's data settings: `train` uses
    them (the first line says so), a flag overrides one of them, and no raw Python warning
    reaches the terminal."""
    import dataclasses

    from hls_tune.engine.nas.genotype import builtin_genotype
    from hls_tune.engine.settings import DataConfig

    data = DataConfig(max_per_class=60, val_per_class=7, imbalance_ratio=10)
    record = {
        "study": "s",
        "trial": 3,
        "config": {"data": dataclasses.asdict(data)},
        "genotype": builtin_genotype("darts_v2").to_dict(),
    }
    path = tmp_path / "best.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    tiny = ["--epochs", "1", "--channels", "4", "--layers", "3", "--device", "cpu"]
    ran = hls_tune("train", str(path), *tiny, "--out", str(tmp_path / "a"), cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    first = ran.stderr.splitlines()[0]
    assert first == "data: the exported record best.json (study 's', trial 3)"
    metrics = _load(tmp_path / "a")["metrics"]
    assert metrics["val_class_counts"] == [7] * 10  # the record's validation set
    assert metrics["config"]["data"]["max_per_class"] == 60
    flagged = hls_tune(
        "train", str(path), *tiny, "--imbalance-ratio", "5", "--out", str(tmp_path / "b")
    )
    assert flagged.returncode == 0, flagged.stderr
    assert flagged.stderr.splitlines()[0].endswith(", overridden by --imbalance-ratio")
    assert _load(tmp_path / "b")["metrics"]["config"]["data"]["imbalance_ratio"] == 5


@pytest.mark.slow
def test_a_python_warning_is_one_line_without_a_file_path(tmp_path: Path):
    # The default digits data: the head class keeps all its images, so its validation
    # images fall back to the long-tailed split, with a warning.
    tiny = ["--epochs", "1", "--channels", "4", "--layers", "3", "--device", "cpu"]
    ran = hls_tune("train", "darts_v2", *tiny, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.splitlines()[0] == "data: the default digits data"
    warnings = [line for line in ran.stderr.splitlines() if "val_per_class" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: data.val_per_class=50")
    assert "UserWarning" not in ran.stderr and ".py:" not in ran.stderr
