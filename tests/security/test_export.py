"""The exported DARTS genotypes.py stays inert whatever the study name holds."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hls_tune.engine.nas.darts_format import parse_darts_python
from hls_tune.engine.nas.genotype import builtin_genotype
from hls_tune.study.export import darts_genotypes_file
from tests.support.helpers import hls_tune, write_study

_FRAGMENTS = [
    '"""',
    "'''",
    '"',
    "'",
    "\n",
    "\r",
    "\r\n",
    "\x00",
    "\x0b",
    "\x0c",
    "\x1b[31m",
    "\x85",
    "\u2028",
    "\u2029",
    "\\",
    "\\n",
    "#",
    "PWNED = 1",
    "import os",
    "__import__('os').system('true')",
    ";",
    "é",
    "𝔘",
    "\ud800",
]
NAMES = st.one_of(
    st.text(),
    st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=3), max_size=12).map("".join),
)
GENOTYPES = {"trial_0": builtin_genotype("darts_v2"), "trial_7": builtin_genotype("darts_v1")}


@settings(max_examples=300, deadline=None)
@given(NAMES)
def test_no_study_name_adds_code_to_the_generated_module(name: str) -> None:
    text = darts_genotypes_file(name, GENOTYPES)
    assert text.isascii()
    module = ast.parse(text)
    assert len(module.body) == 2 + len(GENOTYPES)
    assert [n.targets[0].id for n in module.body[1:] if isinstance(n, ast.Assign)] == [
        "Genotype",
        "trial_0",
        "trial_7",
    ]
    namespace: dict = {}
    exec(compile(text, "genotypes.py", "exec"), namespace)  # what DARTS does with the file
    assert {k for k in namespace if not k.startswith("__")} == {
        "namedtuple",
        "Genotype",
        "trial_0",
        "trial_7",
    }
    assert set(parse_darts_python(text)) == {"trial_0", "trial_7"}


def test_a_name_that_closes_the_docstring_exports_an_inert_file(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    name = f'x""";__import__("pathlib").Path({str(marker)!r}).touch();"""'
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = write_study(tmp_path / "a.toml", n_trials=1, epochs=1)
    created = hls_tune("study", "create", str(study), "--storage", url, "--name", name)
    assert created.returncode == 0, created.stderr
    ran = hls_tune(
        "worker", "--study", name, "--storage", url, "--no-progress",
        "--checkpoint-dir", str(tmp_path / "ck"),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    out = tmp_path / "out"
    result = hls_tune("export", "--study", name, "--storage", url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    (module,) = out.glob("*_genotypes.py")
    imported = subprocess.run(
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(module)!r})"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    assert not marker.exists()
    # a symlink planted at the final name is refused, and --force replaces the link itself
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    best = out / "best.json"
    best.unlink()
    best.symlink_to(victim)
    (out / ".best.json.tmp").symlink_to(victim)
    refused = hls_tune("export", "--study", name, "--storage", url, "--out", str(out))
    assert refused.returncode == 2 and "--force" in refused.stderr, refused.stderr
    forced = hls_tune("export", "--study", name, "--storage", url, "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert victim.read_text() == "precious\n" and not best.is_symlink()
