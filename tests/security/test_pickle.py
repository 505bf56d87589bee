"""A CIFAR root holding a malicious batch is refused by the restricted unpickler; nothing runs."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from hls_tune.engine.data import load_source
from hls_tune.errors import ConfigError
from tests.support.pickle_payloads import _Reduce


def _cifar10(folder: Path, batch: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = np.zeros((2, 3072), np.uint8)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({b"data": rows, b"labels": [0, 1]}))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    (folder / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))


def test_a_malicious_batch_in_a_whole_cifar_root_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _cifar10(tmp_path / "cifar-10-batches-py", _Reduce(os.system, (f"touch {marker}",)))
    with pytest.raises(ConfigError, match=r"data_batch_3"):
        load_source("cifar10", tmp_path)
    assert not marker.exists()
