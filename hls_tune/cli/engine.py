"""`hls-tune search`, `train` and `inspect`: the engine without a study storage."""

import dataclasses
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hls_tune.cli._base import (
    DEVICE_HELP,
    cli,
    write_json_files,
)
from hls_tune.engine.schedules import MIX_FORMS, MixingRatio
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


@cli.command()
@click.argument("genotype")
@name_option
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
    "--val-source",
    type=click.Choice(["unused_balanced", "longtail_split"]),
    default=None,
    help="Validation set evaluated every epoch: unused_balanced (default: --val-per-class "
    "images of every class the long-tailed subset leaves unused; the whole long-tailed set "
    "trains) or longtail_split (--val-fraction of each class's long-tailed images).",
)
@click.option(
    "--val-per-class",
    type=click.IntRange(min=1),
    default=None,
    help="Validation images per class with unused_balanced (default 50, or the study file's).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 0.9),
    default=None,
    help="Share of each class's long-tailed images held out with longtail_split (and for a "
    "class with too few unused images); 0 with longtail_split trains on all.",
)
@click.option("--download", is_flag=True, default=None, help="Download CIFAR when missing.")
@click.option(
    "--network",
    type=click.Choice(["plain", "bbn", "own"]),
    default=_train_default("network"),
    show_default=True,
    help="plain: the genotype's backbone cells in DARTS' network; bbn: the bilateral-branch "
    "network (a plain genotype's normal cell builds both heads); own: BBN for a genotype "
    "with head cells, plain otherwise. The same choice as a study's [evaluate] network.",
)
@click.option("--bbn", "network", flag_value="bbn", help="Same as --network bbn.")
@click.option("--plain", "network", flag_value="plain", help="Same as --network plain.")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=_train_default("epochs"),
    show_default=True,
    help="Epochs.",
)
@network_size_options
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=_train_default("batch_size"),
    show_default=True,
    help="Images per step (per branch for BBN).",
)
@click.option(
    "--weight-lr",
    "--lr",
    "weight_lr",
    type=click.FloatRange(min=0.0, min_open=True),
    default=_train_default("weight_lr"),
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
    default=_train_default("drop_path"),
    show_default=True,
    help="Final drop-path probability (grows linearly from 0).",
)
@click.option(
    "--auxiliary-weight",
    type=click.FloatRange(min=0.0),
    default=_train_default("auxiliary_weight"),
    show_default=True,
    help="Weight of the auxiliary head's loss (0 = no auxiliary head).",
)
@click.option(
    "--mix-form",
    type=click.Choice(MIX_FORM_NAMES),
    default=_train_default("mixing").form,
    show_default=True,
    help="BBN mixing-ratio form μ(t).",
)
@click.option(
    "--seed",
    type=int,
    default=_train_default("seed"),
    show_default=True,
    help="Seed of weights and sampling.",
)
@click.option("--device", default=_train_default("device"), show_default=True, help=DEVICE_HELP)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for checkpoint.pt (resumed when present), metrics.json, genotype.json.",
)
def train(genotype: str, name: str | None, study_file: Path | None, **options: Any) -> None:
    """Train GENOTYPE from scratch and report long-tailed test metrics.

    GENOTYPE is a JSON file (a genotype, or a record written by `hls-tune export`), a DARTS
    genotypes.py (the original, PC-DARTS' or `hls-tune export --format py`; --name picks
    one), a search log or the text holding the Genotype(...) line DARTS logs, or a published
    cell: darts_v1, darts_v2, pc_darts, or DARTS' names DARTS_V1, DARTS_V2, DARTS, PC_DARTS
    (any case).
    """
    from hls_tune.engine import train as engine
    from hls_tune.engine.datasets import prepare_data
    from hls_tune.engine.settings import DataConfig

    cells = engine.load_genotype(genotype, name)  # a bad genotype stops here, before any data
    data, source = DataConfig(), "the default digits data"
    if study_file is not None:
        from hls_tune.study.config import load_study_file

        data = load_study_file(study_file).default_config().data
        source = f"--study-file {study_file}"
    elif (recorded := _record_data(genotype)) is not None:
        data, source = recorded
    data_keys = (
        "dataset",
        "root",
        "imbalance_ratio",
        "profile",
        "image_size",
        "max_per_class",
        "val_source",
        "val_per_class",
        "val_fraction",
        "download",
    )
    overrides = {k: v for k in data_keys if (v := options.pop(k)) is not None}
    data = dataclasses.replace(data, **overrides)
    flags = ", ".join(f"--{k.replace('_', '-')}" for k in overrides)
    data_line = f"data: {source}" + (f", overridden by {flags}" if flags else "")
    network = options.pop("network")
    if network == "own":
        network = "bbn" if cells.is_bbn else "plain"
    mixing = MixingRatio(options.pop("mix_form"))
    out: Path | None = options.pop("out")
    if out is not None:
        from hls_tune.engine.safe_io import check_output_dir

        check_output_dir("--out", out)  # before training, not after the first epoch
    config = engine.TrainConfig(data=data, network=network, mixing=mixing, **options)
    with warnings.catch_warnings(record=True) as caught:  # said after the data line
        warnings.simplefilter("always")
        prepared = prepare_data(config.data)  # data errors surface before training starts
    click.echo(data_line, err=True)  # after the checks: bad input stays one line
    for warning in caught:
        warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    crop, flip, cutout = config.augmentation(prepared.image_size)
    click.echo(
        f"train: {'BBN' if config.bbn else 'plain'} network of {_genotype_label(genotype, name)}"
        f" on {data.dataset} "
        f"(IR {data.imbalance_ratio:g}), C={config.channels} L={config.layers}, "
        f"{config.epochs} epochs, crop {crop} flip {flip} cutout {cutout}; "
        f"{len(prepared.weight) + len(prepared.alpha)} training images, {len(prepared.val)} "
        f"validation images ({data.val_source})",
        err=True,
    )
    result = _with_progress(
        "train",
        config.epochs,
        lambda hooks: engine.train(cells, config, data=prepared, hooks=hooks, out=out),
    )
    shots = ", ".join(f"{k} {v:.4f}" for k, v in sorted(result.shot_accuracy.items()))
    click.echo(
        f"test accuracy {result.test_accuracy:.4f} (balanced {result.test_balanced_accuracy:.4f};"
        f" {shots}); {result.params / 1e6:.3f} M params, "
        f"{result.multiply_adds / 1e6:.2f} M multiply-adds, {result.seconds:.0f} s"
    )
    if out is not None:
        click.echo(f"wrote {out / 'metrics.json'} and {out / engine.CHECKPOINT_NAME}")


def _record_data(spec: str) -> tuple[Any, str] | None:
    """The data settings stored in a record written by `hls-tune export` (its trial's
    config), with a description of where they come from; None for any other genotype."""
    path = Path(spec)
    if path.suffix != ".json" or not path.is_file():
        return None
    import json

    from hls_tune.engine.checks import build_dataclass
    from hls_tune.engine.safe_io import open_regular
    from hls_tune.engine.settings import DataConfig

    try:
        with open_regular(path, "genotype file") as handle:
            record = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError included
        return None  # load_genotype read it as a genotype; it holds no record to use
    config = record.get("config") if isinstance(record, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict):
        return None
    data = build_dataclass(DataConfig, config["data"], prefix=f"{path.name}: config.data.")
    where = f"study {record.get('study')!r}, trial {record.get('trial')}"
    return data, f"the exported record {path.name} ({where})"


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
