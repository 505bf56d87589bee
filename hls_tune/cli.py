"""The `hls-tune` command line: parse, call one library function, print.

Bad input exits 2 and runtime failures exit 1, each with one line on stderr and no
traceback; every line that may hold a storage URL is redacted.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hls_tune.errors import ConfigError, HlsTuneError

DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:N."


def _redact(text: str) -> str:
    from hls_tune.storage import redact

    return redact(text)


class _Group(click.Group):
    """Turns the project's errors into one line on stderr and the right exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"error: {_redact(str(exc))}", err=True)
            ctx.exit(2)
        except HlsTuneError as exc:
            click.echo(f"error: {_redact(str(exc))}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hls-tune")
def cli() -> None:
    """Optuna studies for BBN-DARTS with heterogeneous learning-rate scheduling (HLS)."""


def write_json_files(out: Path, files: dict[str, Any]) -> None:
    """Writes each JSON document to out/NAME atomically (temporary file, then rename)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, document in files.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, out / name)


def epoch_progress(total: int, description: str, start: int = 0) -> tuple[Any, Callable]:
    """A tqdm bar over epochs and the `on_epoch` callback that advances it."""
    from tqdm import tqdm

    bar = tqdm(
        total=total,
        initial=start,
        desc=description,
        unit="epoch",
        file=sys.stderr,
        dynamic_ncols=True,
    )

    def advance(metrics: Any) -> None:
        bar.update(1)
        postfix = {"loss": f"{metrics.train_loss:.3f}", "val": f"{metrics.val_accuracy:.3f}"}
        if metrics.mixing_ratio is not None:
            postfix["mu"] = f"{metrics.mixing_ratio:.2f}"
        bar.set_postfix(postfix)

    return bar, advance


@cli.command()
@click.argument("study_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for genotype.json, metrics.json and history.json.",
)
@click.option("--device", default=None, help=f"Override the study file's device: {DEVICE_HELP}")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Override the number of search epochs.",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Checkpoint file written every epoch; an existing one is resumed.",
)
def search(
    study_file: Path, out: Path, device: str | None, epochs: int | None, checkpoint: Path | None
) -> None:
    """Run one search with STUDY_FILE's fixed settings and default HLS values (no Optuna)."""
    import dataclasses

    from hls_tune import search as engine
    from hls_tune.config import load_study_file

    study = load_study_file(study_file)
    config = study.default_config()
    overrides = {k: v for k, v in (("device", device), ("epochs", epochs)) if v is not None}
    if overrides:
        config = dataclasses.replace(config, **overrides)
    engine.resolve_device(config.device)
    data = engine.prepare_data(config.data)  # data errors surface before anything is written
    click.echo(
        f"search: {config.method} on {config.data.dataset} (IR {config.data.imbalance_ratio:g}),"
        f" {len(data.weight)}/{len(data.alpha)}/{len(data.val)} weight/alpha/val images,"
        f" C={config.channels} L={config.layers}, {config.epochs} epochs",
        err=True,
    )
    bar, advance = epoch_progress(config.total_epochs, "search")

    def on_epoch(metrics: Any) -> bool:
        advance(metrics)
        return True

    with bar:
        result = engine.run(config, data=data, on_epoch=on_epoch, checkpoint=checkpoint)
    write_json_files(
        out,
        {
            "genotype.json": result.genotype.to_dict(),
            "metrics.json": result.metrics() | {"config": config.to_dict()},
            "history.json": [m.to_dict() for m in result.history],
        },
    )
    click.echo(
        f"val accuracy {result.val_accuracy:.4f} (balanced {result.val_balanced_accuracy:.4f}), "
        f"test accuracy {result.test_accuracy:.4f} (balanced {result.test_balanced_accuracy:.4f}) "
        f"in {result.seconds:.0f} s"
    )
    click.echo(f"wrote {out / 'genotype.json'} and {out / 'metrics.json'}")


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
    from hls_tune.storage import resolve_storage_url

    return resolve_storage_url(value)


ARTIFACTS_HELP = (
    "Directory of the trials' artifacts (figures, genotype tables, shown by the dashboard), "
    "shared by the workers and the dashboard. Default: $HLS_TUNE_ARTIFACTS, then ./artifacts."
)


def artifacts_option(func: Callable) -> Callable:
    """The --artifacts DIR option of the worker, launch and dashboard commands."""
    return click.option("--artifacts", default=None, metavar="DIR", help=ARTIFACTS_HELP)(func)


def no_artifacts_option(func: Callable) -> Callable:
    """The --no-artifacts flag of the commands that run trials."""
    return click.option(
        "--no-artifacts", is_flag=True, help="Write no per-trial figures or notes."
    )(func)


def _artifacts_dir(value: str | None) -> str:
    from hls_tune.artifacts import artifacts_dir

    return str(artifacts_dir(value))


@cli.group()
def study() -> None:
    """Create, list, show and delete studies."""


@study.command("create")
@click.argument("study_file", type=click.Path(dir_okay=False, path_type=Path))
@storage_option
@click.option("--name", default=None, help="Study name (default: the file's study.name).")
def study_create(study_file: Path, storage: str | None, name: str | None) -> None:
    """Validate STUDY_FILE and create its study (a no-op when it exists identically)."""
    from hls_tune.config import load_study_file
    from hls_tune.storage import describe
    from hls_tune.study import create_study

    parsed = load_study_file(study_file)  # validation first: nothing written on bad input
    url = _storage_url(storage)
    created_name, created = create_study(url, parsed, name)
    verb = "created" if created else "exists (identical study file), nothing changed:"
    click.echo(
        f"study {verb} {created_name!r} in {describe(url)}; "
        f"budget {parsed.study.n_trials} trials, metric {parsed.study.metric}"
    )
    if created:
        click.echo(f"next: hls-tune worker --study {_quote(created_name)}")


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


@study.command("list")
@storage_option
def study_list(storage: str | None) -> None:
    """List the studies in the storage with their trial counts."""
    from hls_tune.storage import open_storage

    url = _storage_url(storage)
    storage_obj = open_storage(url)
    summaries = storage_obj.get_all_studies()
    if not summaries:
        click.echo("no studies")
        return
    import optuna

    rows = []
    for summary in summaries:
        loaded = optuna.load_study(study_name=summary.study_name, storage=storage_obj)
        trials = loaded.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished()]
        best = loaded.best_value if any(t.state.name == "COMPLETE" for t in trials) else None
        rows.append(
            (
                summary.study_name,
                str(len(trials)),
                str(len(finished)),
                "-" if best is None else f"{best:.4f}",
            )
        )
    _table(("study", "trials", "finished", "best"), rows)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@study.command("show")
@click.argument("name")
@storage_option
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Rows of the best-trials table.",
)
def study_show(name: str, storage: str | None, top_k: int) -> None:
    """Counts by state, the best trial and a table of the top trials."""
    from hls_tune.study import load_study, ranked_trials, state_counts

    loaded = load_study(_storage_url(storage), name)
    counts = state_counts(loaded.study)
    settings = loaded.study_file.study
    click.echo(
        f"study {name!r}: {settings.direction} {settings.metric}, budget {settings.n_trials}"
    )
    click.echo("trials: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    best = ranked_trials(loaded.study, top_k)
    if not best:
        click.echo("no complete trial yet")
        return
    top = best[0]
    click.echo(f"best: trial {top.number} value {top.value:.4f}")
    keys = sorted({k for t in best for k in t.params})
    rows = [
        (str(t.number), f"{t.value:.4f}", *(_short(t.params.get(k)) for k in keys)) for t in best
    ]
    _table(("trial", "value", *keys), rows)


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@study.command("delete")
@click.argument("name")
@storage_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def study_delete(name: str, storage: str | None, yes: bool) -> None:
    """Delete a study and all its trials."""
    from hls_tune.study import delete_study, load_study

    url = _storage_url(storage)
    loaded = load_study(url, name)
    n = len(loaded.study.get_trials(deepcopy=False))
    if not yes and not click.confirm(f"delete study {name!r} and its {n} trials?"):
        raise click.Abort()
    delete_study(url, name)
    click.echo(f"deleted study {name!r} ({n} trials)")


@cli.command()
@click.option("--study", "study_name", required=True, help="Study name.")
@storage_option
@click.option(
    "--n-trials",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many trials from this worker (default: until the budget).",
)
@click.option("--device", default=None, help=f"Override the study's device: {DEVICE_HELP}")
@click.option(
    "--checkpoint-dir",
    default="checkpoints",
    show_default=True,
    envvar="HLS_TUNE_CHECKPOINT_DIR",
    help="Per-trial checkpoints (shared by all workers of the study).",
)
@click.option("--progress/--no-progress", default=True, help="A progress bar per trial.")
@artifacts_option
@no_artifacts_option
@click.option(
    "--heartbeat-interval",
    type=click.IntRange(min=1),
    default=30,
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
    default=3,
    show_default=True,
    help="How often a dead or interrupted trial is re-queued.",
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
) -> None:
    """Run trials of a study; settings come from the storage, not a local file.

    A trial whose worker dies is re-queued by the next worker and resumes from its last
    epoch checkpoint; SIGTERM/SIGINT hand the running trial back the same way.
    """
    from hls_tune.worker import run_worker

    if device is not None:
        from hls_tune.settings import SearchConfig

        SearchConfig(device=device)  # validates the value before any trial starts
    run_worker(
        _storage_url(storage),
        study_name,
        n_trials=n_trials,
        device=device,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        artifacts=None if no_artifacts else _artifacts_dir(artifacts),
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        max_retries=max_retries,
    )


@cli.command()
@click.option("--study", "study_name", required=True, help="Study name.")
@storage_option
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="How many of the best trials to export.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("genotypes"),
    show_default=True,
    help="Output directory.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "py", "both"]),
    default="both",
    show_default=True,
    help="JSON files, a DARTS genotypes.py, or both.",
)
@click.option("--force", is_flag=True, help="Overwrite files whose content differs.")
def export(
    study_name: str, storage: str | None, top_k: int, out: Path, fmt: str, force: bool
) -> None:
    """Export the best genotypes of a study."""
    from hls_tune.export import export_study
    from hls_tune.study import load_study

    loaded = load_study(_storage_url(storage), study_name)
    for item in export_study(loaded, top_k=top_k, out=out, fmt=fmt, force=force):
        click.echo(f"{'wrote' if item.written else 'unchanged'} {item.path}")


@cli.command()
@click.option("--study", "study_name", required=True, help="Study name.")
@storage_option
@click.option("--gpus", default=None, help="Comma-separated GPU ids, one worker per GPU.")
@click.option("--workers-per-gpu", type=click.IntRange(min=1), default=1, show_default=True)
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
@click.option(
    "--checkpoint-dir",
    default="checkpoints",
    show_default=True,
    envvar="HLS_TUNE_CHECKPOINT_DIR",
    help="Shared per-trial checkpoints.",
)
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
    """Launch one worker per GPU (or N CPU workers) for a study."""
    from hls_tune.launch import cpu_slots, gpu_slots
    from hls_tune.launch import launch as launch_workers

    if (gpus is None) == (cpus is None):
        raise ConfigError("give exactly one of --gpus (e.g. 0,1,2,3) or --cpus N.")
    if gpus is not None:
        ids = [g.strip() for g in gpus.split(",") if g.strip()]
        if not ids or not all(g.isdigit() for g in ids):
            raise ConfigError(
                f"--gpus must be comma-separated GPU ids like 0,1,2 but got {gpus!r}."
            )
        slots = gpu_slots(ids, workers_per_gpu)
    else:
        slots = cpu_slots(cpus)
    code = launch_workers(
        _storage_url(storage),
        study_name,
        slots,
        n_trials=n_trials,
        checkpoint_dir=checkpoint_dir,
        artifacts=None if no_artifacts else _artifacts_dir(artifacts),
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
def demo(directory: Path, workers: int) -> None:
    """Create the digits demo study, run CPU workers, export the best genotype."""
    from importlib import resources

    from hls_tune.config import parse_study_text
    from hls_tune.export import export_study
    from hls_tune.launch import cpu_slots
    from hls_tune.launch import launch as launch_workers
    from hls_tune.study import create_study, load_study

    text = resources.files("hls_tune").joinpath("studies/digits_lt_demo.toml").read_text()
    parsed = parse_study_text(text, source="digits_lt_demo.toml")
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'demo.db'}"
    name, created = create_study(url, parsed)
    click.echo(
        f"demo study {name!r} {'created' if created else 'found'} in {directory}/demo.db; "
        f"{parsed.study.n_trials} trials on {workers} CPU workers"
    )
    code = launch_workers(
        url,
        name,
        cpu_slots(workers),
        checkpoint_dir=str(directory / "checkpoints"),
        artifacts=str((directory / "artifacts").absolute()),
        poll_seconds=15.0,
    )
    if code:
        raise HlsTuneError(f"the demo workers stopped with exit code {code}")
    loaded = load_study(url, name)
    files = export_study(loaded, top_k=1, out=directory / "genotypes", fmt="both", force=True)
    best = loaded.study.best_trial
    click.echo(f"best trial {best.number}: {loaded.study_file.study.metric} {best.value:.4f}")
    for item in files:
        click.echo(f"genotype: {item.path}")
    click.echo("next:")
    click.echo(f"  hls-tune study show {name} --storage {url}")
    click.echo(f"  hls-tune dashboard --storage {url} --artifacts {directory / 'artifacts'}")
    click.echo(f"  hls-tune report --study {name} --storage {url} --out {directory / 'report'}")
    click.echo(f"  hls-tune export --study {name} --storage {url} --top-k 3 --out genotypes/")


@cli.command()
@storage_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback exposes the study.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@artifacts_option
def dashboard(storage: str | None, host: str, port: int, artifacts: str | None) -> None:
    """Serve optuna-dashboard on the study storage, with the trials' artifacts."""
    import ipaddress

    from optuna_dashboard import run_server

    from hls_tune.artifacts import open_artifact_store
    from hls_tune.storage import describe, open_storage

    url = _storage_url(storage)
    storage_obj = open_storage(url)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        click.echo(
            f"warning: binding to {host}: anyone who can reach it sees and can edit the "
            "studies (optuna-dashboard has no authentication)",
            err=True,
        )
    artifact_dir = _artifacts_dir(artifacts)
    click.echo(
        f"optuna-dashboard on {describe(url)} (artifacts in {artifact_dir}) "
        f"at http://{host}:{port}/",
        err=True,
    )
    store = open_artifact_store(artifact_dir)
    try:
        run_server(storage_obj, host=host, port=port, artifact_store=store)
    except OSError as error:  # address in use, or not an address of this machine
        raise HlsTuneError(f"cannot serve on {host}:{port}: {error}") from None


@cli.command()
@click.option("--study", "study_name", required=True, help="Study name.")
@storage_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for report.html (images embedded) and its PNG files.",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="How many of the best trials get their cell diagrams in the report.",
)
def report(study_name: str, storage: str | None, out: Path, top_k: int) -> None:
    """Write a study report: a self-contained HTML page and PNG figures."""
    from hls_tune.report import write_report
    from hls_tune.study import load_study

    loaded = load_study(_storage_url(storage), study_name)
    page = write_report(loaded.study, out, top_k=top_k)
    images = sorted(out.glob("*.png"))
    click.echo(f"wrote {page} and {len(images)} PNG files in {out}")


@cli.command()
@click.argument("genotype")
@click.option(
    "--study-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Take the data settings from this study file's [data] table.",
)
@click.option(
    "--dataset",
    type=click.Choice(["digits", "cifar10", "cifar100", "imagefolder"]),
    default=None,
    help="Dataset (default: digits, or the study file's).",
)
@click.option("--root", default=None, help="Dataset directory (not needed for digits).")
@click.option(
    "--imbalance-ratio",
    type=click.FloatRange(min=1.0),
    default=None,
    help="n_max / n_min of the long-tailed training set (default 10).",
)
@click.option(
    "--profile",
    type=click.Choice(["exponential", "step", "none"]),
    default=None,
    help="Long-tail profile (default exponential).",
)
@click.option(
    "--image-size", type=click.IntRange(min=4), default=None, help="Resize images to this side."
)
@click.option(
    "--max-per-class",
    type=click.IntRange(min=3),
    default=None,
    help="Cap on the head class's image count.",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 0.9),
    default=None,
    help="Share of each class held out and evaluated every epoch (0 trains on all).",
)
@click.option("--download", is_flag=True, default=None, help="Download CIFAR when missing.")
@click.option(
    "--bbn/--plain",
    default=None,
    help="Bilateral-branch network or the plain DARTS network "
    "(default: BBN for a genotype with head cells).",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=600, show_default=True, help="Epochs."
)
@click.option(
    "--channels",
    type=click.IntRange(min=1),
    default=36,
    show_default=True,
    help="C, channels of the first cells.",
)
@click.option(
    "--layers",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="L, cells (reductions at L//3 and 2L//3).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=96,
    show_default=True,
    help="Images per step (per branch for BBN).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0.0, min_open=True),
    default=0.025,
    show_default=True,
    help="Initial SGD learning rate, cosine-annealed to 0.",
)
@click.option(
    "--cutout",
    type=click.IntRange(min=0),
    default=None,
    help="Cutout side in pixels (default: half the image side, 16 on 32×32; 0 = off).",
)
@click.option(
    "--drop-path",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.2,
    show_default=True,
    help="Final drop-path probability (grows linearly from 0).",
)
@click.option(
    "--auxiliary-weight",
    type=click.FloatRange(min=0.0),
    default=0.4,
    show_default=True,
    help="Weight of the auxiliary head's loss (0 = no auxiliary head).",
)
@click.option(
    "--mix-form",
    default="parabolic",
    show_default=True,
    help="BBN mixing-ratio form: parabolic, linear, cosine, sigmoid, step, constant, "
    "parabolic_increment.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of weights and sampling."
)
@click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for checkpoint.pt (resumed when present), metrics.json, genotype.json.",
)
def train(genotype: str, study_file: Path | None, **options: Any) -> None:
    """Train GENOTYPE from scratch and report long-tailed test metrics.

    GENOTYPE is a JSON file (a genotype, or a record written by `hls-tune export`) or a
    built-in name: darts_v1, darts_v2, pc_darts.
    """
    import dataclasses

    from tqdm import tqdm

    from hls_tune import train as engine
    from hls_tune.settings import DataConfig

    cells = engine.load_genotype(genotype)  # a bad genotype stops here, before any data
    data = DataConfig()
    if study_file is not None:
        from hls_tune.config import load_study_file

        data = load_study_file(study_file).default_config().data
    data_keys = (
        "dataset",
        "root",
        "imbalance_ratio",
        "profile",
        "image_size",
        "max_per_class",
        "val_fraction",
        "download",
    )
    overrides = {k: options.pop(k) for k in data_keys}
    data = dataclasses.replace(data, **{k: v for k, v in overrides.items() if v is not None})
    bbn = options.pop("bbn")
    out: Path | None = options.pop("out")
    config = engine.TrainConfig(data=data, bbn=cells.is_bbn if bbn is None else bbn, **options)
    prepared = engine.prepare_data(config.data)  # data errors surface before training starts
    crop, flip, cutout = config.augmentation(prepared.image_size)
    click.echo(
        f"train: {'BBN' if config.bbn else 'plain'} network of {genotype} on {data.dataset} "
        f"(IR {data.imbalance_ratio:g}), C={config.channels} L={config.layers}, "
        f"{config.epochs} epochs, crop {crop} flip {flip} cutout {cutout}",
        err=True,
    )
    bar = tqdm(total=config.epochs, desc="train", unit="epoch", file=sys.stderr, dynamic_ncols=True)

    def on_epoch(record: Any) -> bool:
        if bar.n == 0 and record.epoch > 0:
            bar.update(record.epoch)  # resumed
        bar.update(1)
        postfix = {"loss": f"{record.train_loss:.3f}"}
        if record.val_accuracy is not None:
            postfix["val"] = f"{record.val_accuracy:.3f}"
        bar.set_postfix(postfix)
        return True

    with bar:
        result = engine.train(cells, config, on_epoch, data=prepared, out=out)
    shots = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.shot_accuracy.items()))
    click.echo(
        f"test accuracy {result.test_accuracy:.4f} (balanced {result.test_balanced_accuracy:.4f};"
        f" {shots}); {result.params / 1e6:.3f} M params, "
        f"{result.multiply_adds / 1e6:.2f} M multiply-adds, {result.seconds:.0f} s"
    )
    if out is not None:
        click.echo(f"wrote {out / 'metrics.json'} and {out / engine.CHECKPOINT_NAME}")


@cli.command()
@click.option("--study", "study_name", required=True, help="Study name.")
@storage_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the table (markdown) to this file.",
)
def compare(study_name: str, storage: str | None, out: Path | None) -> None:
    """Compare methods: mean ± std over seeds per method and imbalance ratio."""
    from hls_tune.compare import compare_study
    from hls_tune.study import load_study

    loaded = load_study(_storage_url(storage), study_name)
    table = compare_study(
        loaded.study, loaded.study_file.study.metric, loaded.study_file.base.to_dict()
    )
    if not table.rows:
        raise HlsTuneError(f"study {study_name!r} has no complete trial to compare yet.")
    text = table.markdown()
    click.echo(text, nl=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


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
    except ImportError:
        raise HlsTuneError(
            "the gRPC storage proxy needs grpcio: pip install 'hls-tune[proxy]'"
        ) from None
    from hls_tune.storage import describe, open_storage

    url = _storage_url(storage)
    if url.startswith("grpc"):
        raise ConfigError(f"--storage must be a database, not another proxy, but got {url!r}.")
    storage_obj = open_storage(url)
    click.echo(f"gRPC storage proxy for {describe(url)} on grpc://{host}:{port}", err=True)
    run_grpc_proxy_server(storage_obj, host=host, port=port)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="hls-tune")


if __name__ == "__main__":
    main()
