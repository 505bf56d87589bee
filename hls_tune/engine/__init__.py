"""The engine: one search, adaptation or training run; knows nothing of Optuna.

The public surface is below; `run_search` is the one place that chooses between a plain
search (`search.run`) and adapt_head (`adapt.run`). Torch loads only when a run starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hls_tune.engine.nas.genotype import Genotype
from hls_tune.engine.results import EpochMetrics, SearchResult
from hls_tune.engine.schedules import HLSSchedule, LevelSchedule, MixingRatio
from hls_tune.engine.settings import DataConfig, SearchConfig, TrainConfig

if TYPE_CHECKING:
    from hls_tune.engine.checkpoint import CheckpointFile
    from hls_tune.engine.data import LongTailData
    from hls_tune.engine.epochs import RunHooks

__all__ = [
    "DataConfig",
    "EpochMetrics",
    "Genotype",
    "HLSSchedule",
    "LevelSchedule",
    "MixingRatio",
    "SearchConfig",
    "SearchResult",
    "TrainConfig",
    "run_search",
]


def run_search(
    config: SearchConfig,
    *,
    data: LongTailData | None = None,
    hooks: RunHooks | None = None,
    checkpoint: str | Path | CheckpointFile | None = None,
    source_cache: str | Path | None = None,
) -> SearchResult:
    """Runs one search for `config.method`: adapt_head (a cached source search, then the
    adaptation to the target, SPEC §5) goes to `adapt.run`, with `source_cache` (the
    directory of shared source supernets), every other method to `search.run`.

    Args:
        config: the engine settings.
        data: prepared long-tailed data (default: built from `config.data`, cached).
        hooks: the caller's callbacks (`epochs.RunHooks`: epoch, resume, step, stop).
        checkpoint: the file written after every epoch and resumed when it exists.
        source_cache: adapt_head's directory of shared source supernets.
    """
    if config.method == "adapt_head":
        from hls_tune.engine import adapt

        return adapt.run(
            config, data=data, hooks=hooks, checkpoint=checkpoint, source_cache=source_cache
        )
    from hls_tune.engine import search as loop

    return loop.run(config, data=data, hooks=hooks, checkpoint=checkpoint)
