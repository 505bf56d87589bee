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

from hls_tune.study import optuna_internals

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


def referenced_artifacts(storage: object, limit: int = 200) -> list[str]:
    """Ids of artifacts the storage's trials refer to (at most `limit`, newest studies first)."""
    from optuna.storages import BaseStorage

    assert isinstance(storage, BaseStorage)
    found: list[str] = []
    for summary in reversed(storage.get_all_studies()):
        for trial in storage.get_all_trials(optuna_internals.study_id(summary), deepcopy=False):
            found += [k.split(":", 1)[1] for k in trial.system_attrs if k.startswith("artifacts:")]
            if len(found) >= limit:
                return found[:limit]
    return found


def check_artifact_dir(directory: Path, artifact_ids: list[str]) -> str:
    """One line saying how many of the referenced artifacts `directory` holds.

    Raises:
        ConfigError: the studies refer to artifacts and `directory` holds none of them
            (a wrong or missing --artifacts), naming the directory and the fix.
    """
    from hls_tune.errors import ConfigError

    if not artifact_ids:
        state = "exists" if directory.is_dir() else "does not exist yet"
        return f"artifacts: {directory} ({state}); no trial has artifacts yet"
    present = sum((directory / a).is_file() for a in artifact_ids)
    if present == 0:
        what = "does not exist" if not directory.exists() else "holds none of them"
        raise ConfigError(
            f"--artifacts {str(directory)!r} {what} but the studies refer to "
            f"{len(artifact_ids)} artifact(s); pass the directory the workers wrote to "
            f"(--artifacts DIR or ${ARTIFACTS_ENV})."
        )
    return f"artifacts: {present} of {len(artifact_ids)} checked artifacts found in {directory}"
