"""hls_tune/engine/data/safe_pickle.py: CIFAR pickles load, and no pickle runs code."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hls_tune.engine.data.safe_pickle import load_cifar_pickle
from hls_tune.errors import ConfigError
from tests.support.pickle_payloads import _Reduce


# Each payload, when called, creates the file it is given; its existence proves code ran.
def _payloads(marker: Path) -> dict[str, object]:
    touch = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": _Reduce(os.system, (touch,)),
        "posix.system": _Reduce(__import__("posix").system, (touch,)),
        "builtins.eval": _Reduce(builtins.eval, (code,)),
        "builtins.exec": _Reduce(builtins.exec, (code,)),
        "builtins.open": _Reduce(builtins.open, (str(marker), "w")),
        "subprocess.call": _Reduce(subprocess.call, (["touch", str(marker)],)),
        "subprocess.Popen": _Reduce(subprocess.Popen, (["touch", str(marker)],)),
        "shutil.copy": _Reduce(__import__("shutil").copy, (__file__, str(marker))),
        "builtins.__import__": _Reduce(builtins.__import__, ("os",)),
        "pathlib.Path.touch": _Reduce(Path.touch, (marker,)),
        "numpy.load": _Reduce(np.load, (str(marker),)),
    }


def _wrap(payload: object, where: str) -> object:
    """The payload placed where a CIFAR loader would meet it."""
    rows = np.zeros((1, 3072), np.uint8)
    return {
        "top": payload,
        "data": {b"data": payload, b"labels": [0]},
        "labels": {b"data": rows, b"labels": [payload]},
        "key": {payload: 1, b"data": rows, b"labels": [0]},
        "nested": {b"data": rows, b"labels": [0], b"extra": [[{"x": (payload,)}]]},
    }[where]


PAYLOAD_NAMES = list(_payloads(Path("x")))
WHERE = ["top", "data", "labels", "key", "nested"]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("payload", PAYLOAD_NAMES)
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_malicious_cifar_file_runs_nothing_and_is_a_config_error_naming_it(
    tmp_path: Path, payload: str, where: str, protocol: int
) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(_wrap(_payloads(marker)[payload], where), protocol=protocol))
    with pytest.raises(ConfigError, match=rf"data\.root: cannot read {path}.*not allowed"):
        load_cifar_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"\x80", b"\x80\x02}q\x00", b"not a pickle", b"\x80\x05\x95" + b"\xff" * 20, b"(" * 5000],
)
def test_damaged_cifar_files_are_config_errors_naming_the_file(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"data\.root: cannot read {path}"):
        load_cifar_pickle(path)


def test_object_arrays_and_arbitrary_classes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps({b"data": np.array([1, "x"], dtype=object)}))
    with pytest.raises(ConfigError, match="not allowed"):
        load_cifar_pickle(path)
    path.write_bytes(pickle.dumps({b"data": ConfigError("x")}))
    with pytest.raises(ConfigError, match="not allowed"):
        load_cifar_pickle(path)


@pytest.mark.parametrize(
    ("protocol", "numpy_module"),
    [(p, "numpy._core") for p in range(6)] + [(p, "numpy.core") for p in range(4)],
)
def test_real_layout_cifar_files_still_load(
    tmp_path: Path, protocol: int, numpy_module: str
) -> None:
    rows = (np.arange(2 * 3072) % 251).astype(np.uint8).reshape(2, 3072)
    content = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [3, 7],
        b"data": rows,
        b"filenames": [b"a.png", b"b.png"],
    }
    raw = pickle.dumps(content, protocol=protocol)
    # Files written by older numpy (the originals) name numpy.core, newer ones numpy._core
    # (protocols 0-3 name globals in newline-ended text, so the bytes can be swapped).
    raw = raw.replace(b"numpy._core", numpy_module.encode())
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw)
    loaded = load_cifar_pickle(path)
    assert loaded[b"labels"] == [3, 7]
    assert loaded[b"batch_label"] == b"training batch 1 of 5"
    np.testing.assert_array_equal(loaded[b"data"], rows)


def test_a_python2_style_file_with_byte_strings_loads(tmp_path: Path) -> None:
    # Protocol 2 as Python 2's cPickle wrote it: byte strings as SHORT_BINSTRING opcodes.
    raw = b"\x80\x02}q\x00(U\x06labelsq\x01]q\x02(K\x01K\x02eU\x04nameq\x03U\x03catq\x04u."
    path = tmp_path / "batches.meta"
    path.write_bytes(raw)
    assert load_cifar_pickle(path) == {b"labels": [1, 2], b"name": b"cat"}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.recursive(
        st.one_of(st.binary(max_size=8), st.text(max_size=8), st.integers(), st.floats()),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.binary(max_size=4), inner, max_size=3)
        ),
        max_leaves=12,
    ),
    st.integers(0, 5),
)
def test_plain_data_of_any_shape_round_trips(tmp_path: Path, value: object, protocol: int) -> None:
    path = tmp_path / "plain"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    loaded = load_cifar_pickle(path)
    assert pickle.dumps(loaded, protocol=4) == pickle.dumps(value, protocol=4)
