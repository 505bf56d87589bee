"""adapt_head (SPEC §5): search on a balanced source, then retrain only the linear head.

IMB-NAS' cheapest effective adaptation of a balanced super-network to a long-tailed
target: (1) a plain DARTS search (weights and α, first order, as `search` does) on the
balanced source; (2) freeze every supernet weight and α, put a fresh linear classifier on
the frozen features and train it on the long-tailed target's weight and α splits with a
class-re-weighted loss (`reweight`: inverse frequency or effective number); (3) derive
the genotype (from the frozen α, so it is the source search's). The run reports one
`EpochMetrics` per epoch of both phases (validation on the target's validation split)
through the callback `search.run` uses, and returns the same `SearchResult`.

Choices **(ours)**: the balanced source is `data.dataset` with every class at the head
count, the target's validation and test images left out (so the metric that drives the
study is not measured on images the source search trained on); the new head is freshly
initialised (as in classifier re-training, and needed when the source has other
classes); the frozen backbone runs in eval mode (BatchNorm keeps the source statistics)
and target images are normalised with the source's channel statistics, which the
backbone was trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine.checkpoint import random_state, restore_random_state
from hls_tune.engine.data import (
    DeviceImages,
    ImageSet,
    InstanceStream,
    LongTailData,
    build_longtail,
    concat_images,
    load_source,
)
from hls_tune.engine.data.sources import SourceData
from hls_tune.engine.datasets import prepare_data
from hls_tune.engine.device import resolve_device
from hls_tune.engine.epochs import run_epochs
from hls_tune.engine.evaluation import evaluate, longtail_metrics
from hls_tune.engine.losses import class_loss_weights
from hls_tune.engine.progress import StepHook
from hls_tune.engine.results import EpochCallback, EpochMetrics, SearchResult
from hls_tune.engine.schedules import alpha_learning_rates
from hls_tune.engine.search import Search
from hls_tune.engine.settings import SearchConfig
from hls_tune.errors import ConfigError, NonFiniteLossError, SearchInterrupted

CHECKPOINT_FORMAT = 1
CHECKPOINT_KIND = "adapt_head"


def _image_key(image: torch.Tensor) -> bytes:
    return hashlib.blake2b(image.numpy().tobytes(), digest_size=16).digest()


def _without(images: ImageSet, excluded: ImageSet) -> ImageSet:
    """`images` less every image identical to one in `excluded`."""
    keys = {_image_key(image) for image in excluded.images}
    keep = [i for i, image in enumerate(images.images) if _image_key(image) not in keys]
    return images.subset(torch.tensor(keep, dtype=torch.long))


def balanced_source(config: SearchConfig, target: LongTailData) -> LongTailData:
    """The balanced source data of an adapt_head run.

    `source_dataset = "balanced"` takes `data.dataset`'s training set; another name loads
    that dataset (from `source_root`, else `data.root`) at the target's image size. Images
    identical to a target validation or test image are removed, then every class keeps
    the same number of images (the smallest class count, capped by `data.max_per_class`)
    and the set is split into weight, α and validation parts like the target.

    Args:
        config: the adapt_head settings.
        target: the long-tailed target data.

    Raises:
        ConfigError: the source cannot be loaded, or its images have another number of
            channels than the target's.
    """
    data = config.data
    if config.source_dataset == "balanced":
        name, root, size = data.dataset, data.root, data.image_size
    else:
        name, root = config.source_dataset, config.source_root or data.root
        size = target.image_size
    source = load_source(
        name,
        root,
        image_size=size,
        download=data.download,
        test_per_class=data.test_per_class,
        seed=data.seed,
    )
    if source.train.in_channels != target.in_channels:
        raise ConfigError(
            f"source_dataset {config.source_dataset!r} has {source.train.in_channels}-channel "
            f"images but the target {data.dataset!r} has {target.in_channels}."
        )
    held_out = concat_images(target.val, target.test)
    return build_longtail(
        SourceData(train=_without(source.train, held_out), test=source.test),
        imbalance_ratio=1.0,
        profile="exponential",  # IR 1: every class at the head count
        val_fraction=data.val_fraction,
        alpha_fraction=data.alpha_fraction,
        seed=data.seed,
        many_above=data.many_above,
        few_below=data.few_below,
        max_per_class=data.max_per_class,
    )


class _Adaptation:
    """The state of one adapt_head run; `run` is its only user."""

    def __init__(
        self,
        config: SearchConfig,
        source: LongTailData,
        target: LongTailData,
        device: torch.device,
    ) -> None:
        self.config = config
        self.target = target
        self.device = device
        # Phase 1 is exactly a plain DARTS search on the source.
        self.search = Search(dataclasses.replace(config, method="darts"), source, device)
        self.model = self.search.model
        mean, std = source.mean, source.std
        self.train_images = DeviceImages(
            concat_images(target.weight, target.alpha), device, mean, std
        )
        self.val = DeviceImages(target.val, device, mean, std)
        self.test = DeviceImages(target.test, device, mean, std)
        counts = torch.tensor(target.train_counts, device=device)
        self.class_weights = class_loss_weights(counts, config.reweight, config.reweight_beta)
        self.stream = InstanceStream(self.train_images, self.search.generator)
        self.head_steps = max(1, len(self.train_images) // config.batch_size)
        self.head_optimizer: torch.optim.Optimizer | None = None
        self.should_stop: Callable[[], bool] | None = None
        self.on_step: StepHook | None = None

    # --- phase 2 -------------------------------------------------------------------------
    def start_head(self) -> None:
        """Freezes the supernet (weights and α) and puts a fresh linear head on it."""
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        features = self.model.classifier.in_features
        self.model.classifier = nn.Linear(features, self.target.num_classes).to(self.device)
        self.head_optimizer = torch.optim.SGD(
            self.model.classifier.parameters(),
            lr=self.config.weight_lr,
            momentum=self.config.momentum,
            weight_decay=self.config.weight_decay,
        )

    def _head_lr(self, head_epoch: int) -> float:
        config = self.config
        return config.weight_lr_min + 0.5 * (config.weight_lr - config.weight_lr_min) * (
            1.0 + math.cos(math.pi * head_epoch / config.head_epochs)
        )

    def head_epoch(self, epoch: int) -> tuple[float, float]:
        """One epoch of head retraining with the re-weighted loss; the backbone runs in
        eval mode and without gradients (only the head's parameters require them)."""
        assert self.head_optimizer is not None
        config = self.config
        for group in self.head_optimizer.param_groups:
            group["lr"] = self._head_lr(epoch - config.epochs)
        self.model.eval()
        self.stream.new_epoch()
        losses = torch.zeros(self.head_steps, device=self.device)
        accuracies = torch.zeros(self.head_steps, device=self.device)
        for step in range(self.head_steps):
            if self.should_stop is not None and self.should_stop():
                raise SearchInterrupted(epoch, step)
            x, y = self.train_images.gather(
                self.stream.take(config.batch_size),
                augment=True,
                generator=self.search.generator,
                crop_padding=config.crop_padding,
                flip=config.flip,
                cutout=config.cutout,
            )
            self.head_optimizer.zero_grad(set_to_none=True)
            logits = self.model(x)
            loss = F.cross_entropy(logits, y, weight=self.class_weights)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.classifier.parameters(), config.grad_clip)
            self.head_optimizer.step()
            losses[step] = loss.detach()
            accuracies[step] = (logits.argmax(1) == y).float().mean().detach()
            if self.on_step is not None:
                self.on_step(epoch, step + 1, self.head_steps, config.batch_size)
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0])
            raise NonFiniteLossError(epoch, bad, float(losses[bad]))
        return float(losses.mean()), float(accuracies.mean())

    # --- both phases ---------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """A source search epoch (epoch < `epochs`) or a head epoch."""
        if epoch < self.config.epochs:
            return self.search.train_epoch(epoch)
        return self.head_epoch(epoch)

    def epoch_metrics(
        self, epoch: int, train_loss: float, train_accuracy: float, seconds: float
    ) -> EpochMetrics:
        """The epoch's metrics, validated on the long-tailed target."""
        config = self.config
        in_source = epoch < config.epochs
        groups = self.search.groups
        if in_source:
            alpha_lrs = alpha_learning_rates(self.search.config, epoch / config.epochs, groups)
        else:
            alpha_lrs = dict.fromkeys(groups, 0.0)  # α is frozen while the head retrains
        top1, balanced, per_class = evaluate(
            self.model, self.val, self.target.num_classes, config.eval_batch_size
        )
        return EpochMetrics(
            epoch=epoch,
            epochs=config.total_epochs,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_accuracy=top1,
            val_balanced_accuracy=balanced,
            val_per_class_accuracy=per_class,
            mixing_ratio=None,
            alpha_lrs=alpha_lrs,
            alphas={g: p.cpu().tolist() for g, p in self.model.alpha_probabilities().items()},
            genotype=self.model.genotype(),
            seconds=seconds,
        )

    def state(self, epoch: int, history: list[EpochMetrics], elapsed: float) -> dict[str, Any]:
        search = self.search
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": CHECKPOINT_KIND,
            "fingerprint": self.config.fingerprint(),
            "epoch": epoch,
            "model": self.model.state_dict(),
            "weight_optimizer": search.weight_optimizer.state_dict(),
            "alpha_optimizer": search.alpha_optimizer.state_dict(),
            "head_optimizer": (
                None if self.head_optimizer is None else self.head_optimizer.state_dict()
            ),
            **random_state(search.generator, self.device),
            "history": [m.to_dict() for m in history],
            "elapsed": elapsed,
        }

    def load(self, state: dict[str, Any]) -> tuple[int, list[EpochMetrics], float]:
        if (
            state.get("format") != CHECKPOINT_FORMAT
            or state.get("kind") != CHECKPOINT_KIND
            or state.get("fingerprint") != self.config.fingerprint()
        ):
            raise ConfigError(
                "the checkpoint was not written by an adapt_head run with these settings "
                f"(fingerprint {self.config.fingerprint()}); use another checkpoint path "
                "or delete it."
            )
        start = state["epoch"] + 1
        if start > self.config.epochs:
            self.start_head()
        self.model.load_state_dict(state["model"])
        self.search.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.search.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        if self.head_optimizer is not None and state["head_optimizer"] is not None:
            self.head_optimizer.load_state_dict(state["head_optimizer"])
        restore_random_state(state, self.search.generator, self.device)
        history = [EpochMetrics.from_dict(m) for m in state["history"]]
        return start, history, float(state["elapsed"])


def run(
    config: SearchConfig,
    *,
    data: LongTailData | None = None,
    on_epoch: EpochCallback | None = None,
    checkpoint: str | Path | None = None,
    on_resume: Callable[[list[EpochMetrics]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_step: StepHook | None = None,
) -> SearchResult:
    """Runs adapt_head: `epochs` of DARTS search on the balanced source, then
    `head_epochs` of head retraining on the long-tailed target; `hls_tune.engine.run_search`
    calls this for `method = "adapt_head"` and the arguments mean what they mean there.

    Args:
        config: the engine settings (method adapt_head).
        data: the prepared long-tailed target (default: built from `config.data`).
        on_epoch: called after every epoch of both phases (epoch indices 0 ..
            epochs + head_epochs − 1); returning False stops the run.
        checkpoint: file written after every epoch; when it exists the run resumes from it.
        on_resume: called once with the restored epochs' metrics when resuming.
        should_stop: polled before every step; True raises SearchInterrupted.
        on_step: called after every step of both phases (progress bars).

    Raises:
        NonFiniteLossError: the loss became NaN/inf.
        SearchInterrupted: `should_stop` asked the run to stop.
        ConfigError: bad settings or data, or a checkpoint of a different run.

    Example:
        >>> from hls_tune.engine.settings import DataConfig, SearchConfig
        >>> cfg = SearchConfig(method="adapt_head", channels=4, layers=3, epochs=1,
        ...                    head_epochs=1, batch_size=32, flip=False,
        ...                    data=DataConfig(max_per_class=40))
        >>> result = run(cfg)  # doctest: +SKIP
        >>> len(result.history)  # doctest: +SKIP
        2
    """
    if config.method != "adapt_head":
        raise ConfigError(f"adapt.run needs method = 'adapt_head' but got {config.method!r}.")
    device = resolve_device(config.device)
    target = data if data is not None else prepare_data(config.data)
    adaptation = _Adaptation(config, balanced_source(config, target), target, device)
    adaptation.search.should_stop = should_stop
    adaptation.should_stop = should_stop
    adaptation.search.on_step = on_step
    adaptation.on_step = on_step

    def start_head(epoch: int) -> None:
        if epoch == config.epochs and adaptation.head_optimizer is None:
            adaptation.start_head()

    def test_metrics() -> dict[str, Any]:
        figures = longtail_metrics(
            adaptation.model, adaptation.test, target, config.eval_batch_size
        )
        return {
            "test_accuracy": figures.accuracy,
            "test_balanced_accuracy": figures.balanced_accuracy,
            "test_per_class_accuracy": figures.per_class_accuracy,
            "shot_accuracy": figures.shot_accuracy,
        }

    return run_epochs(
        adaptation,
        config,
        config.total_epochs,
        checkpoint=checkpoint,
        on_epoch=on_epoch,
        on_resume=on_resume,
        test_metrics=test_metrics,
        before_epoch=start_head,
    )
