"""hls_tune/study/report.py: `hls-tune report`'s page; and every trial's artifacts and note."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta
from optuna.trial import TrialState
from optuna_dashboard import get_note
from PIL import Image

from hls_tune import engine
from hls_tune.engine.nas.genotype import Genotype
from hls_tune.errors import NonFiniteLossError
from hls_tune.study.config import load_study_file
from hls_tune.study.objective import Objective
from hls_tune.study.report import write_report
from hls_tune.study.study import trial_genotype
from tests.support.helpers import hls_tune, write_study
from tests.support.pngs import assert_png
from tests.support.report_study import N_TRIALS, expected_artifacts, finished_study


def artifacts_by_name(
    store_dir: Path, trial: optuna.trial.FrozenTrial, storage: optuna.storages.BaseStorage
) -> dict[str, bytes]:
    metas = get_all_artifact_meta(trial, storage=storage)
    return {m.filename: (store_dir / m.artifact_id).read_bytes() for m in metas}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return finished_study(tmp_path_factory)


def test_every_finished_trial_has_its_figures_table_and_note(study):
    storage = optuna.storages.RDBStorage(study.url)
    loaded = optuna.load_study(study_name=study.name, storage=storage)
    trials = loaded.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * N_TRIALS
    for trial in trials:
        files = artifacts_by_name(study.artifacts, trial, storage)
        assert set(files) == expected_artifacts()
        for name, data in files.items():
            if name.endswith(".png"):
                assert_png(data)
            if name.endswith(".svg"):
                assert data.lstrip().startswith((b"<?xml", b"<svg"))
        rows = [json.loads(line) for line in files["genotype.jsonl"].decode().splitlines()]
        genotype = Genotype.from_dict(trial_genotype(trial))
        assert [(r["op"], r["input"]) for r in rows if r["cell"] == "normal"] == list(
            genotype.normal
        )
        assert {r["cell"] for r in rows} == {
            "normal",
            "reduce",
            "head_conventional",
            "head_rebalancing",
        }
        assert all(0.0 < r["op_weight"] <= 1.0 for r in rows)
        note = get_note(optuna.trial.Trial(loaded, trial._trial_id))
        assert f"## Trial {trial.number}: complete" in note
        assert "| `mix_form` |" in note and "test_accuracy" in note
        assert "normal " in note and genotype.normal[0][0] in note


class _AlwaysPrune(optuna.pruners.BasePruner):
    """Prunes at the first report: makes the prune path deterministic."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def _in_memory_trial(tmp_path: Path, objective: Objective, pruner=None):
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1), pruner=pruner
    )
    study.optimize(objective, n_trials=1, catch=(NonFiniteLossError,))
    trial = study.get_trials()[0]
    files = artifacts_by_name(tmp_path / "artifacts", trial, study._storage)
    return study, trial, files


def test_a_pruned_trial_gets_the_artifacts_of_the_epochs_it_ran(tmp_path):
    study_file = load_study_file(write_study(tmp_path / "s.toml", epochs=3))
    (tmp_path / "artifacts").mkdir()
    objective = Objective(
        study_file, artifact_store=FileSystemArtifactStore(str(tmp_path / "artifacts"))
    )
    study, trial, files = _in_memory_trial(tmp_path, objective, _AlwaysPrune())
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [0]
    assert set(files) == expected_artifacts()
    for name in ("alphas.png", "schedule.png", "per_class_accuracy.png", "cell_normal.png"):
        assert_png(files[name])
    note = get_note(optuna.trial.Trial(study, trial._trial_id))
    assert "## Trial 0: pruned" in note and "pruned after epoch 0" in note
    assert "| `epochs_run` | 1 |" in note


def test_a_diverged_trial_still_gets_its_figures(tmp_path, monkeypatch):
    real_run = engine.run_search

    def diverge_after_first_epoch(config, *, hooks, **kwargs):
        def then_diverge(metrics):
            hooks.on_epoch(metrics)
            raise NonFiniteLossError(metrics.epoch, 3, float("nan"))

        return real_run(config, hooks=dataclasses.replace(hooks, on_epoch=then_diverge), **kwargs)

    monkeypatch.setattr(engine, "run_search", diverge_after_first_epoch)
    study_file = load_study_file(write_study(tmp_path / "s.toml", epochs=2))
    (tmp_path / "artifacts").mkdir()
    objective = Objective(
        study_file, artifact_store=FileSystemArtifactStore(str(tmp_path / "artifacts"))
    )
    study, trial, files = _in_memory_trial(tmp_path, objective)
    assert trial.state == TrialState.FAIL
    assert set(files) == expected_artifacts()
    assert_png(files["alphas.png"])
    note = get_note(optuna.trial.Trial(study, trial._trial_id))
    assert "## Trial 0: fail" in note and "non-finite" in note


def _embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_report_command_writes_a_self_contained_page_and_its_pngs(study, tmp_path):
    out = tmp_path / "report"
    result = hls_tune(
        "report", "--study", study.name, "--storage", study.url, "--out", str(out), "--top-k", "1"
    )
    assert result.returncode == 0, result.stderr
    assert "report.html" in result.stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<img" in page and 'src="http' not in page and 'src="/' not in page
    embedded = _embedded_pngs(page)
    expected = {
        "optimization_history.png",
        "learning_curves.png",
        "param_importances.png",
        "objective_vs_mix_form.png",
        "objective_vs_alpha_lr_shape.png",
        "objective_vs_breakpoints.png",
    }
    pngs = {p.name for p in out.glob("*.png")}
    assert expected <= pngs
    best_cells = {p for p in pngs if p.startswith("trial") and "_cell_" in p}
    assert len(best_cells) == 4  # --top-k 1: the best trial's four cells
    assert len(embedded) == len(pngs)
    for data in embedded:
        assert_png(data)
    for name in pngs:
        with Image.open(out / name) as image:
            image.verify()
    assert f"{N_TRIALS} complete" in page and "Top 1 trials" in page


def test_report_of_a_study_with_fewer_than_two_complete_trials(tmp_path):
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"mix_form": "cosine", "alpha_lr_b1": 0.3})
    study.optimize(
        lambda t: (
            t.suggest_float("alpha_lr_b1", 0, 1)
            + 0 * len(t.suggest_categorical("mix_form", ["cosine", "linear"]))
        ),
        n_trials=1,
    )
    pruned = study.ask()
    pruned.report(0.1, 0)
    study.tell(pruned, state=TrialState.PRUNED)
    page = write_report(study, tmp_path / "r").read_text(encoding="utf-8")
    assert "1 complete" in page and "1 pruned" in page
    for data in _embedded_pngs(page):
        assert_png(data)
    assert len(_embedded_pngs(page)) == 6  # no genotype, so no cell diagrams
