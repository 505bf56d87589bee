"""`hls-tune study create | list | show | delete`."""

from pathlib import Path
from typing import Any

import click

from hls_tune.cli._base import (
    _quote,
    _storage_url,
    cli,
    storage_option,
)


@cli.group()
def study() -> None:
    """Create, list, show and delete studies."""


@study.command("create")
@click.argument("study_file", type=click.Path(dir_okay=False, path_type=Path))
@storage_option
@click.option("--name", default=None, help="Study name (default: the file's study.name).")
def study_create(study_file: Path, storage: str | None, name: str | None) -> None:
    """Validate STUDY_FILE and create its study (a no-op when it exists identically)."""
    from hls_tune.study.config import load_study_file
    from hls_tune.study.storage import describe
    from hls_tune.study.study import create_study

    parsed = load_study_file(study_file)  # validation first: nothing written on bad input
    url = _storage_url(storage)
    created_name, created = create_study(url, parsed, name)
    verb = "created" if created else "exists (identical study file), nothing changed:"
    click.echo(
        f"study {verb} {created_name!r} in {describe(url)}; "
        f"budget {parsed.study.n_trials} trials (queued for the workers), "
        f"metric {parsed.study.metric}"
    )
    if created:
        click.echo(f"next: hls-tune worker --study {_quote(created_name)}")


@study.command("list")
@storage_option
def study_list(storage: str | None) -> None:
    """List the studies in the storage with their trial counts."""
    from hls_tune.study.storage import open_storage

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
        complete = any(t.state.name == "COMPLETE" for t in trials)
        best = loaded.best_value if complete and len(loaded.directions) == 1 else None
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
    from hls_tune.study.study import load_study, ranked_trials, state_counts

    loaded = load_study(_storage_url(storage), name)
    counts = state_counts(loaded.study)
    settings = loaded.study_file.study
    goal = f"{settings.direction} {settings.metric}"
    if settings.multi_objective:
        directions = settings.directions or ()
        goal = (
            f"{directions[0]} architecture_{settings.metric}, "
            f"{directions[1]} {settings.size_objective} (Pareto front: export --pareto)"
        )
    elif settings.objective == "architecture":
        goal = f"{settings.direction} architecture_{settings.metric}"
    click.echo(f"study {name!r}: {goal}, budget {settings.n_trials}")
    click.echo("trials: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    best = ranked_trials(loaded.study, top_k)
    if not best:
        click.echo("no complete trial yet")
        return
    top = best[0]
    click.echo(f"best: trial {top.number} value {_values(top)}")
    keys = sorted({k for t in best for k in t.params})
    rows = [(str(t.number), _values(t), *(_short(t.params.get(k)) for k in keys)) for t in best]
    _table(("trial", "value", *keys), rows)


def _values(trial: Any) -> str:
    return ", ".join(f"{v:.4f}" if abs(v) < 1e4 else f"{v:.0f}" for v in trial.values)


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
    from hls_tune.study.study import delete_study, load_study

    url = _storage_url(storage)
    loaded = load_study(url, name)
    n = len(loaded.study.get_trials(deepcopy=False))
    if not yes and not click.confirm(f"delete study {name!r} and its {n} trials?"):
        raise click.Abort()
    delete_study(url, name)
    click.echo(f"deleted study {name!r} ({n} trials)")
