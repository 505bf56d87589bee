"""`hls-tune export`, `dashboard`, `report` and `compare`: reading a study back."""

from pathlib import Path

import click

from hls_tune.cli._base import (
    _artifacts_dir,
    _storage_url,
    artifacts_option,
    cli,
    storage_option,
    study_option,
    warn_if_exposed,
)
from hls_tune.errors import ConfigError, HlsTuneError


@cli.command()
@study_option
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
@click.option(
    "--pareto",
    is_flag=True,
    help="Export the Pareto front of a multi-objective study (and pareto.json) "
    "instead of the top-k.",
)
def export(
    study_name: str,
    storage: str | None,
    top_k: int,
    out: Path,
    fmt: str,
    force: bool,
    pareto: bool,
) -> None:
    """Export the best genotypes of a study (or its Pareto front)."""
    from hls_tune.engine.safe_io import check_output_dir
    from hls_tune.study.export import export_study
    from hls_tune.study.storage import open_storage
    from hls_tune.study.study import (
        foreign_note,
        load_study,
        own_trials,
        ranked_trials,
        trial_genotype,
    )

    check_output_dir("--out", out)
    url = _storage_url(storage)
    # read only: a read-only study file can be exported, compared and reported
    loaded = load_study(url, study_name, storage=open_storage(url, read_only=True))
    for item in export_study(loaded, top_k=top_k, out=out, fmt=fmt, force=force, pareto=pareto):
        click.echo(f"{'wrote' if item.written else 'unchanged'} {item.path}")
    if not pareto:
        found = [t for t in ranked_trials(loaded.study, top_k) if trial_genotype(t) is not None]
        if len(found) < top_k:
            click.echo(
                f"--top-k {top_k}: the study has {len(found)} complete trial"
                f"{'' if len(found) == 1 else 's'} with a genotype; exported {len(found)}.",
                err=True,
            )
    ignored = foreign_note(own_trials(loaded.study)[1])
    if ignored:
        click.echo(ignored, err=True)


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
    from optuna.artifacts import FileSystemArtifactStore
    from optuna_dashboard import run_server

    from hls_tune.study.artifacts import artifacts_dir, check_artifact_dir, referenced_artifacts
    from hls_tune.study.storage import describe, open_storage

    url = _storage_url(storage)
    storage_obj = open_storage(url)
    # Checked before serving, and nothing is created: a wrong --artifacts would otherwise
    # start a dashboard whose every artifact answers HTTP 500.
    artifact_dir = artifacts_dir(_artifacts_dir(artifacts))
    artifact_line = check_artifact_dir(artifact_dir, referenced_artifacts(storage_obj))
    warn_if_exposed(host, "optuna-dashboard", "sees and can edit the studies")
    click.echo(
        f"optuna-dashboard on {describe(url)} (artifacts in {artifact_dir}) "
        f"at http://{host}:{port}/",
        err=True,
    )
    click.echo(artifact_line, err=True)
    store = FileSystemArtifactStore(artifact_dir)
    try:
        run_server(storage_obj, host=host, port=port, artifact_store=store)
    except OSError as error:  # address in use, or not an address of this machine
        raise HlsTuneError(f"cannot serve on {host}:{port}: {error}") from None


@cli.command()
@study_option
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
    help="How many of the best trials get their cell diagrams, α evolution and schedule.",
)
@artifacts_option
def report(
    study_name: str, storage: str | None, out: Path, top_k: int, artifacts: str | None
) -> None:
    """Write a study report: a self-contained HTML page and PNG figures."""
    from optuna.artifacts import FileSystemArtifactStore

    from hls_tune.engine.safe_io import check_output_dir
    from hls_tune.study.report import write_report
    from hls_tune.study.storage import open_storage
    from hls_tune.study.study import (
        foreign_note,
        load_study,
        own_trials,
    )

    check_output_dir("--out", out)
    url = _storage_url(storage)
    # read only: a read-only study file can be exported, compared and reported
    loaded = load_study(url, study_name, storage=open_storage(url, read_only=True))
    if loaded.study_file.study.multi_objective:
        raise ConfigError(
            f"report draws single-objective studies, but study {study_name!r} is "
            "multi-objective (study.directions); use `hls-tune export --pareto` for its front."
        )
    artifact_dir = Path(_artifacts_dir(artifacts))
    # Read only: a missing directory is reported, never created.
    store = FileSystemArtifactStore(artifact_dir) if artifact_dir.is_dir() else None
    if store is None:
        click.echo(
            f"no artifact directory {artifact_dir}: the report has no α-evolution or "
            "schedule figures (pass the workers' --artifacts DIR)",
            err=True,
        )
    page = write_report(loaded.study, out, top_k=top_k, artifact_store=store)
    images = sorted(out.glob("*.png"))
    click.echo(f"wrote {page} and {len(images)} PNG files in {out}")
    ignored = foreign_note(own_trials(loaded.study)[1])
    if ignored:
        click.echo(ignored, err=True)


@cli.command()
@study_option
@storage_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the output (markdown, or JSON with --json) to this file.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (every figure, every paired difference, τ) instead of markdown.",
)
def compare(study_name: str, storage: str | None, out: Path | None, as_json: bool) -> None:
    """Compare methods: supernet and trained-architecture figures per method and imbalance
    ratio (mean ± std over seeds), the paired difference to darts, and Kendall τ."""
    import json

    from hls_tune.engine.safe_io import check_output_file
    from hls_tune.study.compare import compare_study
    from hls_tune.study.storage import open_storage
    from hls_tune.study.study import load_study

    if out is not None:
        check_output_file("--out", out)
    url = _storage_url(storage)
    # read only: a read-only study file can be exported, compared and reported
    loaded = load_study(url, study_name, storage=open_storage(url, read_only=True))
    table = compare_study(
        loaded.study, loaded.study_file.study.metric, loaded.study_file.base.to_dict()
    )
    if not table.rows:
        raise HlsTuneError(f"study {study_name!r} has no complete trial to compare yet.")
    text = json.dumps(table.to_dict(), indent=2) + "\n" if as_json else table.markdown()
    click.echo(text, nl=False)  # the caption counts the trials of other objectives it ignored
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        from hls_tune.engine.safe_io import atomic_write_text

        atomic_write_text(out, text)
        click.echo(f"wrote {out}", err=True)
