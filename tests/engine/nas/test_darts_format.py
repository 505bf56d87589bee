"""hls_tune/engine/nas/darts_format.py: a DARTS genotypes.py read without running it and
written back; end to end, `hls-tune train` takes each DARTS form and `hls-tune export
--format py` writes a module plain Python imports."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from hls_tune.engine.nas.darts_format import darts_python_module, parse_darts_python
from hls_tune.engine.nas.genotype import BUILTIN_GENOTYPES, Genotype, builtin_genotype
from hls_tune.engine.train import load_genotype
from hls_tune.errors import ConfigError
from hls_tune.study.study import trial_genotype
from tests.support.genotypes import (
    DARTS_GENOTYPES_PY,
    DARTS_V1,
    DARTS_V2,
    ORIGINAL_DARTS_V2_LINE,
    PC_DARTS,
    SEARCH_LOG,
    darts_repr,
)
from tests.support.helpers import hls_tune, write_study

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
    # The module trains as it is (its own head cells: --network own), as a genotypes.py
    # with --name.
    result = hls_tune(
        "train",
        str(module_file),
        "--name",
        name,
        "--network",
        "own",
        *TRAIN_TINY,
        "--out",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr
    assert "BBN network" in result.stderr


def test_darts_python_module_parses_as_python_and_round_trips() -> None:
    genotypes = {name: builtin_genotype(name) for name in BUILTIN_GENOTYPES}
    text = darts_python_module(genotypes)
    ast.parse(text)
    lines = text.splitlines()
    assert lines[0] == "from collections import namedtuple"
    assert (
        lines[2] == 'Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")'
    )
    assert parse_darts_python(text) == genotypes


def test_darts_python_module_sanitises_names_into_identifiers() -> None:
    text = darts_python_module(
        {"trial-12 best": DARTS_V2, "3rd": DARTS_V2, "class": DARTS_V2, "Genotype": DARTS_V2}
    )
    assert list(parse_darts_python(text)) == ["trial_12_best", "_3rd", "class_", "Genotype_"]


def test_darts_python_module_rejects_names_that_collide_after_sanitising() -> None:
    with pytest.raises(
        ConfigError, match="'pc-darts' and 'pc_darts' both become the Python name 'pc_darts'"
    ):
        darts_python_module({"pc-darts": DARTS_V2, "pc_darts": DARTS_V2})


def test_parse_darts_python_reads_the_original_style_with_range_and_aliases() -> None:
    text = "\n".join(
        [
            '"""Genotypes, as the original DARTS code writes them."""',
            "from collections import namedtuple",
            "",
            "Genotype = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')",
            "PRIMITIVES = ['none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect',",
            "              'sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5']",
            ORIGINAL_DARTS_V2_LINE,
            "PC_DARTS_cifar = Genotype(",
            "    normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0),",
            "            ('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1),",
            "            ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6),",
            "    reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1),",
            "            ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3),",
            "            ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))",
            "DARTS = DARTS_V2",
        ]
    )
    parsed = parse_darts_python(text)
    assert parsed == {
        "DARTS_V2": DARTS_V2,
        "PC_DARTS_cifar": BUILTIN_GENOTYPES["pc_darts"],
        "DARTS": DARTS_V2,
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("import os", "line 1: unsupported statement 'import os'"),
        ("x = eval('1')", "line 1: unsupported statement"),
        ("__import__('os').system('true')", "unsupported statement"),
        ("def f():\n    pass", "unsupported statement 'def f():'"),
        ("G = Genotype(normal=", "DARTS genotype file: not valid Python (line 1"),
        ("G = Genotype([], [2], [], [2])", "line 1 (G): pass the Genotype fields as keywords"),
        ("G = Genotype(normal=make())", "line 1 (G) normal: only literal"),
        ("G = Genotype(normal=[], heads=[])", "unknown Genotype field 'heads'"),
        ("G = OTHER", "G = OTHER refers to no genotype defined above"),
        ("Genotype = namedtuple('G', 'a b')", "Genotype fields must be normal normal_concat"),
        ("Genotype = namedtuple('G', 5)", "Genotype fields must be normal normal_concat"),
        ("PRIMITIVES = [1, 2]", "PRIMITIVES must be a list of op names"),
        (
            "\n" + ORIGINAL_DARTS_V2_LINE.replace("'dil_conv_3x3', 2", "'dil_conv_3x3', 9"),
            "line 2 (DARTS_V2): genotype.normal[7]: input index 9 does not exist",
        ),
        (
            "NASNet = Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0)], "
            "normal_concat=[2], reduce=[('skip_connect', 0), ('skip_connect', 1)], "
            "reduce_concat=[2])",
            "(NASNet): genotype.normal[1]: unknown op 'sep_conv_7x7'",
        ),
    ],
)
def test_parse_darts_python_rejects_anything_but_genotype_assignments(
    text: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_darts_python(text)
    assert fragment in str(info.value)


def test_parse_darts_python_never_executes_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    text = f"G = Genotype(normal=open({str(marker)!r}, 'w').write('x'))"
    with pytest.raises(ConfigError):
        parse_darts_python(text)
    assert not marker.exists()
