"""hls-tune: Optuna studies for BBN-DARTS with heterogeneous learning-rate scheduling.

The engine is usable without Optuna::

    from hls_tune import SearchConfig, DataConfig, run_search
    result = run_search(SearchConfig(method="hls", data=DataConfig(image_size=8),
                                     channels=4, layers=3, epochs=2, flip=False))
    print(result.genotype.to_json())
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from hls_tune.errors import ConfigError, HlsTuneError, NonFiniteLossError
from hls_tune.nas.genotype import Genotype
from hls_tune.schedules import HLSSchedule
from hls_tune.settings import DataConfig, SearchConfig


def run_search(config: SearchConfig, **kwargs: object) -> object:
    """`hls_tune.search.run` (imported lazily: torch loads only when a search runs)."""
    from hls_tune.search import run

    return run(config, **kwargs)  # type: ignore[arg-type]


try:
    __version__ = version("hls-tune")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "ConfigError",
    "DataConfig",
    "Genotype",
    "HLSSchedule",
    "HlsTuneError",
    "NonFiniteLossError",
    "SearchConfig",
    "run_search",
]
