"""The engine: one search, adaptation or training run; knows nothing of Optuna.

The public surface is below; `run_search` is the one place that chooses between a plain
search (`search.run`) and adapt_head (`adapt.run`). Torch loads only when a run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hls_tune.engine.nas.genotype import Genotype
from hls_tune.engine.progress import StepHook
from hls_tune.engine.results import EpochCallback, EpochMetrics, SearchResult
from hls_tune.engine.schedules import HLSSchedule
from hls_tune.engine.settings import DataConfig, SearchConfig

if TYPE_CHECKING:
    from hls_tune.engine.data import LongTailData

__all__ = [
    "DataConfig",
    "EpochCallback",
    "EpochMetrics",
    "Genotype",
    "HLSSchedule",
    "SearchConfig",
    "SearchResult",
    "run_search",
]


def run_search(
    config: SearchConfig,
    *,
    data: LongTailData | None = None,
    on_epoch: EpochCallback | None = None,
    checkpoint: str | Path | None = None,
    on_resume: Callable[[list[EpochMetrics]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    source_cache: str | Path | None = None,
    on_step: StepHook | None = None,
) -> SearchResult:
    """Runs one search for `config.method`: adapt_head (a cached source search, then the
    adaptation to the target, SPEC §5) goes to `adapt.run`, with `source_cache` (the
    directory of shared source supernets), every other method to `search.run`; the other
    arguments, `on_step` included, are both loops'."""
    if config.method == "adapt_head":
        from hls_tune.engine import adapt

        return adapt.run(
            config,
            data=data,
            on_epoch=on_epoch,
            checkpoint=checkpoint,
            on_resume=on_resume,
            should_stop=should_stop,
            source_cache=source_cache,
            on_step=on_step,
        )
    from hls_tune.engine import search as loop

    return loop.run(
        config,
        data=data,
        on_epoch=on_epoch,
        checkpoint=checkpoint,
        on_resume=on_resume,
        should_stop=should_stop,
        on_step=on_step,
    )
