"""Train and evaluate a fixed genotype from scratch (the DARTS evaluation recipe, SPEC §1).

`train(genotype, TrainConfig(...))` builds the discrete network (`nas.network`), trains it
on the long-tailed training set (plain instance sampling, or BBN's cumulative learning
with an instance and a reversed sampler, SPEC §2) and reports the SPEC §3 metrics on the
balanced test set, with the parameter count and multiply-adds. Data stay on the device as
uint8 (as in `search`); nothing here knows of Optuna.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine.checkpoint import (
    load_checkpoint,
    random_state,
    restore_random_state,
    save_checkpoint,
)
from hls_tune.engine.data import DeviceImages, InstanceStream, LongTailData, concat_images
from hls_tune.engine.datasets import prepare_data
from hls_tune.engine.device import resolve_device
from hls_tune.engine.epochs import epoch_means
from hls_tune.engine.evaluation import evaluate, longtail_metrics
from hls_tune.engine.nas.genotype import Genotype
from hls_tune.engine.nas.load import load_genotype  # noqa: F401  (the engine's one loader)
from hls_tune.engine.nas.network import (
    BbnGenotypeNetwork,
    GenotypeNetwork,
    Network,
    count_multiply_adds,
    count_parameters,
)
from hls_tune.engine.progress import StepHook
from hls_tune.engine.safe_io import atomic_write_text
from hls_tune.engine.schedules import MIX_FORMS, mixing_ratio
from hls_tune.engine.settings import (
    DEVICES_HELP,
    DataConfig,
    check_choice,
    check_range,
)
from hls_tune.errors import ConfigError, SearchInterrupted

CHECKPOINT_FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True)
class TrainConfig:
    """How to train a genotype. Defaults are DARTS' CIFAR-10 evaluation recipe.

    The augmentation defaults scale DARTS' 32×32 recipe to the image size **(ours)**: crop
    padding = side/8 (4 on 32×32), cutout = side/2 (16 on 32×32), flips on except for
    digits (a mirrored digit is another glyph). Set them to override.

    Args:
        data: the long-tailed data: the network trains on its weight and α splits (with
            the default `val_source = "unused_balanced"`, the whole long-tailed training set)
            and the validation set the searches use is evaluated every epoch.
        bbn: train the bilateral-branch network (two heads, cumulative learning).
        epochs: training epochs (DARTS: 600).
        channels: C of the first cells (DARTS: 36).
        layers: L, cells of the (shared) backbone (DARTS: 20).
        head_cells: cells in each BBN head stage.
        batch_size: images per step, per branch for BBN (DARTS: 96).
        lr: initial SGD learning rate, cosine-annealed per epoch to `lr_min`.
        lr_min: final learning rate (DARTS: 0).
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        grad_clip: gradient-norm clip.
        crop_padding: random-crop padding (None: image side // 8, at least 1; 0: off).
        flip: random horizontal flips (None: on, except for digits).
        cutout: side of the cutout square (None: image side // 2; 0: off).
        drop_path: final drop-path probability; it grows linearly from 0 over the epochs.
        auxiliary_weight: weight of the auxiliary head's loss (0 builds no auxiliary head).
        mix_form: BBN mixing-ratio form μ(t) (BBN: parabolic).
        mix_steepness: k of the sigmoid form.
        mix_constant: c of the constant form.
        mix_switch: switch point of the step form.
        device: auto, cpu, cuda or cuda:N.
        seed: seed of the weights, sampling, augmentation and drop-path.
        eval_batch_size: images per evaluation batch.
    """

    data: DataConfig = field(default_factory=DataConfig)
    bbn: bool = False
    epochs: int = 600
    channels: int = 36
    layers: int = 20
    head_cells: int = 1
    batch_size: int = 96
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    crop_padding: int | None = None
    flip: bool | None = None
    cutout: int | None = None
    drop_path: float = 0.2
    auxiliary_weight: float = 0.4
    mix_form: str = "parabolic"
    mix_steepness: float = 10.0
    mix_constant: float = 0.5
    mix_switch: float = 0.5
    device: str = "auto"
    seed: int = 0
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        for key in ("epochs", "channels", "layers", "head_cells", "batch_size"):
            check_range(key, getattr(self, key), 1)
        check_range("eval_batch_size", self.eval_batch_size, 1)
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("lr_min", self.lr_min, 0.0, self.lr)
        check_range("momentum", self.momentum, 0.0, 1.0)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("grad_clip", self.grad_clip, 0.0, low_open=True)
        if self.crop_padding is not None:
            check_range("crop_padding", self.crop_padding, 0)
        if self.cutout is not None:
            check_range("cutout", self.cutout, 0)
        check_range("drop_path", self.drop_path, 0.0)
        if self.drop_path >= 1.0:
            raise ConfigError(f"drop_path must be in [0, 1) but got {self.drop_path!r}.")
        check_range("auxiliary_weight", self.auxiliary_weight, 0.0)
        check_choice("mix_form", self.mix_form, MIX_FORMS)
        self.mixing_ratio(0.0)  # validates the form's parameters
        device = str(self.device)
        if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
            raise ConfigError(f"device must be {DEVICES_HELP} but got {device!r}.")

    def mixing_ratio(self, progress: float) -> float:
        """BBN's μ at training progress t ∈ [0, 1]."""
        return mixing_ratio(
            self.mix_form,
            progress,
            steepness=self.mix_steepness,
            constant=self.mix_constant,
            switch=self.mix_switch,
        )

    def augmentation(self, image_size: int) -> tuple[int, bool, int]:
        """(crop padding, flip, cutout) for images of side `image_size` (None resolved)."""
        crop = self.crop_padding if self.crop_padding is not None else max(1, image_size // 8)
        flip = self.flip if self.flip is not None else self.data.dataset != "digits"
        cutout = self.cutout if self.cutout is not None else image_size // 2
        return crop, flip, cutout

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the data settings as a nested table)."""
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A short hash of every setting except the device (refuses resuming another run)."""
        values = self.to_dict()
        values.pop("device")
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainEpoch:
    """One finished training epoch.

    Args:
        epoch: index of the epoch (0-based).
        epochs: the epoch budget.
        train_loss: mean training loss (auxiliary term included).
        train_accuracy: mean training accuracy (BBN: μ-weighted over the two label sets).
        val_accuracy: top-1 on the validation split (None when it is empty).
        val_balanced_accuracy: mean per-class validation accuracy (None when empty).
        lr: the epoch's learning rate.
        drop_path_prob: the epoch's drop-path probability.
        mixing_ratio: μ at the start of the epoch (None for the plain network).
        seconds: wall time of the epoch.
    """

    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float | None
    val_balanced_accuracy: float | None
    lr: float
    drop_path_prob: float
    mixing_ratio: float | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """A trained genotype's figures: SPEC §3 test metrics, size and cost.

    Args:
        config: the training settings.
        genotype: the trained genotype.
        history: one `TrainEpoch` per epoch run.
        stopped_early: the callback stopped the run before the epoch budget.
        resumed_from_epoch: the epoch a checkpoint resumed at (None: started fresh).
        params: parameters of the test-time network (no auxiliary head).
        multiply_adds: multiply-adds of one test-time forward pass on one image.
        has_auxiliary: whether the auxiliary head was trained.
        test_accuracy: top-1 on the balanced test set.
        test_balanced_accuracy: mean per-class test accuracy.
        test_per_class_accuracy: per-class test accuracy.
        shot_accuracy: many/medium/few-shot test accuracy.
        seconds: training wall time (all sessions of a resumed run).
    """

    config: TrainConfig
    genotype: Genotype
    history: tuple[TrainEpoch, ...]
    stopped_early: bool
    resumed_from_epoch: int | None
    params: int
    multiply_adds: int
    has_auxiliary: bool
    test_accuracy: float
    test_balanced_accuracy: float
    test_per_class_accuracy: tuple[float, ...]
    shot_accuracy: dict[str, float]
    seconds: float

    def metrics(self) -> dict[str, Any]:
        """Final figures as a JSON-ready dict (no history)."""
        return {
            "network": "bbn" if self.config.bbn else "plain",
            "epochs_run": len(self.history),
            "stopped_early": self.stopped_early,
            "resumed_from_epoch": self.resumed_from_epoch,
            "test_accuracy": self.test_accuracy,
            "test_balanced_accuracy": self.test_balanced_accuracy,
            "test_per_class_accuracy": list(self.test_per_class_accuracy),
            "shot_accuracy": dict(self.shot_accuracy),
            "params": self.params,
            "multiply_adds": self.multiply_adds,
            "has_auxiliary": self.has_auxiliary,
            "val_accuracy": self.history[-1].val_accuracy if self.history else None,
            "val_balanced_accuracy": (
                self.history[-1].val_balanced_accuracy if self.history else None
            ),
            "train_seconds": self.seconds,
        }


TrainCallback = Callable[[TrainEpoch], bool | None]


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
        return BbnGenotypeNetwork(genotype, **common, head_cells=config.head_cells)
    return GenotypeNetwork(genotype, **common)


def _cosine_lr(config: TrainConfig, epoch: int) -> float:
    # Stepped per epoch like DARTS' CosineAnnealingLR(T_max=epochs, eta_min=lr_min).
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (
        1.0 + math.cos(math.pi * epoch / config.epochs)
    )


class _Training:
    """The state of one training run; `train` is its only user."""

    def __init__(
        self, genotype: Genotype, config: TrainConfig, data: LongTailData, device: torch.device
    ) -> None:
        self.config = config
        self.data = data
        self.device = device
        self.on_step: StepHook | None = None
        self.should_stop: Callable[[], bool] | None = None
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
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            foreach=True,  # one fused update, not a Python loop over tensors (CPU default)
        )

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
            mu = self.config.mixing_ratio(progress)
            z_c, z_r, aux = self.model.branch_logits(x[:n], x[n:])
            logits = mu * z_c + (1.0 - mu) * z_r
            loss = mu * F.cross_entropy(logits, y_c) + (1.0 - mu) * F.cross_entropy(logits, y_r)
            if aux is not None:
                # The shared backbone's auxiliary head sees both batches, each with its
                # branch's share of the mixture **(ours)**.
                loss = loss + weight * (
                    mu * F.cross_entropy(aux[:n], y_c) + (1.0 - mu) * F.cross_entropy(aux[n:], y_r)
                )
            predicted = logits.argmax(1)
            accuracy = mu * (predicted == y_c).float().mean() + (1.0 - mu) * (
                (predicted == y_r).float().mean()
            )
            return loss, accuracy.detach()
        x, y = self._gather(indices)
        logits, aux = self.model.forward_with_auxiliary(x)
        loss = F.cross_entropy(logits, y)
        if aux is not None:
            loss = loss + weight * F.cross_entropy(aux, y)
        return loss, (logits.argmax(1) == y).float().mean().detach()

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        config, steps = self.config, self.steps_per_epoch
        for group in self.optimizer.param_groups:
            group["lr"] = _cosine_lr(config, epoch)
        self.model.drop_path_prob = config.drop_path * epoch / config.epochs
        self.model.train()
        self.stream.new_epoch()
        losses = torch.zeros(steps, device=self.device)
        accuracies = torch.zeros(steps, device=self.device)
        for step in range(steps):
            progress = (epoch * steps + step) / (config.epochs * steps)
            if self.should_stop is not None and self.should_stop():
                raise SearchInterrupted(epoch, step)
            self.optimizer.zero_grad(set_to_none=True)
            loss, accuracy = self._loss(progress)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip, foreach=True)
            self.optimizer.step()
            losses[step], accuracies[step] = loss.detach(), accuracy
            if self.on_step is not None:
                self.on_step(epoch, step + 1, steps, config.batch_size)
        return epoch_means(epoch, losses, accuracies)

    def epoch_record(self, epoch: int, loss: float, accuracy: float, seconds: float) -> TrainEpoch:
        val_top1 = val_balanced = None
        if self.val is not None:
            val_top1, val_balanced, _ = evaluate(
                self.model, self.val, self.data.num_classes, self.config.eval_batch_size
            )
        return TrainEpoch(
            epoch=epoch,
            epochs=self.config.epochs,
            train_loss=loss,
            train_accuracy=accuracy,
            val_accuracy=val_top1,
            val_balanced_accuracy=val_balanced,
            lr=_cosine_lr(self.config, epoch),
            drop_path_prob=self.model.drop_path_prob,
            mixing_ratio=(
                self.config.mixing_ratio(epoch / self.config.epochs) if self.config.bbn else None
            ),
            seconds=seconds,
        )

    def state(self, epoch: int, history: list[TrainEpoch], elapsed: float) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": "train",
            "fingerprint": self.config.fingerprint(),
            "genotype": self.model.genotype.to_dict(),
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **random_state(self.generator, self.device),
            "history": [m.to_dict() for m in history],
            "elapsed": elapsed,
        }

    def load(self, state: dict[str, Any], path: Path) -> tuple[int, list[TrainEpoch], float]:
        same = (
            state.get("format") == CHECKPOINT_FORMAT
            and state.get("kind") == "train"
            and state.get("fingerprint") == self.config.fingerprint()
            and state.get("genotype") == self.model.genotype.to_dict()
        )
        if not same:
            raise ConfigError(
                f"{path} was written by a training run with another genotype or other "
                "settings; use another --out directory or delete the checkpoint."
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_random_state(state, self.generator, self.device)
        history = [TrainEpoch(**m) for m in state["history"]]
        return state["epoch"] + 1, history, float(state["elapsed"])


def train(
    genotype: Genotype,
    config: TrainConfig,
    on_epoch: TrainCallback | None = None,
    *,
    data: LongTailData | None = None,
    out: str | Path | None = None,
    on_step: StepHook | None = None,
    on_resume: Callable[[list[TrainEpoch]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Trains `genotype` from scratch and evaluates it on the balanced test set.

    Args:
        genotype: the cells to train (a BBN genotype's heads are used when `config.bbn`).
        config: the training settings.
        on_epoch: called after every epoch; returning False stops the run (the test set
            is still evaluated: this is the final report, not a selection).
        data: prepared long-tailed data (default: built from `config.data`, cached).
        out: directory for ``checkpoint.pt`` (written every epoch; an existing one is
            resumed), ``metrics.json`` and ``genotype.json``.
        on_step: called after every step with (epoch, step, steps, images) (progress bars).
        on_resume: called once with the restored epochs when a checkpoint is resumed, so a
            caller can re-report what an interrupted run had measured.
        should_stop: polled before every step; True raises SearchInterrupted and the last
            epoch checkpoint stands.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (names the epoch and step).
        SearchInterrupted: `should_stop` asked the run to stop.
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
    run = _Training(genotype, config, data, device)
    run.on_step = on_step
    run.should_stop = should_stop
    out_dir = Path(out) if out is not None else None
    checkpoint = out_dir / CHECKPOINT_NAME if out_dir is not None else None
    start, history, elapsed, resumed = 0, [], 0.0, None
    if checkpoint is not None and checkpoint.exists():
        start, history, elapsed = run.load(load_checkpoint(checkpoint), checkpoint)
        resumed = start
        if on_resume is not None:
            on_resume(list(history))
    stopped = False
    for epoch in range(start, config.epochs):
        started = time.perf_counter()
        loss, accuracy = run.train_epoch(epoch)
        record = run.epoch_record(epoch, loss, accuracy, time.perf_counter() - started)
        history.append(record)
        elapsed += time.perf_counter() - started
        if checkpoint is not None:
            save_checkpoint(run.state(epoch, history, elapsed), checkpoint)
        if on_epoch is not None and on_epoch(record) is False:
            stopped = epoch + 1 < config.epochs
            break
    test = longtail_metrics(run.model, run.test, data, config.eval_batch_size)
    shape = (data.in_channels, data.image_size, data.image_size)
    result = TrainResult(
        config=config,
        genotype=genotype,
        history=tuple(history),
        stopped_early=stopped,
        resumed_from_epoch=resumed,
        params=count_parameters(run.model),
        multiply_adds=count_multiply_adds(run.model, shape),
        has_auxiliary=run.model.has_auxiliary,
        test_accuracy=test.accuracy,
        test_balanced_accuracy=test.balanced_accuracy,
        test_per_class_accuracy=test.per_class_accuracy,
        shot_accuracy=test.shot_accuracy,
        seconds=elapsed,
    )
    if out_dir is not None:
        crop, flip, cutout = config.augmentation(data.image_size)
        _write_json(
            out_dir / "metrics.json",
            result.metrics()
            | {
                "config": config.to_dict(),
                "augmentation": {"crop_padding": crop, "flip": flip, "cutout": cutout},
                "train_class_counts": run.train_class_counts,
                "val_class_counts": data.val.class_counts().tolist(),
                "genotype": genotype.to_dict(),
                "history": [m.to_dict() for m in history],
            },
        )
        _write_json(out_dir / "genotype.json", genotype.to_dict())
    return result


def _write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(document, indent=2) + "\n")
