"""Writers never follow a symlink planted at a temporary or final name."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from hls_tune.cli._base import write_json_files
from hls_tune.engine.checkpoint import save_checkpoint
from hls_tune.engine.nas.genotype import builtin_genotype
from hls_tune.engine.safe_io import atomic_write_text
from hls_tune.engine.train import _write_json
from hls_tune.errors import HlsTuneError

WRITERS: dict[str, Callable[[Path], object]] = {
    "atomic_write_text": lambda p: atomic_write_text(p, "new\n"),
    "write_json_files": lambda p: write_json_files(p.parent, {p.name: {"a": 1}}),
    "save_checkpoint": lambda p: save_checkpoint({"x": torch.zeros(2)}, p),
    "train metrics": lambda p: _write_json(p, {"a": 1}),
    "Genotype.save": lambda p: builtin_genotype("darts_v2").save(p),
}


def _planted_names(final: Path) -> list[Path]:
    """Every temporary name a writer of `final` could predict (including past versions)."""
    return [
        final.with_name(f".{final.name}.tmp"),
        final.with_name(f".{final.name}.{os.getpid()}.tmp"),
        final.with_name(f"{final.name}.tmp"),
    ]


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_symlink_at_a_temporary_name_is_never_followed(tmp_path: Path, writer: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    final = out / "result.json"
    for name in _planted_names(final):
        name.symlink_to(victim)
    WRITERS[writer](final)
    assert victim.read_text() == "precious\n"
    assert final.is_file() and not final.is_symlink()
    assert {p.name for p in out.iterdir()} == {final.name} | {p.name for p in _planted_names(final)}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_symlink_at_the_final_name_is_refused(tmp_path: Path, writer: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    final = tmp_path / "result.json"
    final.symlink_to(victim)
    with pytest.raises(HlsTuneError, match="symbolic link"):
        WRITERS[writer](final)
    assert victim.read_text() == "precious\n" and final.is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
