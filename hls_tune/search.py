"""One BBN-DARTS / DARTS search: alternating weight and α steps with HLS learning rates.

`run(config)` returns a `SearchResult`; progress goes to an `on_epoch(EpochMetrics) -> bool`
callback ("keep going?"), a checkpoint is written after every epoch and a run resumes from
it exactly (RNG states included). This module knows nothing of Optuna.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.data import (
    DeviceImages,
    InstanceStream,
    LongTailData,
    build_longtail,
    load_source,
)
from hls_tune.errors import ConfigError, NonFiniteLossError, SearchInterrupted
from hls_tune.nas.fused import (
    FusedBbnDartsSupernet,
    FusedDartsSupernet,
    amp_dtype,
    autocast,
    compile_cells,
)
from hls_tune.nas.genotype import Genotype
from hls_tune.nas.supernet import BbnDartsSupernet, DartsSupernet, Supernet
from hls_tune.safe_io import atomic_write
from hls_tune.schedules import ALPHA_GROUPS
from hls_tune.settings import DataConfig, SearchConfig

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class EpochMetrics:
    """What one finished epoch hands to the callback.

    Args:
        epoch: index of the finished epoch (0-based).
        epochs: the epoch budget.
        train_loss: mean training loss of the weight steps.
        train_accuracy: mean training accuracy of the weight steps (BBN: μ-weighted).
        val_accuracy: top-1 on the held-out (long-tailed) validation split.
        val_balanced_accuracy: mean per-class accuracy on the validation split.
        val_per_class_accuracy: per-class validation accuracy.
        mixing_ratio: μ at the start of the epoch (None for plain methods).
        alpha_lrs: each α group's learning rate at the start of the epoch.
        alphas: softmaxed op weights per group at the end of the epoch (edges × ops).
        genotype: the genotype derived at the end of the epoch.
        seconds: wall time of the epoch (training and validation).
    """

    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float
    val_balanced_accuracy: float
    val_per_class_accuracy: tuple[float, ...]
    mixing_ratio: float | None
    alpha_lrs: dict[str, float]
    alphas: dict[str, list[list[float]]]
    genotype: Genotype
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the genotype as its dict)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["genotype"] = self.genotype.to_dict()
        values["val_per_class_accuracy"] = list(self.val_per_class_accuracy)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EpochMetrics:
        """Inverse of `to_dict`."""
        values = dict(values)
        values["genotype"] = Genotype.from_dict(values["genotype"])
        values["val_per_class_accuracy"] = tuple(values["val_per_class_accuracy"])
        return cls(**values)


@dataclass(frozen=True)
class SearchResult:
    """The outcome of one search.

    The test-set figures are None when the run was stopped early by the callback: the
    balanced test set is for final reporting only, never for pruning or selection.
    """

    config: SearchConfig
    genotype: Genotype
    history: tuple[EpochMetrics, ...]
    stopped_early: bool
    resumed_from_epoch: int | None
    seconds: float
    test_accuracy: float | None = None
    test_balanced_accuracy: float | None = None
    test_per_class_accuracy: tuple[float, ...] | None = None
    shot_accuracy: dict[str, float] | None = None

    @property
    def val_accuracy(self) -> float:
        """Validation accuracy of the last epoch run."""
        return self.history[-1].val_accuracy if self.history else 0.0

    @property
    def val_balanced_accuracy(self) -> float:
        """Balanced validation accuracy of the last epoch run."""
        return self.history[-1].val_balanced_accuracy if self.history else 0.0

    def metrics(self) -> dict[str, Any]:
        """Final metrics as a JSON-ready dict (no per-epoch history)."""
        return {
            "method": self.config.method,
            "epochs_run": len(self.history),
            "stopped_early": self.stopped_early,
            "resumed_from_epoch": self.resumed_from_epoch,
            "val_accuracy": self.val_accuracy,
            "val_balanced_accuracy": self.val_balanced_accuracy,
            "test_accuracy": self.test_accuracy,
            "test_balanced_accuracy": self.test_balanced_accuracy,
            "test_per_class_accuracy": (
                list(self.test_per_class_accuracy) if self.test_per_class_accuracy else None
            ),
            "shot_accuracy": self.shot_accuracy,
            "search_seconds": self.seconds,
        }


EpochCallback = Callable[[EpochMetrics], bool]


def resolve_device(device: str) -> torch.device:
    """`auto` → CUDA when available, else CPU; `cuda` without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device is {device!r} but no CUDA device is available; use cpu.")
    resolved = torch.device(device)
    if resolved.type == "cuda" and resolved.index is not None:
        count = torch.cuda.device_count()
        if resolved.index >= count:
            raise ConfigError(
                f"device is {device!r} but this machine has {count} CUDA device(s) "
                f"(cuda:0 to cuda:{count - 1}); use one of them, cuda or cpu."
            )
    return resolved


@functools.lru_cache(maxsize=4)
def prepare_data(data: DataConfig) -> LongTailData:
    """Loads the source and builds the long-tailed splits (cached per process)."""
    source = load_source(
        data.dataset,
        data.root,
        image_size=data.image_size,
        download=data.download,
        test_per_class=data.test_per_class,
        seed=data.seed,
    )
    return build_longtail(
        source,
        imbalance_ratio=data.imbalance_ratio,
        profile=data.profile,
        val_fraction=data.val_fraction,
        alpha_fraction=data.alpha_fraction,
        seed=data.seed,
        many_above=data.many_above,
        few_below=data.few_below,
        max_per_class=data.max_per_class,
    )


def build_supernet(config: SearchConfig, in_channels: int, num_classes: int) -> Supernet:
    """The supernet for the config's method (BBN for bbn_darts and hls, plain otherwise);
    the fused implementation when `config.fused`, else the per-op reference."""
    common = dict(
        in_channels=in_channels,
        num_classes=num_classes,
        channels=config.channels,
        layers=config.layers,
        nodes=config.nodes,
        partial_channels=config.partial_channels,
    )
    if config.is_bbn:
        bbn = FusedBbnDartsSupernet if config.fused else BbnDartsSupernet
        return bbn(**common, head_cells=config.head_cells)
    return (FusedDartsSupernet if config.fused else DartsSupernet)(**common)


def class_loss_weights(train_counts: torch.Tensor, kind: str, beta: float) -> torch.Tensor:
    """Per-class loss weights normalised to mean 1: inverse frequency or effective number."""
    counts = train_counts.double()
    if kind == "inverse":
        weights = 1.0 / counts
    else:
        weights = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts))
    return (weights / weights.mean()).float()


class _Batches:
    """The batch streams of one split: an instance stream (epoch permutations) and,
    for BBN and re-sampling, a class-sampled stream; both gathered in one pass."""

    def __init__(
        self,
        images: DeviceImages,
        config: SearchConfig,
        generator: torch.Generator,
    ) -> None:
        self.images = images
        self.config = config
        self.generator = generator
        self.instances = InstanceStream(images, generator)

    def new_epoch(self) -> None:
        """Starts a fresh permutation, so that an epoch depends only on the RNG state."""
        self.instances.new_epoch()

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(x, y) of the main stream and, for BBN, (x_r, y_r) of the reversed stream."""
        n, method = self.config.batch_size, self.config.method
        if method == "darts_resample":
            indices = self.images.sample("class_balanced", n, self.generator)
        else:
            indices = self.instances.take(n)
        if method in ("bbn_darts", "hls"):
            indices = torch.cat([indices, self.images.sample("reversed", n, self.generator)])
        x, y = self.images.gather(
            indices,
            augment=True,
            generator=self.generator,
            crop_padding=self.config.crop_padding,
            flip=self.config.flip,
            cutout=self.config.cutout,
        )
        if len(indices) == n:
            return x, y, None, None
        return x[:n], y[:n], x[n:], y[n:]


def _loss_and_accuracy(
    model: Supernet,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None],
    mixing_ratio: float | None,
    class_weights: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, x_r, y_r = batch
    if isinstance(model, BbnDartsSupernet):
        assert x_r is not None and y_r is not None and mixing_ratio is not None
        logits = model.mixed_logits(x, x_r, mixing_ratio)
        loss = mixing_ratio * F.cross_entropy(logits, y) + (1.0 - mixing_ratio) * (
            F.cross_entropy(logits, y_r)
        )
        predicted = logits.argmax(1)
        accuracy = mixing_ratio * (predicted == y).float().mean() + (1.0 - mixing_ratio) * (
            (predicted == y_r).float().mean()
        )
        return loss, accuracy.detach()
    logits = model(x)
    loss = F.cross_entropy(logits, y, weight=class_weights)
    return loss, (logits.argmax(1) == y).float().mean().detach()


@torch.no_grad()
def evaluate(
    model: nn.Module, images: DeviceImages, num_classes: int, batch_size: int
) -> tuple[float, float, tuple[float, ...]]:
    """Top-1, balanced (mean per-class) accuracy and per-class accuracy on a split."""
    was_training = model.training
    model.eval()
    correct = torch.zeros(num_classes, device=images.labels.device)
    total = torch.zeros(num_classes, device=images.labels.device)
    for x, y in images.batches_for_eval(batch_size):
        hit = (model(x).argmax(1) == y).float()
        correct.index_add_(0, y, hit)
        total.index_add_(0, y, torch.ones_like(hit))
    model.train(was_training)
    per_class = (correct / total.clamp(min=1)).tolist()
    present = [acc for acc, n in zip(per_class, total.tolist(), strict=True) if n > 0]
    top1 = float(correct.sum() / total.sum().clamp(min=1))
    balanced = sum(present) / max(1, len(present))
    return top1, balanced, tuple(per_class)


def _cosine_weight_lr(config: SearchConfig, epoch: int) -> float:
    # Stepped per epoch like DARTS' CosineAnnealingLR(T_max=epochs, eta_min=weight_lr_min).
    progress = epoch / config.epochs
    return config.weight_lr_min + 0.5 * (config.weight_lr - config.weight_lr_min) * (
        1.0 + math.cos(math.pi * progress)
    )


def alpha_learning_rates(
    config: SearchConfig, progress: float, groups: tuple[str, ...]
) -> dict[str, float]:
    """Each α group's learning rate at training progress t (SPEC §4, §6).

    `hls` follows the schedule (shape × coupling); every other method uses one constant
    α learning rate for all groups.
    """
    if config.method == "hls":
        return config.schedule.alpha_lrs(config.alpha_lr, progress, groups)
    return dict.fromkeys(groups, config.alpha_lr)


def _mixing_ratio(config: SearchConfig, progress: float) -> float | None:
    return config.schedule.mixing_ratio(progress) if config.is_bbn else None


class _Search:
    """The state of one running search; `run` is its only user."""

    def __init__(self, config: SearchConfig, data: LongTailData, device: torch.device) -> None:
        self.should_stop: Callable[[], bool] | None = None
        self.config = config
        self.data = data
        self.device = device
        torch.manual_seed(config.seed)
        self.model = build_supernet(config, data.in_channels, data.num_classes).to(device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if config.compile and device.type == "cuda":
            compile_cells(self.model)
        self.amp_dtype = amp_dtype(config.amp, device)
        self.groups = tuple(g for g in ALPHA_GROUPS if g in self.model.group_names)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        split = {
            name: DeviceImages(getattr(data, name), device, data.mean, data.std)
            for name in ("weight", "alpha", "val", "test")
        }
        self.split = split
        self.weight_batches = _Batches(split["weight"], config, self.generator)
        self.alpha_batches = _Batches(split["alpha"], config, self.generator)
        self.steps_per_epoch = max(1, len(split["weight"]) // config.batch_size)
        self.weight_params = self.model.weight_parameters()
        self.weight_optimizer = torch.optim.SGD(
            self.weight_params,
            lr=config.weight_lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            # One fused update over the supernet's ~900 weight tensors instead of a Python
            # loop (PyTorch picks foreach only on CUDA by default): 4x less optimizer time
            # per step on CPU.
            foreach=True,
        )
        alpha_groups = self.model.alpha_groups()
        self.alpha_optimizer = torch.optim.Adam(
            [{"params": alpha_groups[g], "name": g} for g in self.groups],
            lr=config.alpha_lr,
            betas=config.alpha_betas,
            weight_decay=config.alpha_weight_decay,
        )
        self.arch_params = self.model.architecture_parameters()
        self.class_weights = None
        if config.method == "darts_reweight":
            counts = torch.tensor(data.train_counts, device=device)
            self.class_weights = class_loss_weights(counts, config.reweight, config.reweight_beta)

    # --- checkpoints -------------------------------------------------------------------
    def state(self, epoch: int, history: list[EpochMetrics], elapsed: float) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self.config.fingerprint(),
            "epoch": epoch,
            "model": self.model.state_dict(),
            "weight_optimizer": self.weight_optimizer.state_dict(),
            "alpha_optimizer": self.alpha_optimizer.state_dict(),
            **random_state(self.generator, self.device),
            "history": [m.to_dict() for m in history],
            "elapsed": elapsed,
        }

    def load(self, state: dict[str, Any]) -> tuple[int, list[EpochMetrics], float]:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(f"checkpoint format {state.get('format')!r} is not supported.")
        if state["fingerprint"] != self.config.fingerprint():
            raise ConfigError(
                "the checkpoint was written by a search with different settings "
                f"(fingerprint {state['fingerprint']} != {self.config.fingerprint()}); "
                "use another checkpoint path or delete it."
            )
        self.model.load_state_dict(state["model"])
        self.weight_optimizer.load_state_dict(state["weight_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        restore_random_state(state, self.generator, self.device)
        history = [EpochMetrics.from_dict(m) for m in state["history"]]
        return state["epoch"] + 1, history, float(state["elapsed"])

    # --- steps ---------------------------------------------------------------------------
    def alpha_step(self, batch: Any, weight_batch: Any, mixing_ratio: float | None) -> None:
        self.alpha_optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp_dtype):
            if self.config.second_order:
                grads = self._unrolled_alpha_grads(batch, weight_batch, mixing_ratio)
            else:
                loss, _ = _loss_and_accuracy(self.model, batch, mixing_ratio, self.class_weights)
                # Only α gradients: the weight gradients of this pass are never used.
                grads = torch.autograd.grad(loss, self.arch_params)
        for param, grad in zip(self.arch_params, grads, strict=True):
            param.grad = grad
        self.alpha_optimizer.step()

    def _unrolled_alpha_grads(
        self, alpha_batch: Any, weight_batch: Any, mixing_ratio: float | None
    ) -> list[torch.Tensor]:
        """DARTS second-order α gradient: one virtual SGD step w' = w − ξ∇w L_train, then
        ∇α L_val(w') − ξ · finite-difference Hessian-vector product (r = 0.01/‖v‖)."""
        model, weights, cw = self.model, self.weight_params, self.class_weights
        xi = self.weight_optimizer.param_groups[0]["lr"]
        momentum, decay = self.config.momentum, self.config.weight_decay
        saved = [w.detach().clone() for w in weights]
        loss, _ = _loss_and_accuracy(model, weight_batch, mixing_ratio, cw)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        with torch.no_grad():
            for w, g in zip(weights, grads, strict=True):
                buf = self.weight_optimizer.state.get(w, {}).get("momentum_buffer")
                step = (0 if g is None else g) + decay * w
                if buf is not None:
                    step = step + momentum * buf
                w.sub_(xi * step)
        loss, _ = _loss_and_accuracy(model, alpha_batch, mixing_ratio, cw)
        both = torch.autograd.grad(loss, self.arch_params + weights, allow_unused=True)
        alpha_grads = list(both[: len(self.arch_params)])
        v = [
            torch.zeros_like(w) if g is None else g
            for w, g in zip(weights, both[len(self.arch_params) :], strict=True)
        ]
        r = 0.01 / torch.sqrt(sum((g * g).sum() for g in v)).clamp(min=1e-12)
        hessian = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, s, g in zip(weights, saved, v, strict=True):
                    w.copy_(s + sign * r * g)
            loss, _ = _loss_and_accuracy(model, weight_batch, mixing_ratio, cw)
            hessian.append(torch.autograd.grad(loss, self.arch_params))
        with torch.no_grad():
            for w, s in zip(weights, saved, strict=True):
                w.copy_(s)
        return [
            ga - xi * (gp - gn) / (2 * r)
            for ga, gp, gn in zip(alpha_grads, hessian[0], hessian[1], strict=True)
        ]

    def weight_step(
        self, batch: Any, mixing_ratio: float | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.weight_optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp_dtype):
            loss, accuracy = _loss_and_accuracy(self.model, batch, mixing_ratio, self.class_weights)
        loss.backward(inputs=self.weight_params)
        nn.utils.clip_grad_norm_(self.weight_params, self.config.grad_clip, foreach=True)
        self.weight_optimizer.step()
        return loss.detach(), accuracy

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        config, steps = self.config, self.steps_per_epoch
        for group in self.weight_optimizer.param_groups:
            group["lr"] = _cosine_weight_lr(config, epoch)
        losses = torch.zeros(steps, device=self.device)
        accuracies = torch.zeros(steps, device=self.device)
        self.model.train()
        self.weight_batches.new_epoch()
        self.alpha_batches.new_epoch()
        for step in range(steps):
            progress = (epoch * steps + step) / (config.epochs * steps)
            mixing_ratio = _mixing_ratio(config, progress)
            lrs = alpha_learning_rates(config, progress, self.groups)
            for group in self.alpha_optimizer.param_groups:
                group["lr"] = lrs[group["name"]]
            if self.should_stop is not None and self.should_stop():
                raise SearchInterrupted(epoch, step)
            weight_batch = self.weight_batches.next()
            self.alpha_step(self.alpha_batches.next(), weight_batch, mixing_ratio)
            losses[step], accuracies[step] = self.weight_step(weight_batch, mixing_ratio)
        # One host synchronisation per epoch: find the first non-finite step, if any.
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0])
            raise NonFiniteLossError(epoch, bad, float(losses[bad]))
        return float(losses.mean()), float(accuracies.mean())

    def epoch_metrics(
        self, epoch: int, train_loss: float, train_accuracy: float, seconds: float
    ) -> EpochMetrics:
        progress = epoch / self.config.epochs
        val_top1, val_balanced, val_per_class = evaluate(
            self.model, self.split["val"], self.data.num_classes, self.config.eval_batch_size
        )
        return EpochMetrics(
            epoch=epoch,
            epochs=self.config.epochs,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_accuracy=val_top1,
            val_balanced_accuracy=val_balanced,
            val_per_class_accuracy=val_per_class,
            mixing_ratio=_mixing_ratio(self.config, progress),
            alpha_lrs=alpha_learning_rates(self.config, progress, self.groups),
            alphas={g: p.cpu().tolist() for g, p in self.model.alpha_probabilities().items()},
            genotype=self.model.genotype(),
            seconds=seconds,
        )

    def test_metrics(self) -> dict[str, Any]:
        top1, balanced, per_class = evaluate(
            self.model, self.split["test"], self.data.num_classes, self.config.eval_batch_size
        )
        shots: dict[str, list[float]] = {}
        for acc, group in zip(per_class, self.data.shot_group, strict=True):
            shots.setdefault(group, []).append(acc)
        return {
            "test_accuracy": top1,
            "test_balanced_accuracy": balanced,
            "test_per_class_accuracy": per_class,
            "shot_accuracy": {g: sum(v) / len(v) for g, v in shots.items()},
        }


def random_state(generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """The checkpoint entries that make a resumed run draw the same random numbers: the
    run's batch generator, torch's CPU generator and, on CUDA, the device's."""
    state = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def restore_random_state(
    state: dict[str, Any], generator: torch.Generator, device: torch.device
) -> None:
    """Restores what `random_state` saved (a CUDA state only on a CUDA device)."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Writes a checkpoint atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Loads a checkpoint with `weights_only=True` (no pickled code is ever run)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # empty, truncated or hostile files; never retried unsafely
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = "it is empty" if path.is_file() and path.stat().st_size == 0 else first
        if "weights_only" in reason or "Weights only load failed" in reason:
            reason = "it holds objects other than tensors and plain data"
        raise ConfigError(
            f"checkpoint {path} cannot be resumed ({reason or type(error).__name__}); "
            "delete it to start over."
        ) from None


def run(
    config: SearchConfig,
    *,
    data: LongTailData | None = None,
    on_epoch: EpochCallback | None = None,
    checkpoint: str | Path | None = None,
    on_resume: Callable[[list[EpochMetrics]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SearchResult:
    """Runs one search and returns the derived genotype and its metrics.

    Args:
        config: the engine settings.
        data: prepared long-tailed data (default: built from `config.data`, cached).
        on_epoch: called after every epoch with its metrics; returning False stops the run
            (the checkpoint of that epoch is already written).
        checkpoint: file to write after every epoch; when it exists the run resumes from it.
        on_resume: called once with the restored epochs' metrics when resuming, so a caller
            can re-report what an interrupted run had already measured.
        should_stop: polled before every step (no device synchronisation); when it returns
            True the run raises SearchInterrupted and the last epoch checkpoint stands.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (names the epoch and step).
        SearchInterrupted: `should_stop` asked the run to stop.
        ConfigError: bad settings, data, or a checkpoint from a different configuration.

    Example:
        >>> from hls_tune.settings import SearchConfig, DataConfig
        >>> cfg = SearchConfig(method="hls", channels=4, layers=3, epochs=1, batch_size=32,
        ...                    data=DataConfig(image_size=8), flip=False)
        >>> result = run(cfg)  # doctest: +SKIP
        >>> result.genotype.normal[:2]  # doctest: +SKIP
    """
    if config.method == "adapt_head":  # a source search, then head retraining (SPEC §5)
        from hls_tune import adapt

        return adapt.run(
            config,
            data=data,
            on_epoch=on_epoch,
            checkpoint=checkpoint,
            on_resume=on_resume,
            should_stop=should_stop,
        )
    device = resolve_device(config.device)
    data = data if data is not None else prepare_data(config.data)
    search = _Search(config, data, device)
    search.should_stop = should_stop
    return run_epochs(
        search,
        config,
        config.epochs,
        checkpoint=checkpoint,
        on_epoch=on_epoch,
        on_resume=on_resume,
        test_metrics=search.test_metrics,
    )


def run_epochs(
    runner: Any,
    config: SearchConfig,
    total_epochs: int,
    *,
    checkpoint: str | Path | None,
    on_epoch: Callable[[EpochMetrics], bool | None] | None,
    on_resume: Callable[[list[EpochMetrics]], None] | None,
    test_metrics: Callable[[], dict[str, Any]],
    before_epoch: Callable[[int], None] | None = None,
) -> SearchResult:
    """The epoch loop shared by the search and adapt_head: resume, train, checkpoint, test.

    `runner` has `load(state) -> (start, history, elapsed)`, `train_epoch(epoch)`,
    `epoch_metrics(epoch, loss, accuracy, seconds)`, `state(epoch, history, elapsed)` and
    `model.genotype()`. The test set is evaluated (`test_metrics`) only when every epoch
    ran, never after `on_epoch` stopped the run.
    """
    start_epoch, history, elapsed = 0, [], 0.0
    checkpoint_path = Path(checkpoint) if checkpoint is not None else None
    resumed_from = None
    if checkpoint_path is not None and checkpoint_path.exists():
        start_epoch, history, elapsed = runner.load(load_checkpoint(checkpoint_path))
        resumed_from = start_epoch
        if on_resume is not None:
            on_resume(list(history))
    stopped = False
    for epoch in range(start_epoch, total_epochs):
        if before_epoch is not None:
            before_epoch(epoch)
        started = time.perf_counter()
        train_loss, train_accuracy = runner.train_epoch(epoch)
        metrics = runner.epoch_metrics(
            epoch, train_loss, train_accuracy, time.perf_counter() - started
        )
        history.append(metrics)
        elapsed += time.perf_counter() - started
        if checkpoint_path is not None:
            save_checkpoint(runner.state(epoch, history, elapsed), checkpoint_path)
        if on_epoch is not None and not on_epoch(metrics):
            stopped = epoch + 1 < total_epochs
            break
    genotype = history[-1].genotype if history else runner.model.genotype()
    test = {} if stopped or not history else test_metrics()
    return SearchResult(
        config=config,
        genotype=genotype,
        history=tuple(history),
        stopped_early=stopped,
        resumed_from_epoch=resumed_from,
        seconds=elapsed,
        **test,
    )
