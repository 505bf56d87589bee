"""hls_tune/study/export.py: the exported DARTS genotypes.py is inert whatever the name."""

from __future__ import annotations

import ast

from hypothesis import given, settings
from hypothesis import strategies as st

from hls_tune.engine.nas.darts_format import parse_darts_python
from hls_tune.engine.nas.genotype import builtin_genotype
from hls_tune.study.export import darts_genotypes_file

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
