"""Device resolution and mixed precision, shared by the search, adapt and train loops."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from hls_tune.engine.checks import check_choice
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


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for an `amp` setting: auto = bf16 on CUDA and off elsewhere.

    Args:
        amp: ``auto``, ``bf16`` or ``off``.
        device: the device the search runs on.
    """
    check_choice("amp", amp, ("auto", "bf16", "off"))
    if amp == "bf16" or (amp == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """`torch.autocast` on `device` with `dtype`; does nothing when `dtype` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield
