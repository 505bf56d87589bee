"""Every `Example:` in a docstring of the package runs and prints what it says (the docs
match the code): one test per module that has examples."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import hls_tune


def _modules_with_examples() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(hls_tune.__path__, "hls_tune."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        if doctest.DocTestFinder().find(module) and any(
            test.examples for test in doctest.DocTestFinder().find(module)
        ):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules_with_examples())
def test_the_examples_of_a_module_run_as_written(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
