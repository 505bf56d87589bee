"""The `hls-tune` command group, its shared options and helpers.

Bad input exits 2 and runtime failures exit 1, each with one line on stderr and no
traceback; every line that may hold a storage URL is redacted.
"""

import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hls_tune.engine.safe_io import atomic_write_text
from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.worker_options import DEFAULT_CHECKPOINT_DIR

DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:N."


def _redact(text: str) -> str:
    from hls_tune.study.storage import redact

    return redact(text)


class _Group(click.Group):
    """Turns the project's errors into one line on stderr and the right exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"error: {_redact(str(exc))}", err=True)
            ctx.exit(2)
        except click.UsageError as exc:  # a bad option or argument: one line too, exit 2
            message = " ".join(exc.format_message().split())
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            click.echo(f"error: {_redact(message)} (see '{where} --help')", err=True)
            ctx.exit(2)
        except HlsTuneError as exc:
            click.echo(f"error: {_redact(str(exc))}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


STORAGE_META_KEY = "hls_tune.study.storage"


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
)
@click.version_option(package_name="hls-tune")
@click.option(
    "--storage",
    "storage",
    default=None,
    metavar="URL",
    help="Storage URL for every study command (a command's own --storage wins).",
)
@click.pass_context
def cli(ctx: click.Context, storage: str | None) -> None:
    """Optuna studies for BBN-DARTS with heterogeneous learning-rate scheduling (HLS).

    Shell completion (bash): eval "$(_HLS_TUNE_COMPLETE=bash_source hls-tune)".
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(0)
    ctx.meta[STORAGE_META_KEY] = storage
    import optuna

    # Every command says what it did in its own lines; Optuna's INFO lines ("A new study
    # created in RDB ...", one per finished trial) would repeat them.
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def warn_if_exposed(host: str, server: str, power: str) -> None:
    """Warns on stderr when `host` is not a loopback address: the servers hls-tune starts
    (dashboard, gRPC storage proxy) have no authentication and no TLS."""
    import ipaddress

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        click.echo(
            f"warning: binding to {host}: anyone who can reach it {power} ({server} has no "
            "authentication and no TLS; see docs/security.md)",
            err=True,
        )


def write_json_files(out: Path, files: dict[str, Any]) -> None:
    """Writes each JSON document to out/NAME atomically (temporary file, then rename)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, document in files.items():
        atomic_write_text(out / name, json.dumps(document, indent=2) + "\n")


STORAGE_HELP = (
    "Storage URL: sqlite:///study.db, journal:study.log, postgresql://user@host/db or "
    "grpc://host:port. Default: $HLS_TUNE_STORAGE, then $OPTUNA_STORAGE."
)


def storage_option(func: Callable) -> Callable:
    """The --storage option every study command takes (URL resolved later, never echoed)."""
    return click.option("--storage", "storage", default=None, metavar="URL", help=STORAGE_HELP)(
        func
    )


def _storage_url(value: str | None) -> str:
    """The command's --storage, else the one given before the command, else the environment."""
    from hls_tune.study.storage import resolve_storage_url

    if value is None:
        ctx = click.get_current_context(silent=True)
        value = ctx.meta.get(STORAGE_META_KEY) if ctx is not None else None
    return resolve_storage_url(value)


def _complete_study_names(
    ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[str]:
    """Shell completion of --study: the names of the studies in the storage (none on error)."""
    try:
        from hls_tune.study.storage import open_storage, resolve_storage_url

        value = ctx.params.get("storage")
        root = ctx.find_root()
        if value is None:
            value = root.params.get("storage")
        storage = open_storage(resolve_storage_url(value))
        names = [s.study_name for s in storage.get_all_studies()]
    except Exception:  # completion must never print an error into the shell
        return []
    return [n for n in names if n.startswith(incomplete)]


def study_option(func: Callable) -> Callable:
    """`--study NAME` of every command that works on one study (completes study names)."""
    return click.option(
        "--study",
        "study_name",
        required=True,
        metavar="NAME",
        help="Study name.",
        shell_complete=_complete_study_names,
    )(func)


ARTIFACTS_HELP = (
    "Directory of the trials' artifacts (figures, genotype tables, shown by the dashboard), "
    "shared by the workers and the dashboard. Default: $HLS_TUNE_ARTIFACTS, then ./artifacts."
)


def artifacts_option(func: Callable) -> Callable:
    """The --artifacts DIR option of the worker, launch and dashboard commands."""
    return click.option("--artifacts", default=None, metavar="DIR", help=ARTIFACTS_HELP)(func)


def checkpoint_dir_option(func: Callable) -> Callable:
    """`--checkpoint-dir` (or HLS_TUNE_CHECKPOINT_DIR) of `worker` and `launch`."""
    return click.option(
        "--checkpoint-dir",
        default=DEFAULT_CHECKPOINT_DIR,
        show_default=True,
        envvar="HLS_TUNE_CHECKPOINT_DIR",
        help="Per-trial checkpoints, shared by all workers of the study (a retry resumes "
        "from its original's file).",
    )(func)


def no_artifacts_option(func: Callable) -> Callable:
    """The --no-artifacts flag of the commands that run trials."""
    return click.option(
        "--no-artifacts", is_flag=True, help="Write no per-trial figures or notes."
    )(func)


def _artifacts_dir(value: str | None) -> str:
    from hls_tune.study.artifacts import artifacts_dir

    return str(artifacts_dir(value))


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Python warnings as the command line shows them: one line, no file or source line."""
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=file if file is not None else sys.stderr, flush=True)


def main() -> None:
    """Console-script entry point."""
    warnings.showwarning = _one_line_warning
    cli(prog_name="hls-tune")
