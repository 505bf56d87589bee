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
    resolved = torch.device(device)
    if resolved.type == "cuda" and resolved.index is not None:
        count = torch.cuda.device_count()
        if resolved.index >= count:
            raise ConfigError(
                f"device is {device!r} but this machine has {count} CUDA device(s) "
                f"(cuda:0 to cuda:{count - 1}); use one of them, cuda or cpu."
            )
    return resolved
