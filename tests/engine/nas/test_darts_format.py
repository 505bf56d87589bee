"""Genotypes in and out in the forms DARTS users have: the original genotypes.py, the
Genotype(...) line DARTS logs during search, DARTS' names, and `hls-tune export --format py`
as a module plain Python imports."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import optuna
import pytest

from hls_tune.engine.nas.genotype import BUILTIN_GENOTYPES, Genotype
from hls_tune.engine.train import load_genotype
from hls_tune.errors import ConfigError
from hls_tune.study.study import trial_genotype
from tests.support.helpers import hls_tune, write_study

DARTS_V1, DARTS_V2 = BUILTIN_GENOTYPES["darts_v1"], BUILTIN_GENOTYPES["darts_v2"]
PC_DARTS = BUILTIN_GENOTYPES["pc_darts"]

# The namedtuple of the original DARTS code: its repr is the line DARTS logs every epoch.
DartsGenotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")


def darts_repr(genotype: Genotype) -> str:
    """``Genotype(normal=[...], normal_concat=range(2, 6), ...)``, as DARTS prints it."""
    return repr(
        DartsGenotype(
            normal=list(genotype.normal),
            normal_concat=range(2, 6),
            reduce=list(genotype.reduce),
            reduce_concat=range(2, 6),
        )
    )


# A genotypes.py laid out like the original DARTS one: PRIMITIVES, a NASNet cell with an op
# hls-tune does not have, the two DARTS cells and the DARTS alias.
DARTS_GENOTYPES_PY = "\n".join(
    [
        "from collections import namedtuple",
        "",
        "Genotype = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')",
        "",
        "PRIMITIVES = ['none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect',",
        "              'sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5']",
        "",
        "NASNet = Genotype(",
        "  normal = [('sep_conv_5x5', 1), ('sep_conv_7x7', 0)],",
        "  normal_concat = [2],",
        "  reduce = [('skip_connect', 0), ('skip_connect', 1)],",
        "  reduce_concat = [2],",
        ")",
        f"DARTS_V1 = {darts_repr(DARTS_V1)}",
        f"DARTS_V2 = {darts_repr(DARTS_V2)}",
        "",
        "DARTS = DARTS_V2",
        "",
    ]
)

# Lines as DARTS' train_search.py logs them ('%(asctime)s %(message)s'), one per epoch.
SEARCH_LOG = "\n".join(
    [
        "06/14 10:02:11 AM args = Namespace(batch_size=64, learning_rate=0.025)",
        "06/14 10:02:15 AM epoch 0 lr 2.500000e-02",
        f"06/14 10:02:15 AM genotype = {darts_repr(PC_DARTS)}",
        "06/14 10:09:40 AM train_acc 41.300000",
        "06/14 10:09:41 AM epoch 1 lr 2.497632e-02",
        f"06/14 10:09:41 AM genotype = {darts_repr(DARTS_V1)}",
        "06/14 10:17:02 AM valid_acc 52.100000",
    ]
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("DARTS_V1", DARTS_V1),
        ("DARTS_V2", DARTS_V2),
        ("DARTS", DARTS_V2),
        ("darts", DARTS_V2),
        ("PC_DARTS", PC_DARTS),
        ("Pc_Darts", PC_DARTS),
        (f"genotype = {darts_repr(PC_DARTS)}", PC_DARTS),
        (darts_repr(DARTS_V1), DARTS_V1),
    ],
)
def test_darts_names_and_a_logged_genotype_text_load(spec: str, expected: Genotype) -> None:
    assert load_genotype(spec) == expected


def test_a_darts_search_log_loads_its_last_genotype(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text(SEARCH_LOG)
    assert load_genotype(str(log)) == DARTS_V1  # the last epoch's, not the first


def test_a_file_holding_one_logged_genotype_line_loads(tmp_path: Path) -> None:
    line = tmp_path / "genotype.txt"
    line.write_text(f"genotype = {darts_repr(PC_DARTS)}\n")
    assert load_genotype(str(line)) == PC_DARTS
    bare = tmp_path / "bare.txt"
    bare.write_text(darts_repr(DARTS_V2))
    assert load_genotype(str(bare)) == DARTS_V2


@pytest.mark.parametrize(("name", "expected"), [("DARTS_V2", DARTS_V2), ("DARTS", DARTS_V2)])
def test_a_darts_genotypes_py_loads_the_named_genotype(
    tmp_path: Path, name: str, expected: Genotype
) -> None:
    path = tmp_path / "genotypes.py"
    path.write_text(DARTS_GENOTYPES_PY)
    assert load_genotype(str(path), name=name) == expected
    assert load_genotype(str(path), name="DARTS_V1") == DARTS_V1


def test_a_genotypes_py_is_refused_without_a_name_or_with_an_unusable_one(tmp_path: Path) -> None:
    path = tmp_path / "genotypes.py"
    path.write_text(DARTS_GENOTYPES_PY)
    with pytest.raises(ConfigError) as ambiguous:
        load_genotype(str(path))
    assert "choose one with --name: NASNet, DARTS_V1, DARTS_V2, DARTS" in str(ambiguous.value)
    with pytest.raises(ConfigError, match="did you mean 'DARTS_V2'"):
        load_genotype(str(path), name="DARTS_V3")
    with pytest.raises(ConfigError, match=r"\(NASNet\): genotype.normal\[1\]: unknown op"):
        load_genotype(str(path), name="NASNet")


def test_a_genotypes_py_with_one_genotype_and_its_alias_needs_no_name(tmp_path: Path) -> None:
    path = tmp_path / "genotypes.py"
    path.write_text(f"PC_DARTS_cifar = {darts_repr(PC_DARTS)}\nPCDARTS = PC_DARTS_cifar\n")
    assert load_genotype(str(path)) == PC_DARTS


def test_a_genotypes_py_is_read_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "genotypes.py"
    path.write_text(f"import os\nos.mkdir({str(marker)!r})\nG = {darts_repr(DARTS_V2)}\n")
    with pytest.raises(ConfigError, match="line 1: unsupported statement 'import os'"):
        load_genotype(str(path), name="G")
    assert not marker.exists()


TRAIN_TINY = (
    "--epochs", "1", "--channels", "4", "--layers", "3", "--batch-size", "32",
    "--max-per-class", "30", "--val-per-class", "10", "--device", "cpu",
)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("form", ["genotypes.py --name", "search log", "logged text", "name"])
def test_hls_tune_train_trains_each_darts_form_for_one_epoch(tmp_path: Path, form: str) -> None:
    if form == "genotypes.py --name":
        (tmp_path / "genotypes.py").write_text(DARTS_GENOTYPES_PY)
        args = [str(tmp_path / "genotypes.py"), "--name", "DARTS_V2"]
    elif form == "search log":
        (tmp_path / "log.txt").write_text(SEARCH_LOG)
        args = [str(tmp_path / "log.txt")]
    elif form == "logged text":
        args = [f"genotype = {darts_repr(PC_DARTS)}"]
    else:
        args = ["PC_DARTS"]
    result = hls_tune("train", *args, *TRAIN_TINY, "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    trained = Genotype.from_dict(json.loads((tmp_path / "run" / "genotype.json").read_text()))
    assert trained == {"genotypes.py --name": DARTS_V2, "search log": DARTS_V1}.get(form, PC_DARTS)


@pytest.mark.slow
def test_hls_tune_train_refuses_a_genotypes_py_without_name_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "genotypes.py").write_text(DARTS_GENOTYPES_PY)
    result = hls_tune("train", str(tmp_path / "genotypes.py"), *TRAIN_TINY)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, lines
    assert "--name: NASNet, DARTS_V1, DARTS_V2, DARTS" in lines[0]


# --- export --format py ------------------------------------------------------------------------


def _run_study(tmp_path: Path, url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    study = write_study(tmp_path / f"{name}.toml", name=name, n_trials=1, epochs=1)
    assert hls_tune("study", "create", str(study), "--storage", url).returncode == 0
    worker = hls_tune(
        "worker", "--study", name, "--storage", url, "--no-progress", "--no-artifacts",
        "--checkpoint-dir", str(tmp_path / "ckpt"),
    )  # fmt: skip
    assert worker.returncode == 0, worker.stdout + worker.stderr
    return optuna.load_study(study_name=name, storage=url).get_trials()


IMPORT_AND_LIST = """
import json, sys
sys.path.insert(0, sys.argv[1])
import {module} as module
genotypes = {{
    name: value._asdict() for name, value in vars(module).items()
    if type(value).__name__ == "Genotype" and isinstance(value, tuple)
}}
print(json.dumps({{"genotypes": sorted(genotypes), "heads": getattr(module, "BBN_HEADS", None)}}))
"""


@pytest.mark.slow
def test_export_py_imports_in_plain_python_and_every_genotype_round_trips(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    names_by_study = {}
    for study_name, identifier in (("tiny-lt", "tiny_lt"), ("tiny.lt v2", "tiny_lt_v2")):
        trials = _run_study(tmp_path, url, study_name)
        out = tmp_path / f"out-{len(names_by_study)}"
        exported = hls_tune(
            "export", "--study", study_name, "--storage", url, "--out", str(out), "--format", "both"
        )
        assert exported.returncode == 0, exported.stderr
        [module_file] = out.glob("*.py")
        assert module_file.name == f"{identifier}_genotypes.py"
        # Plain Python (-I: no hls-tune on the path) imports it with an import statement.
        listed = subprocess.run(
            [sys.executable, "-I", "-c", IMPORT_AND_LIST.format(module=module_file.stem), str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        found = json.loads(listed.stdout)
        [trial] = trials
        stored = Genotype.from_dict(trial_genotype(trial))
        assert stored.is_bbn  # the hls method searches BBN head cells
        [name] = found["genotypes"]
        assert name == f"{identifier}_trial{trial.number}"  # study and trial in the name
        # Each genotype in the module comes back whole, head cells included.
        assert load_genotype(str(module_file), name=name) == stored
        assert set(found["heads"][name]) >= {"head_conventional", "head_rebalancing"}
        record = json.loads((out / "best.json").read_text())
        assert Genotype.from_dict(record["genotype"]) == stored  # the JSON keeps heads too
        names_by_study[study_name] = name
    assert len(set(names_by_study.values())) == 2, names_by_study
    # The module trains as it is, as a genotypes.py with --name.
    result = hls_tune(
        "train", str(module_file), "--name", name, *TRAIN_TINY, "--out", str(tmp_path / "run")
    )
    assert result.returncode == 0, result.stderr
    assert "BBN network" in result.stderr
