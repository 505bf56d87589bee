"""`hls-tune train`: a fixed genotype trained from scratch, on a study's, an exported
record's or the default data, under the recipe a study's [evaluate] table uses."""

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import click

from hls_tune.cli._base import DEVICE_HELP, cli
from hls_tune.cli.engine import (
    MIX_FORM_NAMES,
    _genotype_label,
    _train_default,
    _with_progress,
    name_option,
    network_size_options,
)
from hls_tune.engine.schedules import MixingRatio


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
    from hls_tune.study.export import exported_data

    cells = engine.load_genotype(genotype, name)  # a bad genotype stops here, before any data
    data, source = DataConfig(), "the default digits data"
    if study_file is not None:
        from hls_tune.study.config import load_study_file

        data = load_study_file(study_file).default_config().data
        source = f"--study-file {study_file}"
    elif (recorded := exported_data(genotype)) is not None:
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
