"""Damaged and hostile checkpoint and genotype files: one ConfigError line, no code run."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from hls_tune.engine.checkpoint import load_checkpoint
from hls_tune.engine.nas.genotype import Genotype
from hls_tune.engine.train import load_genotype
from hls_tune.errors import ConfigError
from tests.support.helpers import hls_tune


class _Reduce:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _checkpoints(tmp_path: Path) -> dict[str, bytes]:
    good = tmp_path / "good.pt"
    torch.save({"epoch": 1, "w": torch.zeros(3)}, good)
    raw = good.read_bytes()
    hostile = tmp_path / "hostile.pt"
    torch.save({"epoch": 1, "evil": _Reduce(tmp_path / "ran")}, hostile)
    return {
        "empty": b"",
        "one byte": raw[:1],
        "truncated": raw[: len(raw) // 2],
        "garbage": b"\x00\xff" * 64,
        "plain pickle": pickle.dumps({"a": 1}),
        "hostile pickle": pickle.dumps(_Reduce(tmp_path / "ran")),
        "hostile torch": hostile.read_bytes(),
    }


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


@pytest.mark.parametrize("scale", [1.5, 3.0])  # Pillow's warning band, and past its error
def test_a_decompression_bomb_in_an_imagefolder_is_one_config_error(
    tmp_path: Path, scale: float
) -> None:
    """A small PNG whose dimensions would decode to gigabytes is refused before decoding."""
    from PIL import Image

    from hls_tune.engine.data.sources import load_source

    side = int((Image.MAX_IMAGE_PIXELS * scale) ** 0.5) + 1
    for label in ("a", "b"):
        (tmp_path / "train" / label).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "train" / label / "ok.png")
    bomb = tmp_path / "train" / "a" / "bomb.png"
    Image.new("1", (side, side)).save(bomb)  # one bit a pixel: a few hundred kilobytes
    assert bomb.stat().st_size < 2**21
    with pytest.raises(ConfigError, match="too large to decode safely") as error:
        load_source("imagefolder", str(tmp_path / "train"), image_size=4, test_per_class=1)
    assert "bomb.png" in str(error.value) and "\n" not in str(error.value)
