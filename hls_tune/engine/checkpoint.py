"""Checkpoint files and the random state that makes a resumed run draw the same numbers.

Shared by the search, adapt and train loops; each loop owns the content of its checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def random_state(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """The checkpoint entries that make a resumed run draw the same random numbers: the
    run's batch generator, torch's CPU generator and, on CUDA, the device's."""
    state = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def restore_random_state(
    state: dict[str, Any], generator: torch.Generator, device: torch.device
) -> None:
    """Restores what `random_state` saved (a CUDA state only on a CUDA device)."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Writes a checkpoint atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Loads a checkpoint with `weights_only=True` (no pickled code is ever run)."""
    return torch.load(path, map_location="cpu", weights_only=True)
