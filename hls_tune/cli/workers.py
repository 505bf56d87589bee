"""`hls-tune worker`, `launch`, `demo` and `storage-proxy`: running trials."""

import sys
from pathlib import Path

import click

from hls_tune.cli._base import (
    DEVICE_HELP,
    _artifacts_dir,
    _storage_url,
    artifacts_option,
    checkpoint_dir_option,
    cli,
    no_artifacts_option,
    storage_option,
    study_option,
    warn_if_exposed,
)
from hls_tune.errors import ConfigError, HlsTuneError
from hls_tune.study.worker_options import DEFAULT_HEARTBEAT_INTERVAL_S, DEFAULT_MAX_RETRIES


@cli.command()
@study_option
@storage_option
@click.option(
    "--n-trials",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many trials from this worker (default: until the budget).",
)
@click.option("--device", default=None, help=f"Override the study's device: {DEVICE_HELP}")
@checkpoint_dir_option
@click.option(
    "--progress/--no-progress",
    default=True,
    help="Each trial's progress on stderr: a bar inside each epoch on a terminal, one line "
    "per epoch otherwise.",
)
@artifacts_option
@no_artifacts_option
@click.option(
    "--heartbeat-interval",
    type=click.IntRange(min=1),
    default=DEFAULT_HEARTBEAT_INTERVAL_S,
    show_default=True,
    envvar="HLS_TUNE_HEARTBEAT_INTERVAL",
    help="Seconds between heartbeats of the running trial (SQLite, PostgreSQL).",
)
@click.option(
    "--grace-period",
    type=click.IntRange(min=1),
    default=None,
    envvar="HLS_TUNE_GRACE_PERIOD",
    help="Seconds without a heartbeat before a trial's worker counts as dead "
    "[default: 3 x heartbeat interval].",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_RETRIES,
    show_default=True,
    help="How often a dead or interrupted trial is re-queued.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    envvar="HLS_TUNE_THREADS",
    help="Torch threads [default: this worker's share of the host's cores among the "
    "hls-tune workers running there, re-checked between epochs].",
)
def worker(
    study_name: str,
    storage: str | None,
    n_trials: int | None,
    device: str | None,
    checkpoint_dir: str,
    progress: bool,
    artifacts: str | None,
    no_artifacts: bool,
    heartbeat_interval: int,
    grace_period: int | None,
    max_retries: int,
    threads: int | None,
) -> None:
    """Run trials of a study; settings come from the storage, not a local file.

    A trial whose worker dies is re-queued by the next worker and resumes from its last
    epoch checkpoint; SIGTERM/SIGINT hand the running trial back the same way.
    """
    from hls_tune.study.worker import WorkerOptions, run_worker

    if device is not None:
        from hls_tune.engine.checks import check_device

        check_device("device", device)  # validates the value before any trial starts
    from hls_tune.engine.safe_io import check_output_dir

    check_output_dir("--checkpoint-dir", checkpoint_dir)
    options = WorkerOptions(
        n_trials=n_trials,
        device=device,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        artifacts=None if no_artifacts else _artifacts_dir(artifacts),
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        max_retries=max_retries,
        threads=threads,
    )
    run_worker(_storage_url(storage), study_name, options)


@cli.command()
@study_option
@storage_option
@click.option(
    "--gpus",
    default=None,
    help="Comma-separated GPU ids (0,1: one worker per GPU); an id given twice makes it the "
    "list of worker slots (0,0,1: two workers on GPU 0, one on GPU 1).",
)
@click.option(
    "--workers-per-gpu",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Workers on each GPU of --gpus (small supernets do not fill a GPU).",
)
@click.option(
    "--cpus",
    type=click.IntRange(min=1),
    default=None,
    help="Run N CPU workers instead of GPU workers.",
)
@click.option(
    "--n-trials",
    type=click.IntRange(min=1),
    default=None,
    help="Trials this launch finishes in total (default: until the study budget).",
)
@checkpoint_dir_option
@artifacts_option
@no_artifacts_option
@click.option(
    "--max-restarts",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Restarts per slot of a worker that died.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for workers after Ctrl-C / SIGTERM.",
)
def launch(
    study_name: str,
    storage: str | None,
    gpus: str | None,
    workers_per_gpu: int,
    cpus: int | None,
    n_trials: int | None,
    checkpoint_dir: str,
    artifacts: str | None,
    no_artifacts: bool,
    max_restarts: int,
    grace: float,
) -> None:
    """Launch workers for a study: K per GPU, a GPU slot list, or N CPU workers."""
    from hls_tune.study.launch import cpu_slots, gpu_slots, parse_gpus
    from hls_tune.study.launch import launch as launch_workers
    from hls_tune.study.worker import WorkerOptions

    if (gpus is None) == (cpus is None):
        raise ConfigError("give exactly one of --gpus (e.g. 0,1,2,3) or --cpus N.")
    slots = gpu_slots(parse_gpus(gpus, workers_per_gpu)) if gpus is not None else cpu_slots(cpus)
    options = WorkerOptions(
        checkpoint_dir=checkpoint_dir,
        artifacts=None if no_artifacts else _artifacts_dir(artifacts),
    )
    code = launch_workers(
        _storage_url(storage),
        study_name,
        slots,
        options,
        n_trials=n_trials,
        max_restarts=max_restarts,
        grace_seconds=grace,
    )
    sys.exit(code)


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("hls-tune-demo"),
    show_default=True,
    help="Where the demo's study database, checkpoints, artifacts and genotypes go.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="CPU worker processes.",
)
@click.option(
    "--evaluate",
    is_flag=True,
    help="Two-stage trials: each also trains its derived genotype from scratch "
    "([evaluate]) and the trained network's accuracy is the trial's value.",
)
def demo(directory: Path, workers: int, evaluate: bool) -> None:
    """Create the digits demo study, run CPU workers, export the best genotype."""
    from importlib import resources

    from hls_tune.study.config import parse_study_text
    from hls_tune.study.export import export_study
    from hls_tune.study.launch import cpu_slots
    from hls_tune.study.launch import launch as launch_workers
    from hls_tune.study.study import create_study, load_study
    from hls_tune.study.worker import WorkerOptions

    text = resources.files("hls_tune").joinpath("studies/digits_lt_demo.toml").read_text()
    if evaluate:
        text = demo_evaluate_text(text)
    parsed = parse_study_text(text, source="digits_lt_demo.toml")
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'demo.db'}"
    name, created = create_study(url, parsed)
    click.echo(
        f"demo study {name!r} {'created' if created else 'found'} in {directory}/demo.db; "
        f"{parsed.study.n_trials} trials on {workers} CPU workers"
    )
    options = WorkerOptions(
        checkpoint_dir=str(directory / "checkpoints"),
        artifacts=str((directory / "artifacts").absolute()),
    )
    code = launch_workers(url, name, cpu_slots(workers), options, poll_seconds=15.0)
    if code:
        raise HlsTuneError(f"the demo workers stopped with exit code {code}")
    loaded = load_study(url, name)
    files = export_study(loaded, top_k=1, out=directory / "genotypes", fmt="both", force=True)
    best = loaded.study.best_trial
    click.echo(f"best trial {best.number}: {loaded.study_file.study.metric} {best.value:.4f}")
    if evaluate:
        attrs = best.user_attrs
        click.echo(
            f"  supernet val balanced {attrs['supernet_val_balanced_accuracy']:.4f}, trained "
            f"architecture val balanced {attrs['architecture_val_balanced_accuracy']:.4f}, "
            f"{attrs['architecture_params']} parameters, "
            f"{attrs['architecture_madds']} multiply-adds"
        )
    for item in files:
        click.echo(f"genotype: {item.path}")
    click.echo("next:")
    click.echo(f"  hls-tune study show --study {name} --storage {url}")
    click.echo(f"  hls-tune dashboard --storage {url} --artifacts {directory / 'artifacts'}")
    click.echo(
        f"  hls-tune report --study {name} --storage {url} "
        f"--artifacts {directory / 'artifacts'} --out {directory / 'report'}"
    )
    click.echo(f"  hls-tune export --study {name} --storage {url} --top-k 3 --out genotypes/")


DEMO_EVALUATE = """
[evaluate]                   # the second stage of every trial
channels = 8                 # the derived genotype, trained from scratch at this size,
layers = 5
epochs = 8
batch_size = 32
weight_lr = 0.05
cutout = 0                   # an 8x8 digit has no room for a 4x4 hole
drop_path = 0.0
auxiliary_weight = 0.0
seeds = 2                    # two trainings per genotype, averaged
"""


def demo_evaluate_text(text: str) -> str:
    """The demo's study file with an [evaluate] stage and the architecture as objective."""
    name = 'name = "digits-lt-demo"'
    assert name in text
    study = 'name = "digits-lt-demo-evaluate"\nobjective = "architecture"'
    return text.replace(name, study, 1) + DEMO_EVALUATE


@cli.command("storage-proxy")
@storage_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; workers on other machines need a reachable one.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=13000, show_default=True)
def storage_proxy(storage: str | None, host: str, port: int) -> None:
    """Serve the storage through Optuna's gRPC proxy (workers use grpc://HOST:PORT).

    For hundreds of workers: the proxy holds the database connections, so the database
    sees one client instead of one per worker.
    """
    try:
        import grpc  # noqa: F401
        from optuna.storages import run_grpc_proxy_server
    except ImportError as error:  # grpcio, or protobuf beside it, is missing
        raise HlsTuneError(
            f"the gRPC storage proxy needs grpcio and protobuf ({error.name or error} is "
            "missing): pip install 'hls-tune[proxy]'"
        ) from None
    from hls_tune.study.storage import describe, open_storage

    url = _storage_url(storage)
    if url.startswith("grpc"):
        raise ConfigError(f"--storage must be a database, not another proxy, but got {url!r}.")
    storage_obj = open_storage(url)
    warn_if_exposed(host, "the gRPC storage proxy", "can read, change and delete every study")
    click.echo(f"gRPC storage proxy for {describe(url)} on grpc://{host}:{port}", err=True)
    run_grpc_proxy_server(storage_obj, host=host, port=port)
