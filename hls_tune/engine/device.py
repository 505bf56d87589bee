"""Device resolution shared by the search, adapt and train loops."""

from __future__ import annotations

import torch

from hls_tune.errors import ConfigError


def resolve_device(device: str) -> torch.device:
    """`auto` → CUDA when available, else CPU; `cuda` without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device is {device!r} but no CUDA device is available; use cpu.")
    return torch.device(device)
