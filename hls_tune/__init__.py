"""hls-tune: Optuna studies for BBN-DARTS with heterogeneous learning-rate scheduling.

The engine (`hls_tune.engine`, no Optuna) is usable as a library; the study layer
(`hls_tune.study`, Optuna) and the command line (`hls_tune.cli`) sit on top of it::

    from hls_tune import SearchConfig, DataConfig, run_search
    result = run_search(SearchConfig(method="hls", data=DataConfig(image_size=8),
                                     channels=4, layers=3, epochs=2, flip=False))
    print(result.genotype.to_json())
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from hls_tune.engine import DataConfig, Genotype, HLSSchedule, SearchConfig, run_search
from hls_tune.errors import ConfigError, HlsTuneError, NonFiniteLossError

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
