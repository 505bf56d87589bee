"""The `hls-tune` command line: parse, call one library function, print.

Bad input exits 2 and runtime failures exit 1, each with one line on stderr and no
traceback; every line that may hold a storage URL is redacted.
"""

from hls_tune.cli import engine, results, study, train, workers  # noqa: F401  (registers the commands)
from hls_tune.cli._base import cli, main

__all__ = ["cli", "main"]
