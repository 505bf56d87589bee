"""`python -m hls_tune` is the `hls-tune` command."""

from hls_tune.cli import main

main()
