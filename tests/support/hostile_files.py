"""Damaged and hostile checkpoint files, and a pickle that runs a command when loaded."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch


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
