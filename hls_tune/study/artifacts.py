"""Where the trials' artifacts live: one directory shared by the workers and the dashboard.

`--artifacts DIR` on the command line, else `$HLS_TUNE_ARTIFACTS`, else `./artifacts`
(the demo keeps them in its own directory). On several machines it must be a shared file
system, like the checkpoint directory. Light on purpose: the dashboard imports it without
torch or matplotlib.
"""

from __future__ import annotations

import os
from pathlib import Path

from optuna.artifacts import FileSystemArtifactStore

ARTIFACTS_ENV = "HLS_TUNE_ARTIFACTS"
DEFAULT_ARTIFACTS_DIR = "artifacts"

__all__ = ["ARTIFACTS_ENV", "DEFAULT_ARTIFACTS_DIR", "artifacts_dir", "open_artifact_store"]


def artifacts_dir(value: str | os.PathLike[str] | None = None) -> Path:
    """The artifact directory as an absolute path.

    Args:
        value: an explicit directory (`--artifacts`); None or "" falls back to
            `$HLS_TUNE_ARTIFACTS`, then `./artifacts`.

    Example:
        >>> artifacts_dir("/srv/study/artifacts")
        PosixPath('/srv/study/artifacts')
    """
    chosen = value if value not in (None, "") else os.environ.get(ARTIFACTS_ENV) or None
    return Path(chosen if chosen is not None else DEFAULT_ARTIFACTS_DIR).absolute()


def open_artifact_store(directory: str | os.PathLike[str] | None = None) -> FileSystemArtifactStore:
    """Optuna's file-system artifact store on `artifacts_dir(directory)`, created if missing."""
    path = artifacts_dir(directory)
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(path)
