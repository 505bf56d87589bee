"""Fixtures of the engine's tests: the tiny data sets, prepared once per test module."""

from __future__ import annotations

import pytest

from hls_tune.engine.datasets import prepare_data
from tests.support.adapt_study import DATA
from tests.support.tiny_search import TINY_DATA


@pytest.fixture(scope="module")
def data():
    return prepare_data(TINY_DATA)


@pytest.fixture(scope="module")
def target():
    return prepare_data(DATA)
