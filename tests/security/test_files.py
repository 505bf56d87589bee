"""Damaged and hostile checkpoint and genotype files: one ConfigError line, no code run."""

from __future__ import annotations

from pathlib import Path

import pytest

from hls_tune.engine.nas.genotype import Genotype
from hls_tune.engine.train import load_genotype
from hls_tune.errors import ConfigError
from tests.support.helpers import hls_tune
from tests.support.hostile_files import _checkpoints


@pytest.mark.parametrize("kind", ["empty", "truncated", "hostile torch"])
def test_search_with_a_bad_checkpoint_exits_2_with_one_line(tmp_path: Path, kind: str) -> None:
    from tests.support.helpers import write_study

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(_checkpoints(tmp_path)[kind])
    study = write_study(tmp_path / "a.toml", epochs=1)
    result = hls_tune(
        "search", str(study), "--out", str(tmp_path / "out"), "--checkpoint", str(path)
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: checkpoint") and "Aborted" not in result.stderr, lines
    assert "Traceback" not in result.stderr and not (tmp_path / "ran").exists()


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("opener", ["[", '{"a": '])
def test_deeply_nested_genotype_json_is_a_config_error(
    tmp_path: Path, depth: int, opener: str
) -> None:
    text = opener * depth
    with pytest.raises(ConfigError, match="not valid JSON"):
        Genotype.from_json(text)
    path = tmp_path / "g.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_genotype(str(path))
