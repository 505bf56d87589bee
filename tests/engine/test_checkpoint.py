"""hls_tune/engine/checkpoint.py: a damaged or hostile checkpoint is one ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from hls_tune.engine.checkpoint import load_checkpoint
from hls_tune.errors import ConfigError
from tests.support.hostile_files import _checkpoints


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "one byte",
        "truncated",
        "garbage",
        "plain pickle",
        "hostile pickle",
        "hostile torch",
    ],
)
def test_a_bad_checkpoint_is_one_config_error_without_unsafe_advice(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(_checkpoints(tmp_path)[kind])
    with pytest.raises(ConfigError, match=rf"checkpoint {path} cannot be resumed") as error:
        load_checkpoint(path)
    assert "weights_only=False" not in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "ran").exists()
