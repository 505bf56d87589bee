"""hls_tune/engine/safe_io.py: --force replaces a symlink at the final name, not its target."""

from __future__ import annotations

from pathlib import Path

from hls_tune.engine.safe_io import atomic_write_text


def test_force_replaces_the_link_not_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    final = tmp_path / "result.json"
    final.symlink_to(victim)
    atomic_write_text(final, "new\n", force=True)
    assert victim.read_text() == "precious\n"
    assert not final.is_symlink() and final.read_text() == "new\n"
