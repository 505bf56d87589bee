"""`hls-tune search` and `inspect`, and the helpers `train` shares: the engine without a
study storage."""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hls_tune.cli._base import (
    DEVICE_HELP,
    cli,
    write_json_files,
)
from hls_tune.engine.schedules import MIX_FORMS
from hls_tune.engine.settings import TrainConfig

MIX_FORM_NAMES = tuple(MIX_FORMS)
T = TypeVar("T")


def _train_default(name: str) -> Any:
    """The `TrainConfig` default of field `name`: the `train` command restates none."""
    field = TrainConfig.__dataclass_fields__[name]
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


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
    from hls_tune.engine import run_search
    from hls_tune.engine.datasets import prepare_data
    from hls_tune.engine.device import resolve_device
    from hls_tune.engine.safe_io import check_output_dir, check_output_file
    from hls_tune.study.config import load_study_file

    check_output_dir("--out", out)  # before the search, not after it
    if checkpoint is not None:
        check_output_file("--checkpoint", checkpoint)
    study = load_study_file(study_file)
    config = study.default_config()
    overrides = {k: v for k, v in (("device", device), ("epochs", epochs)) if v is not None}
    if overrides:
        config = dataclasses.replace(config, **overrides)
    resolve_device(config.device)
    data = prepare_data(config.data)  # data errors surface before anything is written
    click.echo(
        f"search: {config.method} on {config.data.dataset} (IR {config.data.imbalance_ratio:g}),"
        f" {len(data.weight)}/{len(data.alpha)}/{len(data.val)} weight/alpha/val images"
        f" (val: {config.data.val_source}),"
        f" C={config.channels} L={config.layers}, {config.epochs} epochs",
        err=True,
    )
    result = _with_progress(
        "search",
        config.total_epochs,
        lambda hooks: run_search(config, data=data, hooks=hooks, checkpoint=checkpoint),
    )
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


def _with_progress(label: str, total_epochs: int, run: Callable[[Any], T]) -> T:
    """`run(hooks)` with a progress display on stderr (a bar per epoch on a terminal, one
    line per epoch in a log) listening through its `RunHooks`."""
    from hls_tune.engine.epochs import RunHooks
    from hls_tune.engine.progress import RunProgress

    progress = RunProgress(label, total_epochs)
    with progress:
        return run(RunHooks(on_epoch=progress.show_epoch, on_step=progress.on_step))


def network_size_options(func: Any) -> Any:
    """--channels and --layers of a discrete network (DARTS' evaluation size by default)."""
    func = click.option(
        "--layers",
        type=click.IntRange(min=1),
        default=_train_default("layers"),
        show_default=True,
        help="L, cells (reductions at L//3 and 2L//3).",
    )(func)
    return click.option(
        "--channels",
        type=click.IntRange(min=1),
        default=_train_default("channels"),
        show_default=True,
        help="C, channels of the first cells.",
    )(func)


def name_option(func: Any) -> Any:
    """--name: which genotype of a genotypes.py file."""
    return click.option(
        "--name",
        default=None,
        help="The genotype to take from a genotypes.py holding several (e.g. DARTS_V2).",
    )(func)


def _genotype_label(spec: str, name: str | None) -> str:
    label = spec if "\n" not in spec and len(spec) <= 80 else "the given Genotype(...)"
    return f"{label} ({name})" if name else label


# (in_channels, classes, image side) of the datasets the discrete network is sized for.
INSPECT_DATASETS = {"cifar10": (3, 10, 32), "cifar100": (3, 100, 32), "digits": (1, 10, 8)}


@cli.command()
@click.argument("genotype")
@name_option
@network_size_options
@click.option(
    "--dataset",
    type=click.Choice(list(INSPECT_DATASETS)),
    default="cifar10",
    show_default=True,
    help="Input channels, image side and classes: cifar10 3×32×32/10, cifar100 3×32×32/100, "
    "digits 1×8×8/10.",
)
@click.option(
    "--bbn/--plain",
    default=None,
    help="Bilateral-branch network or the plain DARTS network "
    "(default: BBN for a genotype with head cells).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also draw the cells (cell_normal.png, ...) into this directory.",
)
def inspect(
    genotype: str,
    name: str | None,
    channels: int,
    layers: int,
    dataset: str,
    bbn: bool | None,
    out: Path | None,
) -> None:
    """Print GENOTYPE's parameters and multiply-adds without training.

    Counts follow DARTS: the test-time network, without the auxiliary head (darts_v2 at
    C=36, L=20 on CIFAR-10: 3,349,342 parameters). GENOTYPE takes every form `train` does.
    """
    import torch

    from hls_tune.engine.nas.load import load_genotype
    from hls_tune.engine.nas.network import (
        BbnGenotypeNetwork,
        GenotypeNetwork,
        count_multiply_adds,
        count_parameters,
    )

    cells = load_genotype(genotype, name)
    in_channels, classes, side = INSPECT_DATASETS[dataset]
    use_bbn = cells.is_bbn if bbn is None else bbn
    kind = BbnGenotypeNetwork if use_bbn else GenotypeNetwork
    torch.manual_seed(0)
    model = kind(
        cells,
        in_channels,
        classes,
        image_size=side,
        channels=channels,
        layers=layers,
        auxiliary=True,
    )
    params = count_parameters(model)
    auxiliary = sum(p.numel() for p in model.parameters()) - params
    madds = count_multiply_adds(model, (in_channels, side, side))
    click.echo(
        f"{_genotype_label(genotype, name)}: {'BBN' if use_bbn else 'plain'} network, "
        f"C={channels} L={layers}, {dataset} ({in_channels}×{side}×{side}, {classes} classes)"
    )
    click.echo(f"parameters     {params:,} ({params / 1e6:.3f} M)")
    click.echo(f"multiply-adds  {madds:,} ({madds / 1e6:.1f} M)")
    if auxiliary:
        click.echo(f"auxiliary head {auxiliary:,} parameters (training only, not counted)")
    if out is not None:
        from hls_tune.engine import plots

        drawn = [("normal", cells.normal, cells.normal_concat)]
        drawn.append(("reduce", cells.reduce, cells.reduce_concat))
        if cells.is_bbn:
            drawn.append(
                ("head_conventional", cells.head_conventional, cells.head_conventional_concat)
            )
            drawn.append(
                ("head_rebalancing", cells.head_rebalancing, cells.head_rebalancing_concat)
            )
        for cell, edges, concat in drawn:
            path, _ = plots.cell_diagram(edges, concat, out / f"cell_{cell}.png", title=cell)
            click.echo(f"cell {cell:<17} {path}")
