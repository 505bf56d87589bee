"""Train and evaluate a fixed genotype from scratch (the DARTS evaluation recipe, SPEC §1).

`train(genotype, TrainConfig(...))` builds the discrete network (`nas.network`), trains it
on the long-tailed training set (plain instance sampling, or BBN's cumulative learning
with an instance and a reversed sampler, SPEC §2) and reports the SPEC §3 metrics on the
balanced test set, with the parameter count and multiply-adds. Data stay on the device as
uint8 (as in `search`); nothing here knows of Optuna.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine.checkpoint import CheckpointFile
from hls_tune.engine.data import DeviceImages, InstanceStream, LongTailData, concat_images
from hls_tune.engine.datasets import prepare_data
from hls_tune.engine.device import resolve_device
from hls_tune.engine.epochs import RunHooks, epoch_means, run_epochs
from hls_tune.engine.evaluation import evaluate, longtail_metrics
from hls_tune.engine.losses import bbn_mixed_loss
from hls_tune.engine.nas.genotype import Genotype
from hls_tune.engine.nas.load import load_genotype  # noqa: F401  (the engine's one loader)
from hls_tune.engine.nas.network import (
    BbnGenotypeNetwork,
    GenotypeNetwork,
    Network,
    count_multiply_adds,
    count_parameters,
)
from hls_tune.engine.optim import cosine_lr, set_lr, weight_optimizer
from hls_tune.engine.results import TrainEpoch, TrainResult
from hls_tune.engine.safe_io import atomic_write_text
from hls_tune.engine.settings import NETWORKS, TrainConfig

CHECKPOINT_NAME = "checkpoint.pt"
__all__ = ["NETWORKS", "TrainConfig", "TrainEpoch", "TrainResult", "build_network", "train"]


def build_network(
    genotype: Genotype, config: TrainConfig, in_channels: int, num_classes: int, image_size: int
) -> Network:
    """The plain or BBN discrete network of `genotype` for the config's size."""
    common = dict(
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        channels=config.channels,
        layers=config.layers,
        auxiliary=config.auxiliary_weight > 0,
    )
    if config.bbn:
        return BbnGenotypeNetwork(
            genotype, **common, head_cells=config.head_cells, joint_batch=config.bbn_joint_batch
        )
    return GenotypeNetwork(genotype, **common)


class _Training:
    """The state of one training run (an `epochs.EpochRunner`); `train` is its only user."""

    kind = "train"
    format = 2

    def __init__(
        self,
        genotype: Genotype,
        config: TrainConfig,
        data: LongTailData,
        device: torch.device,
        hooks: RunHooks,
    ) -> None:
        self.config = config
        self.data = data
        self.device = device
        self.hooks = hooks
        torch.manual_seed(config.seed)
        self.model = build_network(
            genotype, config, data.in_channels, data.num_classes, data.image_size
        ).to(device)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        train_set = concat_images(data.weight, data.alpha)
        self.train_class_counts = train_set.class_counts().tolist()
        self.train_images = DeviceImages(train_set, device, data.mean, data.std)
        self.val = DeviceImages(data.val, device, data.mean, data.std) if len(data.val) else None
        self.test = DeviceImages(data.test, device, data.mean, data.std)
        self.stream = InstanceStream(self.train_images, self.generator)
        self.steps_per_epoch = max(1, len(train_set) // config.batch_size)
        self.crop_padding, self.flip, self.cutout = config.augmentation(data.image_size)
        self.optimizer = weight_optimizer(
            self.model.parameters(),
            lr=config.weight_lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )

    # --- the run contract (epochs.EpochRunner) ------------------------------------------
    def identity(self) -> dict[str, Any]:
        return {"fingerprint": self.config.fingerprint(), "genotype": self.model.genotype.to_dict()}

    def parts(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        return {"model": self.model, "optimizer": self.optimizer}

    @staticmethod
    def record_from_dict(values: Mapping[str, Any]) -> TrainEpoch:
        return TrainEpoch(**values)

    def _gather(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train_images.gather(
            indices,
            augment=True,
            generator=self.generator,
            crop_padding=self.crop_padding,
            flip=self.flip,
            cutout=self.cutout,
        )

    def _loss(self, progress: float) -> tuple[torch.Tensor, torch.Tensor]:
        n, weight = self.config.batch_size, self.config.auxiliary_weight
        indices = self.stream.take(n)
        if isinstance(self.model, BbnGenotypeNetwork):
            reversed_indices = self.train_images.sample("reversed", n, self.generator)
            x, y = self._gather(torch.cat([indices, reversed_indices]))
            y_c, y_r = y[:n], y[n:]
            mu = self.config.mixing(progress)
            z_c, z_r, aux = self.model.branch_logits(x[:n], x[n:])
            loss, accuracy, _ = bbn_mixed_loss(mu * z_c + (1.0 - mu) * z_r, y_c, y_r, mu)
            if aux is not None:
                # The shared backbone's auxiliary head sees both batches, each with its
                # branch's share of the mixture **(ours)**.
                loss = loss + weight * (
                    mu * F.cross_entropy(aux[:n], y_c) + (1.0 - mu) * F.cross_entropy(aux[n:], y_r)
                )
            return loss, accuracy
        x, y = self._gather(indices)
        logits, aux = self.model.forward_with_auxiliary(x)
        loss = F.cross_entropy(logits, y)
        if aux is not None:
            loss = loss + weight * F.cross_entropy(aux, y)
        return loss, (logits.argmax(1) == y).float().mean().detach()

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        config, steps, hooks = self.config, self.steps_per_epoch, self.hooks
        set_lr(
            self.optimizer, cosine_lr(config.weight_lr, config.weight_lr_min, epoch, config.epochs)
        )
        self.model.drop_path_prob = config.drop_path * epoch / config.epochs
        self.model.train()
        self.stream.new_epoch()
        losses = torch.zeros(steps, device=self.device)
        accuracies = torch.zeros(steps, device=self.device)
        for step in range(steps):
            hooks.before_step(epoch, step)
            self.optimizer.zero_grad(set_to_none=True)
            loss, accuracy = self._loss((epoch * steps + step) / (config.epochs * steps))
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip, foreach=True)
            self.optimizer.step()
            losses[step], accuracies[step] = loss.detach(), accuracy
            hooks.after_step(epoch, step + 1, steps, config.batch_size)
        return epoch_means(epoch, losses, accuracies)

    def epoch_record(self, epoch: int, loss: float, accuracy: float, seconds: float) -> TrainEpoch:
        config = self.config
        val = None
        if self.val is not None:
            val = evaluate(self.model, self.val, self.data.num_classes, config.eval_batch_size)
        return TrainEpoch(
            epoch=epoch,
            epochs=config.epochs,
            train_loss=loss,
            train_accuracy=accuracy,
            val_accuracy=None if val is None else val.accuracy,
            val_balanced_accuracy=None if val is None else val.balanced_accuracy,
            lr=float(self.optimizer.param_groups[0]["lr"]),
            drop_path_prob=self.model.drop_path_prob,
            mixing_ratio=config.mixing(epoch / config.epochs) if config.bbn else None,
            seconds=seconds,
            val_loss=None if val is None else val.loss,
        )


def train(
    genotype: Genotype,
    config: TrainConfig,
    *,
    data: LongTailData | None = None,
    hooks: RunHooks | None = None,
    out: str | Path | None = None,
    restart_unusable: bool = False,
) -> TrainResult:
    """Trains `genotype` from scratch and evaluates it on the balanced test set.

    Args:
        genotype: the cells to train (a BBN genotype's heads are used when `config.bbn`).
        config: the training settings.
        data: prepared long-tailed data (default: built from `config.data`, cached).
        hooks: the caller's callbacks (`RunHooks`); when `on_epoch` stops the run the test
            set is still evaluated: this is the final report, not a selection.
        out: directory for ``checkpoint.pt`` (written every epoch; an existing one is
            resumed), ``metrics.json`` and ``genotype.json``.
        restart_unusable: set an unusable checkpoint aside and start over instead of
            refusing it (`checkpoint.CheckpointFile`).

    Raises:
        NonFiniteLossError: the loss became NaN/inf (names the epoch and step).
        SearchInterrupted: `hooks.should_stop` asked the run to stop.
        ConfigError: bad settings or data, or a checkpoint of a different run in `out`.

    Example:
        >>> from hls_tune.engine.settings import DataConfig
        >>> config = TrainConfig(data=DataConfig(max_per_class=40), epochs=1, channels=4,
        ...                      layers=3, batch_size=32, device="cpu")
        >>> result = train(builtin_genotype("darts_v2"), config)  # doctest: +SKIP
        >>> sorted(result.shot_accuracy)  # doctest: +SKIP
        ['few', 'many', 'medium']
    """
    device = resolve_device(config.device)
    data = data if data is not None else prepare_data(config.data)
    run = _Training(genotype, config, data, device, hooks or RunHooks())
    out_dir = Path(out) if out is not None else None
    checkpoint = None
    if out_dir is not None:
        checkpoint = CheckpointFile(out_dir / CHECKPOINT_NAME, restart_unusable=restart_unusable)
    outcome = run_epochs(run, config.epochs, checkpoint)
    shape = (data.in_channels, data.image_size, data.image_size)
    result = TrainResult(
        config=config,
        genotype=genotype,
        history=outcome.history,
        stopped_early=outcome.stopped_early,
        resumed_from_epoch=outcome.resumed_from_epoch,
        params=count_parameters(run.model),
        multiply_adds=count_multiply_adds(run.model, shape),
        has_auxiliary=run.model.has_auxiliary,
        test=longtail_metrics(run.model, run.test, data, config.eval_batch_size),
        seconds=outcome.seconds,
    )
    if out_dir is not None:
        _write_outputs(out_dir, result, run, data)
    return result


def _write_outputs(out_dir: Path, result: TrainResult, run: _Training, data: LongTailData) -> None:
    config = result.config
    crop, flip, cutout = config.augmentation(data.image_size)
    _write_json(
        out_dir / "metrics.json",
        result.metrics()
        | {
            "config": config.to_dict(),
            "augmentation": {"crop_padding": crop, "flip": flip, "cutout": cutout},
            "train_class_counts": run.train_class_counts,
            "val_class_counts": data.val.class_counts().tolist(),
            "genotype": result.genotype.to_dict(),
            "history": [m.to_dict() for m in result.history],
        },
    )
    _write_json(out_dir / "genotype.json", result.genotype.to_dict())


def _write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(document, indent=2) + "\n")
