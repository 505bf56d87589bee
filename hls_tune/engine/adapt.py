"""adapt_head (SPEC §5): adapt a balanced source supernet to the long-tailed target.

IMB-NAS' adaptation of a balanced super-network to a long-tailed target:

1. a plain DARTS search (weights and α, first order, as `search` does) on the balanced
   source, run once per source and cached (`engine.source`);
2. `adapt_mode` adapts the weights on the target's weight split for `head_epochs`: a
   fresh linear head on the frozen supernet (`head_ce`, `head_reweight`), or every weight
   (`finetune`, `finetune_reweight`), with cross-entropy or the class-re-weighted loss
   (`reweight`: inverse frequency or effective number); `none` keeps the source
   supernet as it is;
3. an α phase of `adapt_alpha_epochs` on the target's α split (weights frozen, the
   re-weighted loss), so that the target chooses the architecture; the genotype is
   derived after it.

The run reports one `EpochMetrics` per adaptation epoch (validation on the target's
validation split) through the callback `search.run` uses and returns the same
`SearchResult`, with the source supernet's summary in `source`.

Choices **(ours)**: the new head is freshly initialised (as in classifier re-training, and
needed when the source has other classes); a frozen backbone runs in eval mode (BatchNorm
keeps the source statistics), a fine-tuned one in train mode; target images are
normalised with the source's channel statistics, which the backbone was trained on. The
α phase uses the re-weighted loss in every mode (SPEC §5) and a constant `alpha_lr`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine.checkpoint import CheckpointFile
from hls_tune.engine.data import DeviceImages, InstanceStream, LongTailData
from hls_tune.engine.datasets import prepare_data
from hls_tune.engine.device import resolve_device
from hls_tune.engine.epochs import RunHooks, epoch_means, run_epochs
from hls_tune.engine.evaluation import evaluate, longtail_metrics
from hls_tune.engine.losses import class_loss_weights
from hls_tune.engine.optim import cosine_lr, search_optimizers, set_lr
from hls_tune.engine.results import EpochMetrics, LongTailMetrics, SearchResult
from hls_tune.engine.schedules import ALPHA_GROUPS
from hls_tune.engine.search import (
    SearchParts,
    alpha_movement,
    alpha_snapshot,
    build_supernet,
    optimizer_rates,
    search_result,
)
from hls_tune.engine.settings import SearchConfig
from hls_tune.engine.source import SourceSupernet, source_config, source_supernet
from hls_tune.errors import ConfigError

# Bumped whenever the adaptation's checkpoint content changes meaning.
CHECKPOINT_FORMAT = 3


class _Adaptation(SearchParts):
    """The state of one adaptation run (an `epochs.EpochRunner`); `run` is its only user."""

    kind = "adapt_head"
    format = CHECKPOINT_FORMAT

    def __init__(
        self,
        config: SearchConfig,
        source: SourceSupernet,
        target: LongTailData,
        device: torch.device,
        hooks: RunHooks,
    ) -> None:
        self.config = config
        self.source = source
        self.target = target
        self.device = device
        self.hooks = hooks
        mode = config.adapt_mode
        if mode == "none" and source.num_classes != target.num_classes:
            raise ConfigError(
                f"adapt_mode = 'none' keeps the source classifier, but the source has "
                f"{source.num_classes} classes and the target {target.num_classes}; "
                "choose another adapt_mode."
            )
        torch.manual_seed(config.seed)
        model = build_supernet(source_config(config), source.in_channels, source.num_classes)
        model.load_state_dict(source.state)
        self.model = model.to(device)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        if mode != "none":
            features = self.model.classifier.in_features
            self.model.classifier = nn.Linear(features, target.num_classes).to(device)
        self.finetune = mode.startswith("finetune")
        self.trainable = (
            self.model.weight_parameters()
            if self.finetune
            else list(self.model.classifier.parameters())
        )
        self.arch_params = self.model.architecture_parameters()
        self.groups = tuple(g for g in ALPHA_GROUPS if g in self.model.group_names)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        mean, std = source.mean, source.std
        self.weight_images = DeviceImages(target.weight, device, mean, std)
        self.alpha_images = DeviceImages(target.alpha, device, mean, std)
        self.val = DeviceImages(target.val, device, mean, std)
        self.test = DeviceImages(target.test, device, mean, std)
        counts = torch.tensor(target.train_counts, device=device)
        self.class_weights = class_loss_weights(counts, config.reweight, config.reweight_beta)
        self.weight_loss_weights = self.class_weights if mode.endswith("reweight") else None
        self.weight_stream = InstanceStream(self.weight_images, self.generator)
        self.alpha_stream = InstanceStream(self.alpha_images, self.generator)
        self.weight_steps = max(1, len(self.weight_images) // config.batch_size)
        self.alpha_steps = max(1, len(self.alpha_images) // config.batch_size)
        self.weight_optimizer, self.alpha_optimizer = search_optimizers(
            config, self.trainable, self.model.alpha_groups(), self.groups
        )
        self._alpha_before = alpha_snapshot(self.model)

    # --- the run contract (epochs.EpochRunner) ------------------------------------------
    def identity(self) -> dict[str, Any]:
        return {"fingerprint": self.config.fingerprint(), "source_key": self.source.key}

    def phase(self, epoch: int) -> str:
        """ "evaluate" (adapt_mode none), "weights" or "alpha"."""
        if self.config.adapt_mode == "none":
            return "evaluate"
        return "weights" if epoch < self.config.head_epochs else "alpha"

    def _batch(self, images: DeviceImages, stream: InstanceStream) -> tuple[Any, Any]:
        config = self.config
        return images.gather(
            stream.take(config.batch_size),
            augment=True,
            generator=self.generator,
            crop_padding=config.crop_padding,
            flip=config.flip,
            cutout=config.cutout,
        )

    def _enter_phase(self, epoch: int, phase: str) -> tuple[DeviceImages, InstanceStream, int, Any]:
        """Sets what trains in `phase` (only the head or every weight, or only α, frozen
        BatchNorm statistics outside a fine-tuning phase) and returns its batches and loss
        weights."""
        config = self.config
        weights_phase = phase == "weights"
        for parameter in self.trainable:
            parameter.requires_grad_(weights_phase)
        for parameter in self.arch_params:
            parameter.requires_grad_(phase == "alpha")
        self.model.train(weights_phase and self.finetune)
        if weights_phase:
            lr = cosine_lr(config.weight_lr, config.weight_lr_min, epoch, config.head_epochs)
            set_lr(self.weight_optimizer, lr)
            return (
                self.weight_images,
                self.weight_stream,
                self.weight_steps,
                self.weight_loss_weights,
            )
        return self.alpha_images, self.alpha_stream, self.alpha_steps, self.class_weights

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One adaptation epoch: the weights (head or all), α, or (none) a pass that only
        measures the training loss."""
        phase = self.phase(epoch)
        images, stream, steps, loss_weights = self._enter_phase(epoch, phase)
        stream.new_epoch()
        self._alpha_before = alpha_snapshot(self.model)
        losses = torch.zeros(steps, device=self.device)
        accuracies = torch.zeros(steps, device=self.device)
        for step in range(steps):
            self.hooks.before_step(epoch, step)
            x, y = self._batch(images, stream)
            with torch.set_grad_enabled(phase != "evaluate"):
                logits = self.model(x)
                loss = F.cross_entropy(logits, y, weight=loss_weights)
            if phase == "weights":
                self.weight_optimizer.zero_grad(set_to_none=True)
                loss.backward(inputs=self.trainable)
                nn.utils.clip_grad_norm_(self.trainable, self.config.grad_clip)
                self.weight_optimizer.step()
            elif phase == "alpha":
                self.alpha_optimizer.zero_grad(set_to_none=True)
                grads = torch.autograd.grad(loss, self.arch_params)
                for parameter, grad in zip(self.arch_params, grads, strict=True):
                    parameter.grad = grad
                self.alpha_optimizer.step()
            losses[step] = loss.detach()
            accuracies[step] = (logits.argmax(1) == y).float().mean().detach()
            self.hooks.after_step(epoch, step + 1, steps, self.config.batch_size)
        return epoch_means(epoch, losses, accuracies)

    def epoch_record(
        self, epoch: int, train_loss: float, train_accuracy: float, seconds: float
    ) -> EpochMetrics:
        """The epoch's record, validated on the long-tailed target."""
        alpha_phase = self.phase(epoch) == "alpha"
        val = evaluate(self.model, self.val, self.target.num_classes, self.config.eval_batch_size)
        return EpochMetrics(
            epoch=epoch,
            epochs=self.config.total_epochs,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_accuracy=val.accuracy,
            val_balanced_accuracy=val.balanced_accuracy,
            val_per_class_accuracy=val.per_class_accuracy,
            mixing_ratio=None,
            alpha_lrs=(
                optimizer_rates(self.alpha_optimizer)
                if alpha_phase
                else dict.fromkeys(self.groups, 0.0)
            ),
            alphas={g: p.cpu().tolist() for g, p in self.model.alpha_probabilities().items()},
            genotype=self.model.genotype(),
            seconds=seconds,
            val_loss=val.loss,
            alpha_movement=alpha_movement(self.model, self._alpha_before),
        )

    def test_metrics(self) -> LongTailMetrics:
        """The adapted supernet's figures on the balanced test set."""
        return longtail_metrics(self.model, self.test, self.target, self.config.eval_batch_size)


def run(
    config: SearchConfig,
    *,
    data: LongTailData | None = None,
    hooks: RunHooks | None = None,
    checkpoint: str | Path | CheckpointFile | None = None,
    source_cache: str | Path | None = None,
) -> SearchResult:
    """Runs adapt_head: the (cached) source search, then `config.total_epochs` epochs of
    adaptation on the long-tailed target; `hls_tune.engine.run_search` calls this for
    `method = "adapt_head"` and the arguments mean what they mean there.

    Args:
        config: the engine settings (method adapt_head).
        data: the prepared long-tailed target (default: built from `config.data`).
        hooks: the caller's callbacks (`RunHooks`), for the adaptation epochs
            (indices 0 .. total_epochs − 1); the source search only answers `should_stop`.
        checkpoint: file written after every epoch; when it exists the run resumes from it.
        source_cache: directory of the shared source supernets (`source_supernet`); None
            searches the source in memory for this run only.

    Raises:
        NonFiniteLossError: the loss became NaN/inf.
        SearchInterrupted: `hooks.should_stop` asked the run to stop.
        ConfigError: bad settings or data, or a checkpoint of a different run.

    Example:
        >>> from hls_tune.engine.settings import DataConfig, SearchConfig
        >>> cfg = SearchConfig(method="adapt_head", channels=4, layers=3, epochs=1,
        ...                    head_epochs=1, adapt_alpha_epochs=1, batch_size=32,
        ...                    flip=False, data=DataConfig(max_per_class=40))
        >>> result = run(cfg, source_cache="sources")  # doctest: +SKIP
        >>> len(result.history), result.source["built"]  # doctest: +SKIP
        (2, True)
    """
    if config.method != "adapt_head":
        raise ConfigError(f"adapt.run needs method = 'adapt_head' but got {config.method!r}.")
    hooks = hooks or RunHooks()
    device = resolve_device(config.device)
    target = data if data is not None else prepare_data(config.data)
    source = source_supernet(config, target, cache_dir=source_cache, device=device, hooks=hooks)
    adaptation = _Adaptation(config, source, target, device, hooks)
    outcome = run_epochs(adaptation, config.total_epochs, CheckpointFile.of(checkpoint))
    return dataclasses.replace(search_result(config, adaptation, outcome), source=source.summary())
