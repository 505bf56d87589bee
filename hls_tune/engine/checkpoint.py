"""Checkpoint files and the random state that makes a resumed run draw the same numbers.

Shared by the search, adapt and train loops; each loop owns the content of its checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hls_tune.engine.safe_io import atomic_write
from hls_tune.errors import ConfigError


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
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Loads a checkpoint with `weights_only=True` (no pickled code is ever run)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # empty, truncated or hostile files; never retried unsafely
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = "it is empty" if path.is_file() and path.stat().st_size == 0 else first
        if "weights_only" in reason or "Weights only load failed" in reason:
            reason = "it holds objects other than tensors and plain data"
        raise ConfigError(
            f"checkpoint {path} cannot be resumed ({reason or type(error).__name__}); "
            "delete it to start over."
        ) from None
