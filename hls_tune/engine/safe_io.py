"""Writing files without following planted links: unique temporaries, then an atomic rename.

Every file hls-tune writes goes through `atomic_write`: the content is written to a new
temporary file made by `tempfile.mkstemp` in the destination folder (a unique name opened
with O_CREAT|O_EXCL, so a symlink planted at a predictable name is never followed), then
renamed over the final name. A symlink already at the final name is refused unless the
caller passes ``force`` (``--force``); even then the link itself is replaced, never the file
it points at.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from hls_tune.errors import ConfigError, HlsTuneError


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[bytes]], object], *, force: bool = False
) -> Path:
    """Writes ``path`` atomically through ``write(binary_file)``.

    Raises:
        HlsTuneError: ``path`` is a symlink (and not ``force``) or cannot be written.
    """
    path = Path(path)
    if path.is_symlink() and not force:
        raise HlsTuneError(
            f"refusing to write {path}: it is a symbolic link (to {os.readlink(path)}); "
            "remove it or pass --force to replace the link."
        )
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise HlsTuneError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with _ignore_missing():
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str, *, force: bool = False) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` atomically; see `atomic_write`."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data), force=force)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _ignore_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, value: object, traceback: object) -> bool:
        return isinstance(value, FileNotFoundError)


def check_output_dir(option: str, path: str | os.PathLike[str]) -> Path:
    """Checks, before any work and without writing, that ``path`` can become an output folder.

    ``path`` must be a writable folder, or not exist with its nearest existing ancestor a
    writable folder (it is created later, when the first file is written).

    Raises:
        ConfigError: naming ``option`` and ``path`` and what is wrong.
    """
    path = Path(path)
    probe = path
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        what = "is not a folder" if probe == path else f"is inside {probe}, which is not a folder"
        raise ConfigError(f"{option} {str(path)!r} {what}; pass a folder that can be written.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {str(path)!r}: {probe} is not writable.")
    return path


def check_output_file(option: str, path: str | os.PathLike[str]) -> Path:
    """Like `check_output_dir` for a file: its folder must be usable and it no folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a folder; pass a file name.")
    check_output_dir(option, path.parent)
    return path


def open_regular(path: str | os.PathLike[str], what: str) -> IO[bytes]:
    """Opens an existing file for reading only when it is a regular file: opened
    non-blocking (a FIFO does not hang the open), then checked with `fstat` (a FIFO, device
    or socket is refused before a byte is read).

    Raises:
        ConfigError: naming `what` and the path, when it is no regular file or unreadable.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be read: {error.strerror or error}.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"{what} {path} is not a regular file; give a file.")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")
