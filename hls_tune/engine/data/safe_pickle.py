"""A restricted unpickler for the CIFAR python archive: data, never code.

The CIFAR batches are pickles of dicts holding bytes, str, lists, ints and numpy arrays.
`pickle.load` would call whatever global a file names (`os.system`, `eval`, ...), and the
data root travels in the study file to every worker. This loader resolves only the few
globals numpy needs to rebuild a plain array and its dtype, and refuses everything else
before it is called; what it returns is checked to hold only those plain types.
"""

from __future__ import annotations

import _codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from hls_tune.errors import ConfigError

# Lets a file rebuild `bytes` pickled by Python 3 with protocol <= 2 (`_codecs.encode(str,
# "latin1")`), and nothing else of the codecs machinery.
_LATIN1 = ("latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or not isinstance(encoding, str):
        raise pickle.UnpicklingError("_codecs.encode is allowed only on str")
    if encoding.lower() not in _LATIN1:
        raise pickle.UnpicklingError(
            f"_codecs.encode is allowed only with latin1, not {encoding!r}"
        )
    return _codecs.encode(text, encoding)


def _empty_bytes(*args: Any) -> bytes:
    # Python 3 pickles b"" with protocol <= 2 as a call of `bytes()` without arguments.
    if args:
        raise pickle.UnpicklingError("bytes() is allowed only without arguments")
    return b""


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy.ndarray may be reconstructed")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("arrays of Python objects are not allowed")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(spec, str):
        raise pickle.UnpicklingError("numpy.dtype is allowed only from a type code")
    dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
    if dtype.hasobject:
        raise pickle.UnpicklingError("arrays of Python objects are not allowed")
    return dtype


_ALLOWED: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
}
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_module}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_module}.numeric", "_frombuffer")] = _frombuffer

_PLAIN = (bytes, str, int, float, bool, type(None))


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a CIFAR file"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent references are not allowed in a CIFAR file")


def _check_plain(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise pickle.UnpicklingError("nesting deeper than a CIFAR file has")
    if isinstance(value, np.ndarray):
        if type(value) is not np.ndarray or value.dtype.hasobject:
            raise pickle.UnpicklingError("only numeric numpy arrays are allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, depth + 1)
            _check_plain(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_plain(item, depth + 1)
    elif not isinstance(value, _PLAIN) or type(value) not in _PLAIN:
        raise pickle.UnpicklingError(f"a {type(value).__name__} is not allowed in a CIFAR file")


def load_cifar_pickle(path: Path) -> Any:
    """The content of one CIFAR python file, decoded without running any code from it.

    Raises:
        ConfigError: naming the file, if it cannot be read or holds anything but bytes,
            str, numbers, lists, tuples, dicts and numeric numpy arrays.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(
            f"data.root: cannot read {path} as a CIFAR pickle ({error.strerror or error})."
        ) from None
    try:
        content = _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
        _check_plain(content)
    except RecursionError:
        raise ConfigError(
            f"data.root: cannot read {path} as a CIFAR pickle (nested too deeply)."
        ) from None
    except Exception as error:  # every other failure of a hostile or damaged file
        message = " ".join(str(error).split())[:200] or type(error).__name__
        raise ConfigError(f"data.root: cannot read {path} as a CIFAR pickle ({message}).") from None
    return content
