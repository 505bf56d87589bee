"""Per-trial artifacts, dashboard notes, the figures and `hls-tune report`."""

from __future__ import annotations

import base64
import dataclasses
import io
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
from hls_tune.engine import plots
from hls_tune.engine.nas.genotype import Genotype, builtin_genotype
from hls_tune.errors import NonFiniteLossError
from hls_tune.study.artifacts import ARTIFACTS_ENV, artifacts_dir, open_artifact_store
from hls_tune.study.config import load_study_file
from hls_tune.study.objective import Objective
from hls_tune.study.report import write_report
from hls_tune.study.study import trial_genotype
from hls_tune.study.trial_artifacts import genotype_rows
from tests.support.helpers import hls_tune, require_program, write_study
from tests.support.report_study import N_TRIALS, expected_artifacts, finished_study

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(data: bytes) -> None:
    """Nonzero, a PNG signature, and PIL reads it through without error."""
    assert len(data) > 100 and data.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        assert image.width > 50 and image.height > 50


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


def test_cell_diagrams_draw_without_graphviz(tmp_path):
    genotype = builtin_genotype("darts_v2")
    path, engine = plots.cell_diagram(
        genotype.normal, genotype.normal_concat, tmp_path / "normal.png", engine="matplotlib"
    )
    assert engine == "matplotlib"
    assert_png(path.read_bytes())
    svg, _ = plots.cell_diagram(
        genotype.reduce, genotype.reduce_concat, tmp_path / "reduce.svg", engine="matplotlib"
    )
    assert b"<svg" in svg.read_bytes()


def test_cell_diagrams_use_graphviz_where_dot_exists(tmp_path):
    require_program("dot", "Graphviz renders the cell diagrams (apt-get install graphviz)")
    genotype = builtin_genotype("pc_darts")
    path, engine = plots.cell_diagram(genotype.normal, genotype.normal_concat, tmp_path / "n.png")
    assert engine == "dot"
    assert_png(path.read_bytes())
    dot = plots.cell_dot(genotype.normal, genotype.normal_concat, "normal")
    # every kept edge and every concatenated state appears in the graph
    assert dot.count("->") == len(genotype.normal) + len(genotype.normal_concat)


def test_genotype_rows_name_each_edge_and_its_weight():
    genotype = builtin_genotype("darts_v2")
    uniform = {g: [[1 / 8] * 8 for _ in range(14)] for g in ("backbone_normal", "backbone_reduce")}
    rows = genotype_rows(genotype, uniform)
    assert len(rows) == 16
    assert rows[0] == {
        "cell": "normal",
        "node": 0,
        "input": 0,
        "input_state": "c_{k-2}",
        "op": "sep_conv_3x3",
        "in_output": True,
        "op_weight": 0.125,
    }
    assert rows[14]["input_state"] == "node 0" and rows[14]["op"] == "skip_connect"


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


def test_the_artifact_directory_comes_from_the_option_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(ARTIFACTS_ENV, raising=False)
    assert artifacts_dir() == tmp_path / "artifacts"
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path / "from-env"))
    assert artifacts_dir() == tmp_path / "from-env"
    assert artifacts_dir("given") == tmp_path / "given"
    store = open_artifact_store()
    assert (tmp_path / "from-env").is_dir() and store is not None


def test_the_schedule_figure_draws_each_groups_own_curve():
    """Per-group schedules: the preset's backbone curve decays, the heads follow μ and
    1 − μ; each line is that group's own lr_g(t), and the title names each family's shape."""
    from hls_tune.engine.settings import SearchConfig

    config = SearchConfig(method="hls", epochs=10)
    figure = plots.schedule_figure(config, points=11)
    lr_axes = next(a for a in figure.axes if a.get_ylabel() == "α learning rate")
    lines = {line.get_label(): line for line in lr_axes.get_lines() if line.get_label()[0] != "_"}
    ts = [i / 10 for i in range(11)]
    for group in ("backbone_normal", "backbone_reduce", "head_conventional", "head_rebalancing"):
        expected = [config.schedule.alpha_lrs(config.alpha_lr, t)[group] for t in ts]
        assert list(lines[group].get_ydata()) == pytest.approx(expected)
    assert lines["backbone_normal"].get_ydata()[-1] == pytest.approx(0.1 * config.alpha_lr)
    assert lines["head_rebalancing"].get_ydata()[-1] == pytest.approx(config.alpha_lr)
    assert "backbone cosine, heads constant" in lr_axes.get_title()
