"""One BBN-DARTS / DARTS search: alternating weight and α steps with HLS learning rates.

`run(config)` returns a `SearchResult`; progress goes to an `on_epoch(EpochMetrics) -> bool`
callback ("keep going?"), a checkpoint is written after every epoch and a run resumes from
it exactly (RNG states included). This module knows nothing of Optuna.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine.checkpoint import random_state, restore_random_state
from hls_tune.engine.data import DeviceImages, InstanceStream, LongTailData
from hls_tune.engine.datasets import prepare_data
from hls_tune.engine.device import resolve_device
from hls_tune.engine.epochs import epoch_means, run_epochs
from hls_tune.engine.evaluation import evaluate
from hls_tune.engine.losses import class_loss_weights
from hls_tune.engine.nas.fused import (
    FusedBbnDartsSupernet,
    FusedDartsSupernet,
    amp_dtype,
    autocast,
    compile_cells,
)
from hls_tune.engine.nas.supernet import BbnDartsSupernet, DartsSupernet, Supernet
from hls_tune.engine.progress import StepHook
from hls_tune.engine.results import EpochCallback, EpochMetrics, SearchResult
from hls_tune.engine.schedules import ALPHA_GROUPS, alpha_learning_rates
from hls_tune.engine.settings import SearchConfig
from hls_tune.errors import ConfigError, SearchInterrupted

CHECKPOINT_FORMAT = 1


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
        return bbn(**common, head_cells=config.head_cells, joint_batch=config.bbn_joint_batch)
    return (FusedDartsSupernet if config.fused else DartsSupernet)(**common)


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


def _cosine_weight_lr(config: SearchConfig, epoch: int) -> float:
    # Stepped per epoch like DARTS' CosineAnnealingLR(T_max=epochs, eta_min=weight_lr_min).
    progress = epoch / config.epochs
    return config.weight_lr_min + 0.5 * (config.weight_lr - config.weight_lr_min) * (
        1.0 + math.cos(math.pi * progress)
    )


def _mixing_ratio(config: SearchConfig, progress: float) -> float | None:
    return config.schedule.mixing_ratio(progress) if config.is_bbn else None


def weight_optimizer(params: list[nn.Parameter], config: SearchConfig) -> torch.optim.SGD:
    """SGD over a supernet's weights with the config's rate, momentum and decay."""
    return torch.optim.SGD(
        params,
        lr=config.weight_lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        # One fused update over the supernet's ~900 weight tensors instead of a Python
        # loop (PyTorch picks foreach only on CUDA by default): 4x less optimizer time
        # per step on CPU.
        foreach=True,
    )


def alpha_optimizer(
    model: nn.Module, groups: tuple[str, ...], config: SearchConfig
) -> torch.optim.Adam:
    """Adam over the α of each group in `groups`, one parameter group per α group, named
    after it (the per-group HLS rates set each group's `lr`)."""
    alphas = model.alpha_groups()
    return torch.optim.Adam(
        [{"params": alphas[g], "name": g} for g in groups],
        lr=config.alpha_lr,
        betas=config.alpha_betas,
        weight_decay=config.alpha_weight_decay,
    )


class Search:
    """The state of one running search: `run` drives it through `run_epochs`, and
    `adapt` reuses it for its source search."""

    def __init__(self, config: SearchConfig, data: LongTailData, device: torch.device) -> None:
        self.should_stop: Callable[[], bool] | None = None
        self.on_step: StepHook | None = None
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
        self.weight_optimizer = weight_optimizer(self.weight_params, config)
        self.alpha_optimizer = alpha_optimizer(self.model, self.groups, config)
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
        grads = self.alpha_gradients(batch, weight_batch, mixing_ratio)
        for param, grad in zip(self.arch_params, grads, strict=True):
            param.grad = grad
        self.alpha_optimizer.step()

    def alpha_gradients(
        self, batch: Any, weight_batch: Any, mixing_ratio: float | None
    ) -> list[torch.Tensor]:
        """The α gradient of one α step: first order under the `amp` autocast, or DARTS'
        unrolled second-order gradient, always in full precision.

        The unrolled gradient's finite-difference Hessian-vector product moves every weight
        by r·v with ‖r·v‖ = 0.01; spread over a supernet's ~1.9 M weights that step is
        below bf16 resolution, so under bf16 autocast the difference of the two gradients
        is rounding noise. It therefore runs with autocast off whatever `amp` says.
        """
        if self.config.second_order:
            with torch.autocast(self.device.type, enabled=False):
                return self._unrolled_alpha_grads(batch, weight_batch, mixing_ratio)
        with autocast(self.device, self.amp_dtype):
            loss, _ = _loss_and_accuracy(self.model, batch, mixing_ratio, self.class_weights)
            # Only α gradients: the weight gradients of this pass are never used.
            return list(torch.autograd.grad(loss, self.arch_params))

    def _unrolled_alpha_grads(
        self, alpha_batch: Any, weight_batch: Any, mixing_ratio: float | None
    ) -> list[torch.Tensor]:
        """DARTS second-order α gradient: one virtual SGD step w' = w − ξ∇w L_train, then
        ∇α L_val(w') − ξ · (∇²_{α,w} L_train) v with v = ∇w' L_val(w')."""
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
        with torch.no_grad():
            for w, s in zip(weights, saved, strict=True):
                w.copy_(s)
        hessian = self.hessian_vector_product(weight_batch, v, mixing_ratio)
        return [ga - xi * h for ga, h in zip(alpha_grads, hessian, strict=True)]

    def hessian_vector_product(
        self,
        weight_batch: Any,
        v: list[torch.Tensor],
        mixing_ratio: float | None,
        *,
        step: float = 0.01,
    ) -> list[torch.Tensor]:
        """(∇²_{α,w} L_train) v at the current weights, by DARTS' central difference:
        (∇α L_train(w + r v) − ∇α L_train(w − r v)) / 2r with r = step/‖v‖ (DARTS: 0.01).
        The weights are restored afterwards; the caller chooses the precision (see
        `alpha_gradients`).
        """
        model, weights, cw = self.model, self.weight_params, self.class_weights
        saved = [w.detach().clone() for w in weights]
        r = step / torch.sqrt(sum((g * g).sum() for g in v)).clamp(min=1e-12)
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
        return [(gp - gn) / (2 * r) for gp, gn in zip(hessian[0], hessian[1], strict=True)]

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
            if epoch >= config.alpha_start_epoch:  # α warm-up: α frozen before that epoch
                self.alpha_step(self.alpha_batches.next(), weight_batch, mixing_ratio)
            losses[step], accuracies[step] = self.weight_step(weight_batch, mixing_ratio)
            if self.on_step is not None:
                self.on_step(epoch, step + 1, steps, config.batch_size)
        return epoch_means(epoch, losses, accuracies)

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
    """Runs one plain search (every method but adapt_head, which `hls_tune.engine.run_search`
    hands to `adapt.run`) and returns the derived genotype and its metrics.

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
        on_step: called after every step with (epoch, step, steps, images); for progress
            bars, so it must be cheap.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (names the epoch and step).
        SearchInterrupted: `should_stop` asked the run to stop.
        ConfigError: bad settings, data, or a checkpoint from a different configuration.

    Example:
        >>> from hls_tune.engine.settings import SearchConfig, DataConfig
        >>> cfg = SearchConfig(method="hls", channels=4, layers=3, epochs=1, batch_size=32,
        ...                    data=DataConfig(image_size=8), flip=False)
        >>> result = run(cfg)  # doctest: +SKIP
        >>> result.genotype.normal[:2]  # doctest: +SKIP
    """
    device = resolve_device(config.device)
    data = data if data is not None else prepare_data(config.data)
    search = Search(config, data, device)
    search.should_stop = should_stop
    search.on_step = on_step
    return run_epochs(
        search,
        config,
        config.epochs,
        checkpoint=checkpoint,
        on_epoch=on_epoch,
        on_resume=on_resume,
        test_metrics=search.test_metrics,
    )
