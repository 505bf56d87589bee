"""The checkpoint codec shared by the search, adapt and train loops.

One layout for every loop: a header (format, kind, the run's identity: fingerprint and
whatever else must match), the epoch reached, the history, the elapsed time, the random
state and the state dicts of the run's parts (modules, optimizers). Loading validates all
of it against the running loop *before* anything is applied, so a damaged, foreign or other
run's file either resumes exactly or is refused whole (`UnusableCheckpoint`), and a refused
file never leaves a half-loaded model behind. No pickled code is ever run
(``weights_only=True``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hls_tune.engine.safe_io import atomic_write, open_regular
from hls_tune.errors import ConfigError

__all__ = [
    "CheckpointFile",
    "UnusableCheckpoint",
    "check_header",
    "check_random_state",
    "load_checkpoint",
    "random_state",
    "restore_parts",
    "restore_random_state",
    "save_checkpoint",
    "set_aside",
]

Part = nn.Module | torch.optim.Optimizer


class UnusableCheckpoint(ConfigError):
    """A checkpoint that cannot be resumed: unreadable, damaged, of another format or kind,
    or written by a run with other settings."""


@dataclass(frozen=True)
class CheckpointFile:
    """Where a run checkpoints, and what it does with a file it cannot resume.

    Args:
        path: the file, written after every epoch; an existing one is resumed.
        restart_unusable: set an unusable file aside (``<name>.unusable``) and start over,
            with one notice (a study's trials: a damaged file must not burn a trial);
            False raises `UnusableCheckpoint` (a user's own ``--checkpoint``: say so).
    """

    path: Path
    restart_unusable: bool = False

    @classmethod
    def of(cls, checkpoint: str | Path | CheckpointFile | None) -> CheckpointFile | None:
        """A path (or None) as a `CheckpointFile` that raises on an unusable file."""
        if checkpoint is None or isinstance(checkpoint, CheckpointFile):
            return checkpoint
        return cls(Path(checkpoint))


def random_state(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """The entries that make a resumed run draw the same random numbers: the run's batch
    generator, torch's CPU generator and, on CUDA, the device's."""
    state = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def check_random_state(state: Any, generator: torch.Generator, path: Path) -> None:
    """Refuses a random state that `restore_random_state` could not restore (tried on
    throwaway generators, so nothing of the run changes)."""
    if not isinstance(state, Mapping) or not {"generator", "torch_rng"} <= set(state):
        raise UnusableCheckpoint(f"checkpoint {path} has no random state.")
    probes = {"generator": torch.Generator(device=generator.device), "torch_rng": torch.Generator()}
    for key, probe in probes.items():
        try:
            probe.set_state(state[key])  # a throwaway generator: nothing of the run changes
        except (RuntimeError, TypeError, ValueError):
            raise UnusableCheckpoint(f"checkpoint {path} has a damaged random state.") from None


def restore_random_state(
    state: Mapping[str, Any], generator: torch.Generator, device: torch.device
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
    """Loads a checkpoint file with ``weights_only=True`` (no pickled code is ever run).

    Raises:
        UnusableCheckpoint: not a regular file, empty, truncated, not a dict, or holding
            objects other than tensors and plain data.
    """
    try:
        with open_regular(path, "checkpoint") as handle:
            state = torch.load(handle, map_location="cpu", weights_only=True)
    except ConfigError as error:
        raise UnusableCheckpoint(str(error)) from None
    except Exception as error:  # empty, truncated or hostile files; never retried unsafely
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = "it is empty" if path.is_file() and path.stat().st_size == 0 else first
        if "weights_only" in reason or "Weights only load failed" in reason:
            reason = "it holds objects other than tensors and plain data"
        raise UnusableCheckpoint(
            f"checkpoint {path} cannot be resumed ({reason[:200] or type(error).__name__}); "
            "delete it to start over."
        ) from None
    if not isinstance(state, dict):
        raise UnusableCheckpoint(f"checkpoint {path} is not a checkpoint of this tool.")
    return state


def check_header(state: Mapping[str, Any], header: Mapping[str, Any], path: Path) -> None:
    """Refuses a checkpoint whose header (format, kind, identity) differs from `header`."""
    for key, wanted in header.items():
        if state.get(key) != wanted:
            what = "other settings" if key not in ("format", "kind") else f"another {key}"
            raise UnusableCheckpoint(
                f"checkpoint {path} was written by another run ({what}: {key} "
                f"{str(state.get(key))[:80]!r} is not {str(wanted)[:80]!r}); use another "
                "checkpoint path or delete it."
            )


def _check_module(name: str, module: nn.Module, state: Any, path: Path) -> None:
    expected = module.state_dict()
    if not isinstance(state, Mapping) or set(state) != set(expected):
        raise UnusableCheckpoint(f"checkpoint {path}: {name} holds other parameters.")
    for key, tensor in expected.items():
        loaded = state[key]
        if not isinstance(loaded, torch.Tensor) or loaded.shape != tensor.shape:
            raise UnusableCheckpoint(f"checkpoint {path}: {name}.{key} has another shape.")


def _check_optimizer(name: str, optimizer: torch.optim.Optimizer, state: Any, path: Path) -> None:
    groups = optimizer.param_groups
    saved_groups = state.get("param_groups") if isinstance(state, Mapping) else None
    saved_state = state.get("state") if isinstance(state, Mapping) else None
    if (
        not isinstance(saved_groups, list)
        or not isinstance(saved_state, Mapping)
        or len(saved_groups) != len(groups)
        or any(
            not isinstance(saved, Mapping) or len(saved.get("params", ())) != len(group["params"])
            for saved, group in zip(saved_groups, groups, strict=True)
        )
    ):
        raise UnusableCheckpoint(f"checkpoint {path}: {name} holds other parameter groups.")
    params = [p for group in groups for p in group["params"]]
    for index, entry in saved_state.items():
        if (
            not isinstance(index, int)
            or not 0 <= index < len(params)
            or not isinstance(entry, Mapping)
        ):
            raise UnusableCheckpoint(f"checkpoint {path}: {name} has a damaged state.")
        for value in entry.values():
            shape = params[index].shape
            if isinstance(value, torch.Tensor) and value.ndim and value.shape != shape:
                raise UnusableCheckpoint(f"checkpoint {path}: {name} has a state of another shape.")


def restore_parts(parts: Mapping[str, Part], state: Any, path: Path) -> None:
    """Loads each part's state dict, after checking every one of them fits (so a refused
    file changes nothing)."""
    if not isinstance(state, Mapping) or set(state) != set(parts):
        raise UnusableCheckpoint(f"checkpoint {path} holds other parts than this run's.")
    for name, part in parts.items():
        check = _check_module if isinstance(part, nn.Module) else _check_optimizer
        check(name, part, state[name], path)  # type: ignore[arg-type]
    for name, part in parts.items():
        part.load_state_dict(state[name])


def set_aside(path: Path) -> Path:
    """Renames an unusable checkpoint to ``<name>.unusable`` (replacing an older one)."""
    aside = path.with_name(f"{path.name}.unusable")
    os.replace(path, aside)
    return aside
