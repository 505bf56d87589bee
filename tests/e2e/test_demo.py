"""`hls-tune demo`, the README's first command, end to end: real CLI, real worker processes."""

from __future__ import annotations

import json
import re
import shlex
from importlib import resources

import optuna
import pytest
from optuna.trial import TrialState

from hls_tune.study.study import trial_genotype
from tests.support.helpers import hls_tune

pytestmark = pytest.mark.slow


def test_the_demo_runs_its_study_and_exports_the_best_genotype(tmp_path):
    from hls_tune.engine.nas.darts_format import parse_darts_python
    from hls_tune.engine.nas.genotype import Genotype
    from hls_tune.study.storage import open_storage
    from hls_tune.study.study import stored_study_text

    # Exactly the README's command, in an empty directory (its outputs land in tmp_path).
    result = hls_tune("demo", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    # Nothing but the demo directory is written into the current directory.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hls-tune-demo"], output
    demo = tmp_path / "hls-tune-demo"

    # The study database: the packaged study file, its whole budget finished, none lost.
    url = f"sqlite:///{demo / 'demo.db'}"
    study = optuna.load_study(study_name="digits-lt-demo", storage=open_storage(url))
    packaged = resources.files("hls_tune").joinpath("studies/digits_lt_demo.toml").read_text()
    assert stored_study_text(study) == packaged
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert len(trials) == 6 and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}, states
    assert TrialState.COMPLETE in states
    best = study.best_trial
    assert f"best trial {best.number}: val_balanced_accuracy {best.value:.4f}" in result.stdout
    # Two worker processes shared the budget (their lines are prefixed with the slot).
    assert "[cpu0] worker done" in result.stdout and "[cpu1] worker done" in result.stdout

    # The exported genotypes: the files it names, holding the best trial's genotype.
    named = re.findall(r"^genotype: (.+)$", result.stdout, flags=re.MULTILINE)
    genotypes = demo / "genotypes"
    assert sorted(named) == sorted(
        str(genotypes / name)
        for name in (
            f"digits-lt-demo-trial{best.number}.json",
            "best.json",
            "digits_lt_demo_genotypes.py",
        )
    ), result.stdout
    expected = Genotype.from_dict(trial_genotype(best))
    record = json.loads((genotypes / "best.json").read_text())
    assert record["trial"] == best.number and record["value"] == best.value
    assert Genotype.from_dict(record["genotype"]) == expected
    trial_file = genotypes / f"digits-lt-demo-trial{best.number}.json"
    assert json.loads(trial_file.read_text()) == record
    module = parse_darts_python((genotypes / "digits_lt_demo_genotypes.py").read_text())
    assert len(module) == 1
    (exported,) = module.values()
    assert exported.normal == expected.normal and exported.reduce == expected.reduce

    # Checkpoints of finished trials are removed; figures went to the demo's artifacts.
    assert not list((demo / "checkpoints").rglob("*.pt"))
    assert any((demo / "artifacts").rglob("*")), "no artifact written"

    # The first printed next command works as printed, from the same directory.
    show = next(line for line in result.stdout.splitlines() if "hls-tune study show" in line)
    shown = hls_tune(*shlex.split(show)[1:], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "digits-lt-demo" in shown.stdout
    # The printed report command finds the trials' figures: it names the artifacts.
    report = next(line for line in result.stdout.splitlines() if "hls-tune report" in line)
    assert "--artifacts hls-tune-demo/artifacts" in report
