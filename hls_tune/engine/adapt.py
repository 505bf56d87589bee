"""adapt_head (SPEC §5): adapt a balanced source supernet to the long-tailed target.

IMB-NAS' adaptation of a balanced super-network to a long-tailed target:

1. a plain DARTS search (weights and α, first order, as `search` does) on the balanced
   source. It depends only on the source settings, so it runs once: `source_supernet`
   keeps it in a content-addressed cache shared by every trial and target (one process
   builds it under an exclusive lock, the others wait and load it);
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

Choices **(ours)**: the balanced source is `data.dataset` with every class at the head
count, the target's validation and test images left out (so the metric that drives the
study is not measured on images the source search trained on); the cache key therefore
includes a digest of those held-out images, and targets that hold out the same images
share one source. The new head is freshly initialised (as in classifier re-training, and
needed when the source has other classes); a frozen backbone runs in eval mode (BatchNorm
keeps the source statistics), a fine-tuned one in train mode; target images are
normalised with the source's channel statistics, which the backbone was trained on. The
α phase uses the re-weighted loss in every mode (SPEC §5) and a constant `alpha_lr`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
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
from hls_tune.engine.data import (
    DeviceImages,
    InstanceStream,
    LongTailData,
    concat_images,
    load_source,
)
from hls_tune.engine.datasets import balanced_split, image_key, prepare_data
from hls_tune.engine.device import resolve_device
from hls_tune.engine.epochs import epoch_means, run_epochs
from hls_tune.engine.evaluation import evaluate, longtail_metrics
from hls_tune.engine.losses import class_loss_weights
from hls_tune.engine.progress import StepHook
from hls_tune.engine.results import EpochCallback, EpochMetrics, SearchResult
from hls_tune.engine.schedules import ALPHA_GROUPS
from hls_tune.engine.search import Search, alpha_optimizer, build_supernet, weight_optimizer
from hls_tune.engine.settings import DataConfig, SearchConfig
from hls_tune.errors import ConfigError, SearchInterrupted

CHECKPOINT_FORMAT = 2
CHECKPOINT_KIND = "adapt_head"
SOURCE_FORMAT = 1
SOURCE_KIND = "adapt_source"
# The settings that determine the source search (with a digest of the target's held-out
# images): every other setting (adapt_mode, head_epochs, reweight, the imbalance ratio, the
# execution settings ...) only concerns the target, so targets share one source.
SOURCE_SETTINGS = (
    "channels", "layers", "nodes", "partial_channels", "epochs", "batch_size", "weight_lr",
    "weight_lr_min", "momentum", "weight_decay", "grad_clip", "alpha_lr", "alpha_betas",
    "alpha_weight_decay", "second_order", "crop_padding", "flip", "cutout", "seed",
    "source_dataset", "source_root",
)  # fmt: skip
SOURCE_DATA_SETTINGS = (
    "dataset", "root", "image_size", "download", "test_per_class", "seed", "val_fraction",
    "alpha_fraction", "max_per_class",
)  # fmt: skip
EXECUTION_SETTINGS = ("device", "fused", "channels_last", "amp", "compile", "eval_batch_size")


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
    return balanced_split(source, data, target)


def source_config(config: SearchConfig) -> SearchConfig:
    """The plain DARTS search config of the source: only the source settings of `config`
    (and its execution settings); everything that concerns the target at its default."""
    data = DataConfig(**{k: getattr(config.data, k) for k in SOURCE_DATA_SETTINGS})
    values = {k: getattr(config, k) for k in (*SOURCE_SETTINGS, *EXECUTION_SETTINGS)}
    return SearchConfig(method="darts", data=data, **values)


def source_key(config: SearchConfig, target: LongTailData) -> str:
    """The cache key of the source search: a hash of exactly what determines it (the
    source settings and the set of target images it must leave out)."""
    settings = source_config(config).to_dict()
    for key in EXECUTION_SETTINGS:
        settings.pop(key)
    held_out = hashlib.sha256()
    for key in sorted(image_key(image) for image in concat_images(target.val, target.test).images):
        held_out.update(key)
    settings["held_out_images"] = held_out.hexdigest()
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclasses.dataclass(frozen=True)
class SourceSupernet:
    """The balanced source search's supernet, as the cache holds it.

    Args:
        key: `source_key` of the settings it was searched with.
        state: the supernet's state dict (weights and α, source classifier).
        in_channels: image channels of the source.
        num_classes: classes of the source.
        mean: per-channel mean the source images were normalised with.
        std: per-channel standard deviation, likewise.
        history: the source search's `EpochMetrics.to_dict()` per epoch (validated on the
            source's own validation split).
        seconds: the source search's time.
        built: whether this call searched it (False: loaded from the cache).
    """

    key: str
    state: dict[str, torch.Tensor]
    in_channels: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    history: list[dict[str, Any]]
    seconds: float
    built: bool

    def summary(self) -> dict[str, Any]:
        """A small JSON-ready summary: key, built, epochs, seconds and genotype."""
        return {
            "key": self.key,
            "built": self.built,
            "epochs": len(self.history),
            "seconds": self.seconds,
            "genotype": self.history[-1]["genotype"] if self.history else None,
        }

    def to_state(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values.pop("built")
        return {"format": SOURCE_FORMAT, "kind": SOURCE_KIND, **values}

    @classmethod
    def from_state(cls, state: dict[str, Any], key: str) -> SourceSupernet:
        if (
            state.get("format") != SOURCE_FORMAT
            or state.get("kind") != SOURCE_KIND
            or state.get("key") != key
        ):
            raise ConfigError(
                f"the cached source supernet {key} was not written by this version; delete it."
            )
        values = {f.name: state[f.name] for f in dataclasses.fields(cls) if f.name != "built"}
        values["mean"], values["std"] = tuple(values["mean"]), tuple(values["std"])
        return cls(**values, built=False)


def _search_source(
    config: SearchConfig,
    target: LongTailData,
    key: str,
    device: torch.device,
    checkpoint: Path | None,
    should_stop: Callable[[], bool] | None,
) -> SourceSupernet:
    """Runs the source search (resuming a dead builder's `checkpoint` when there is one)."""
    darts = source_config(config)
    source = balanced_source(config, target)
    search = Search(darts, source, device)
    search.should_stop = should_stop
    result = run_epochs(
        search,
        darts,
        darts.epochs,
        checkpoint=checkpoint,
        on_epoch=None,
        on_resume=None,
        test_metrics=dict,
    )
    return SourceSupernet(
        key=key,
        state={k: v.detach().cpu() for k, v in search.model.state_dict().items()},
        in_channels=source.in_channels,
        num_classes=source.num_classes,
        mean=tuple(source.mean),
        std=tuple(source.std),
        history=[m.to_dict() for m in result.history],
        seconds=result.seconds,
        built=True,
    )


def source_supernet(
    config: SearchConfig,
    target: LongTailData,
    *,
    cache_dir: str | Path | None,
    device: torch.device,
    should_stop: Callable[[], bool] | None = None,
    poll_seconds: float = 0.5,
) -> SourceSupernet:
    """The balanced source supernet of an adapt_head run: loaded from `cache_dir` when
    it holds one for these source settings, else searched and stored there.

    Safe for concurrent processes on one file system: the builder holds an exclusive
    `fcntl.flock` on `source-KEY.lock` (the kernel releases it when the builder dies, so
    a lock never goes stale), writes `source-KEY.pt` by an atomic rename, and
    checkpoints its search in `source-KEY.partial.pt` after every epoch; the others wait
    for the lock, then load the finished file, or resume the search of a builder that
    died. Without `cache_dir` the source is searched in memory.

    Raises:
        SearchInterrupted: `should_stop` asked to stop (while waiting or searching).
        ConfigError: bad source settings, or a cache file of another format.
    """
    key = source_key(config, target)
    if cache_dir is None:
        return _search_source(config, target, key, device, None, should_stop)
    directory = Path(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"source-{key}.pt"
    while True:
        if final.exists():
            return SourceSupernet.from_state(load_checkpoint(final), key)
        descriptor = os.open(directory / f"source-{key}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process is building it
                if should_stop is not None and should_stop():
                    raise SearchInterrupted(0, 0) from None
                time.sleep(poll_seconds)
                continue
            if final.exists():  # built while this process waited
                continue
            partial = directory / f"source-{key}.partial.pt"
            built = _search_source(config, target, key, device, partial, should_stop)
            save_checkpoint(built.to_state(), final)
            partial.unlink(missing_ok=True)
            return built
        finally:
            os.close(descriptor)  # releases the lock


class _Adaptation:
    """The state of one adaptation run; `run` is its only user."""

    def __init__(
        self,
        config: SearchConfig,
        source: SourceSupernet,
        target: LongTailData,
        device: torch.device,
    ) -> None:
        self.config = config
        self.source = source
        self.target = target
        self.device = device
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
        self.weight_optimizer = weight_optimizer(self.trainable, config)
        self.alpha_optimizer = alpha_optimizer(self.model, self.groups, config)
        self.should_stop: Callable[[], bool] | None = None
        self.on_step: StepHook | None = None

    def phase(self, epoch: int) -> str:
        """ "evaluate" (adapt_mode none), "weights" or "alpha"."""
        if self.config.adapt_mode == "none":
            return "evaluate"
        return "weights" if epoch < self.config.head_epochs else "alpha"

    def _weight_lr(self, epoch: int) -> float:
        config = self.config
        return config.weight_lr_min + 0.5 * (config.weight_lr - config.weight_lr_min) * (
            1.0 + math.cos(math.pi * epoch / config.head_epochs)
        )

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

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One adaptation epoch: the weights (head or all), α, or (none) a pass that only
        measures the training loss."""
        phase = self.phase(epoch)
        config = self.config
        weights_phase = phase == "weights"
        for parameter in self.trainable:
            parameter.requires_grad_(weights_phase)
        for parameter in self.arch_params:
            parameter.requires_grad_(phase == "alpha")
        self.model.train(weights_phase and self.finetune)
        if weights_phase:
            for group in self.weight_optimizer.param_groups:
                group["lr"] = self._weight_lr(epoch)
            images, stream, steps = self.weight_images, self.weight_stream, self.weight_steps
            loss_weights = self.weight_loss_weights
        else:
            images, stream, steps = self.alpha_images, self.alpha_stream, self.alpha_steps
            loss_weights = self.class_weights
        stream.new_epoch()
        losses = torch.zeros(steps, device=self.device)
        accuracies = torch.zeros(steps, device=self.device)
        for step in range(steps):
            if self.should_stop is not None and self.should_stop():
                raise SearchInterrupted(epoch, step)
            x, y = self._batch(images, stream)
            with torch.set_grad_enabled(phase != "evaluate"):
                logits = self.model(x)
                loss = F.cross_entropy(logits, y, weight=loss_weights)
            if weights_phase:
                self.weight_optimizer.zero_grad(set_to_none=True)
                loss.backward(inputs=self.trainable)
                nn.utils.clip_grad_norm_(self.trainable, config.grad_clip)
                self.weight_optimizer.step()
            elif phase == "alpha":
                self.alpha_optimizer.zero_grad(set_to_none=True)
                grads = torch.autograd.grad(loss, self.arch_params)
                for parameter, grad in zip(self.arch_params, grads, strict=True):
                    parameter.grad = grad
                self.alpha_optimizer.step()
            losses[step] = loss.detach()
            accuracies[step] = (logits.argmax(1) == y).float().mean().detach()
            if self.on_step is not None:
                self.on_step(epoch, step + 1, steps, config.batch_size)
        return epoch_means(epoch, losses, accuracies)

    def epoch_metrics(
        self, epoch: int, train_loss: float, train_accuracy: float, seconds: float
    ) -> EpochMetrics:
        """The epoch's metrics, validated on the long-tailed target."""
        alpha_lr = self.config.alpha_lr if self.phase(epoch) == "alpha" else 0.0
        top1, balanced, per_class = evaluate(
            self.model, self.val, self.target.num_classes, self.config.eval_batch_size
        )
        return EpochMetrics(
            epoch=epoch,
            epochs=self.config.total_epochs,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_accuracy=top1,
            val_balanced_accuracy=balanced,
            val_per_class_accuracy=per_class,
            mixing_ratio=None,
            alpha_lrs=dict.fromkeys(self.groups, alpha_lr),
            alphas={g: p.cpu().tolist() for g, p in self.model.alpha_probabilities().items()},
            genotype=self.model.genotype(),
            seconds=seconds,
        )

    def state(self, epoch: int, history: list[EpochMetrics], elapsed: float) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": CHECKPOINT_KIND,
            "fingerprint": self.config.fingerprint(),
            "source_key": self.source.key,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
            **random_state(self.generator, self.device),
            "history": [m.to_dict() for m in history],
            "elapsed": elapsed,
        }

    def load(self, state: dict[str, Any]) -> tuple[int, list[EpochMetrics], float]:
        if (
            state.get("format") != CHECKPOINT_FORMAT
            or state.get("kind") != CHECKPOINT_KIND
            or state.get("fingerprint") != self.config.fingerprint()
            or state.get("source_key") != self.source.key
        ):
            raise ConfigError(
                "the checkpoint was not written by an adapt_head run with these settings "
                f"(fingerprint {self.config.fingerprint()}); use another checkpoint path "
                "or delete it."
            )
        self.model.load_state_dict(state["model"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        restore_random_state(state, self.generator, self.device)
        history = [EpochMetrics.from_dict(m) for m in state["history"]]
        return state["epoch"] + 1, history, float(state["elapsed"])


def run(
    config: SearchConfig,
    *,
    data: LongTailData | None = None,
    on_epoch: EpochCallback | None = None,
    checkpoint: str | Path | None = None,
    on_resume: Callable[[list[EpochMetrics]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    source_cache: str | Path | None = None,
    on_step: StepHook | None = None,
) -> SearchResult:
    """Runs adapt_head: the (cached) source search, then `config.total_epochs` epochs of
    adaptation on the long-tailed target; `hls_tune.engine.run_search` calls this for
    `method = "adapt_head"` and the arguments mean what they mean there.

    Args:
        config: the engine settings (method adapt_head).
        data: the prepared long-tailed target (default: built from `config.data`).
        on_epoch: called after every adaptation epoch (indices 0 .. total_epochs − 1);
            returning False stops the run.
        checkpoint: file written after every epoch; when it exists the run resumes from it.
        on_resume: called once with the restored epochs' metrics when resuming.
        should_stop: polled before every step; True raises SearchInterrupted.
        source_cache: directory of the shared source supernets (`source_supernet`); None
            searches the source in memory for this run only.
        on_step: called after every step of both phases (progress bars).

    Raises:
        NonFiniteLossError: the loss became NaN/inf.
        SearchInterrupted: `should_stop` asked the run to stop.
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
    device = resolve_device(config.device)
    target = data if data is not None else prepare_data(config.data)
    source = source_supernet(
        config, target, cache_dir=source_cache, device=device, should_stop=should_stop
    )
    adaptation = _Adaptation(config, source, target, device)
    adaptation.should_stop = should_stop
    adaptation.on_step = on_step

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

    result = run_epochs(
        adaptation,
        config,
        config.total_epochs,
        checkpoint=checkpoint,
        on_epoch=on_epoch,
        on_resume=on_resume,
        test_metrics=test_metrics,
    )
    return dataclasses.replace(result, source=source.summary())
