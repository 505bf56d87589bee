"""`hls-tune search`, `train` and `compare`: the engine without a study storage."""

import sys
from pathlib import Path
from typing import Any

import click

from hls_tune.cli._base import (
    DEVICE_HELP,
    _storage_url,
    cli,
    epoch_progress,
    storage_option,
    write_json_files,
)
from hls_tune.errors import HlsTuneError


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
    from hls_tune.safe_io import check_output_dir, check_output_file

    check_output_dir("--out", out)  # before the search, not after it
    if checkpoint is not None:
        check_output_file("--checkpoint", checkpoint)
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
    if out is not None:
        from hls_tune.safe_io import check_output_dir

        check_output_dir("--out", out)  # before training, not after the first epoch
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
    from hls_tune.safe_io import check_output_file
    from hls_tune.study import load_study

    if out is not None:
        check_output_file("--out", out)
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
        from hls_tune.safe_io import atomic_write_text

        atomic_write_text(out, text)
        click.echo(f"wrote {out}", err=True)
