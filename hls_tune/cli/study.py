"""`hls-tune study create | list | show | delete`."""

import json
from pathlib import Path
from typing import Any

import click

from hls_tune.cli._base import (
    _complete_study_names,
    _quote,
    _storage_url,
    cli,
    storage_option,
)
from hls_tune.errors import ConfigError


def study_name_argument(func: Any) -> Any:
    """The study as `--study NAME` (as every other command takes it) or positionally."""
    func = click.argument(
        "name", required=False, metavar="[NAME]", shell_complete=_complete_study_names
    )(func)
    return click.option(
        "--study",
        "study_option",
        default=None,
        metavar="NAME",
        help="Study name.",
        shell_complete=_complete_study_names,
    )(func)


def _one_name(name: str | None, study_option: str | None) -> str:
    if name is not None and study_option is not None and name != study_option:
        raise ConfigError(
            f"give the study once: NAME {name!r} and --study {study_option!r} differ."
        )
    chosen = study_option if study_option is not None else name
    if chosen is None:
        raise ConfigError("--study is missing: pass --study NAME (or the name as an argument).")
    return chosen


def json_option(func: Any) -> Any:
    """`--json`: one JSON document on stdout instead of the table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
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
    if created and parsed.base.method == "hls" and "method" not in parsed.sampled():
        from hls_tune.study.space import preset_note
        from hls_tune.study.study import PRESET_ATTR, load_study

        preset = load_study(url, created_name).study.user_attrs.get(PRESET_ATTR)
        click.echo(preset_note(parsed, queued=preset == "paper_reading"))
    if created:
        click.echo(f"next: hls-tune worker --study {_quote(created_name)}")


@study.command("list")
@storage_option
@json_option
def study_list(storage: str | None, as_json: bool) -> None:
    """List the studies in the storage with their trial counts."""
    from hls_tune.study.storage import open_storage

    url = _storage_url(storage)
    storage_obj = open_storage(url, read_only=True)
    summaries = storage_obj.get_all_studies()
    if not summaries and not as_json:
        click.echo("no studies")
        return
    import optuna

    records = []
    for summary in summaries:
        loaded = optuna.load_study(study_name=summary.study_name, storage=storage_obj)
        trials = loaded.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished()]
        complete = any(t.state.name == "COMPLETE" for t in trials)
        best = loaded.best_value if complete and len(loaded.directions) == 1 else None
        records.append(
            {
                "study": summary.study_name,
                "trials": len(trials),
                "finished": len(finished),
                "best": best,
            }
        )
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    rows = [
        (
            r["study"],
            str(r["trials"]),
            str(r["finished"]),
            "-" if r["best"] is None else f"{r['best']:.4f}",
        )
        for r in records
    ]
    _table(("study", "trials", "finished", "best"), rows)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@study.command("show")
@study_name_argument
@storage_option
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Rows of the best-trials table.",
)
@json_option
def study_show(
    name: str | None, study_option: str | None, storage: str | None, top_k: int, as_json: bool
) -> None:
    """Counts by state, the best trial and a table of the top trials.

    Trials not created by hls-tune (another objective run on the study) are left out and
    counted.
    """
    from hls_tune.study.storage import open_storage
    from hls_tune.study.study import (
        foreign_note,
        load_study,
        own_trials,
        ranked_trials,
        state_counts,
    )

    name = _one_name(name, study_option)
    url = _storage_url(storage)
    loaded = load_study(url, name, storage=open_storage(url, read_only=True))
    counts = state_counts(loaded.study)
    foreign = own_trials(loaded.study)[1]
    settings = loaded.study_file.study
    best = ranked_trials(loaded.study, top_k)
    goal = f"{settings.direction} {settings.metric}"
    if settings.multi_objective:
        directions = settings.directions or ()
        goal = (
            f"{directions[0]} architecture_{settings.metric}, "
            f"{directions[1]} {settings.size_objective} (Pareto front: export --pareto)"
        )
    elif settings.objective == "architecture":
        goal = f"{settings.direction} architecture_{settings.metric}"
    if as_json:
        document = {
            "study": name,
            "direction": settings.direction,
            "directions": list(settings.directions) if settings.multi_objective else None,
            "objective": settings.objective,
            "metric": settings.metric,
            "budget": settings.n_trials,
            "trials": {s: n for s, n in counts.items() if n},
            "ignored_foreign_trials": foreign,
            "best": [
                {
                    "trial": t.number,
                    "value": t.values[0] if len(t.values or ()) == 1 else None,
                    "values": t.values,
                    "params": t.params,
                }
                for t in best
            ],
        }
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"study {name!r}: {goal}, budget {settings.n_trials}")
    click.echo("trials: " + (", ".join(f"{n} {s}" for s, n in counts.items() if n) or "none"))
    if foreign:
        click.echo(foreign_note(foreign))
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
@study_name_argument
@storage_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def study_delete(
    name: str | None, study_option: str | None, storage: str | None, yes: bool
) -> None:
    """Delete a study and all its trials."""
    from hls_tune.study.storage import open_storage
    from hls_tune.study.study import delete_study, study_names

    name = _one_name(name, study_option)
    url = _storage_url(storage)
    # Not load_study: a half-created study (no stored file yet) must be deletable too.
    opened = open_storage(url)
    if name not in study_names(opened):
        delete_study(url, name)  # raises the missing-study error with the known names
    study_id = opened.get_study_id_from_name(name)
    n = len(opened.get_all_trials(study_id, deepcopy=False))
    if not yes and not click.confirm(f"delete study {name!r} and its {n} trials?"):
        raise click.Abort()
    delete_study(url, name)
    click.echo(f"deleted study {name!r} ({n} trials)")
