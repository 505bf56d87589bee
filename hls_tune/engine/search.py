"""One BBN-DARTS / DARTS search: alternating weight and α steps with HLS learning rates.

`run(config)` returns a `SearchResult`; progress goes to an `on_epoch(EpochMetrics) -> bool`
callback ("keep going?"), a checkpoint is written after every epoch and a run resumes from
it exactly (RNG states included). This module knows nothing of Optuna.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hls_tune.engine.checkpoint import CheckpointFile
from hls_tune.engine.data import DeviceImages, InstanceStream, LongTailData
from hls_tune.engine.datasets import prepare_data
from hls_tune.engine.device import amp_dtype, autocast, resolve_device
from hls_tune.engine.epochs import RunHooks, RunOutcome, epoch_means, run_epochs
from hls_tune.engine.evaluation import evaluate, longtail_metrics
from hls_tune.engine.losses import bbn_mixed_loss, class_loss_weights
from hls_tune.engine.nas.fused import FusedBbnDartsSupernet, FusedDartsSupernet, compile_cells
from hls_tune.engine.nas.supernet import BbnDartsSupernet, DartsSupernet, Supernet
from hls_tune.engine.optim import cosine_lr, search_optimizers, set_lr
from hls_tune.engine.results import EpochMetrics, LongTailMetrics, SearchResult
from hls_tune.engine.schedules import ALPHA_GROUPS, alpha_learning_rates, alpha_progress
from hls_tune.engine.settings import SearchConfig


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


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]


def _loss_and_accuracy(
    model: Supernet, batch: Batch, mixing_ratio: float | None, class_weights: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The step's loss, its accuracy and (BBN) the two branches' loss terms."""
    x, y, x_r, y_r = batch
    if isinstance(model, BbnDartsSupernet):
        assert x_r is not None and y_r is not None and mixing_ratio is not None
        return bbn_mixed_loss(model.mixed_logits(x, x_r, mixing_ratio), y, y_r, mixing_ratio)
    logits = model(x)
    loss = F.cross_entropy(logits, y, weight=class_weights)
    return loss, (logits.argmax(1) == y).float().mean().detach(), None


def _loss(
    model: Supernet, batch: Batch, mixing_ratio: float | None, class_weights: torch.Tensor | None
) -> torch.Tensor:
    return _loss_and_accuracy(model, batch, mixing_ratio, class_weights)[0]


def alpha_snapshot(model: nn.Module) -> dict[str, list[torch.Tensor]]:
    """A copy of every α group's raw architecture parameters (for ‖Δα‖ per epoch)."""
    return {g: [p.detach().clone() for p in ps] for g, ps in model.alpha_groups().items()}


def alpha_movement(model: nn.Module, before: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """Each α group's movement since `before`: ‖α − α_before‖ over the group's tensors."""
    moved = {}
    for group, params in model.alpha_groups().items():
        squares = sum(
            ((p.detach() - b) ** 2).sum() for p, b in zip(params, before[group], strict=True)
        )
        moved[group] = float(torch.as_tensor(squares).sqrt())
    return moved


def optimizer_rates(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """The rate each named parameter group of `optimizer` has now."""
    return {group["name"]: float(group["lr"]) for group in optimizer.param_groups}


class SearchParts:
    """What a search-like loop (`Search`, adapt_head's adaptation) checkpoints: the
    supernet and its two optimizers; its epoch records are `EpochMetrics`."""

    model: nn.Module
    weight_optimizer: torch.optim.Optimizer
    alpha_optimizer: torch.optim.Optimizer

    def parts(self) -> dict[str, nn.Module | torch.optim.Optimizer]:
        return {
            "model": self.model,
            "weight_optimizer": self.weight_optimizer,
            "alpha_optimizer": self.alpha_optimizer,
        }

    @staticmethod
    def record_from_dict(values: Mapping[str, Any]) -> EpochMetrics:
        return EpochMetrics.from_dict(values)


class Search(SearchParts):
    """The state of one running search (an `epochs.EpochRunner`): `run` drives it through
    `run_epochs`, and `adapt` reuses it for its source search."""

    kind = "search"
    format = 2

    def __init__(
        self,
        config: SearchConfig,
        data: LongTailData,
        device: torch.device,
        hooks: RunHooks | None = None,
    ) -> None:
        self.config = config
        self.data = data
        self.device = device
        self.hooks = hooks or RunHooks()
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
        self.weight_optimizer, self.alpha_optimizer = search_optimizers(
            config, self.weight_params, self.model.alpha_groups(), self.groups
        )
        self.arch_params = self.model.architecture_parameters()
        self.class_weights = None
        if config.method == "darts_reweight":
            counts = torch.tensor(data.train_counts, device=device)
            self.class_weights = class_loss_weights(counts, config.reweight, config.reweight_beta)
        self._epoch_alpha_lrs: dict[str, float] = {}
        self._epoch_branch_losses: dict[str, float] | None = None
        self._alpha_before = alpha_snapshot(self.model)

    # --- the run contract (epochs.EpochRunner) ------------------------------------------
    def identity(self) -> dict[str, Any]:
        return {"fingerprint": self.config.fingerprint()}

    # --- steps ---------------------------------------------------------------------------
    def alpha_step(self, batch: Any, weight_batch: Any, mixing_ratio: float | None) -> None:
        """One α update on `batch` (second order: with the weights' `weight_batch`)."""
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
            loss = _loss(self.model, batch, mixing_ratio, self.class_weights)
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
        loss = _loss(model, weight_batch, mixing_ratio, cw)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        with torch.no_grad():
            for w, g in zip(weights, grads, strict=True):
                buf = self.weight_optimizer.state.get(w, {}).get("momentum_buffer")
                step = (0 if g is None else g) + decay * w
                if buf is not None:
                    step = step + momentum * buf
                w.sub_(xi * step)
        loss = _loss(model, alpha_batch, mixing_ratio, cw)
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
            loss = _loss(model, weight_batch, mixing_ratio, cw)
            hessian.append(torch.autograd.grad(loss, self.arch_params))
        with torch.no_grad():
            for w, s in zip(weights, saved, strict=True):
                w.copy_(s)
        return [(gp - gn) / (2 * r) for gp, gn in zip(hessian[0], hessian[1], strict=True)]

    def weight_step(
        self, batch: Any, mixing_ratio: float | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One weight update; returns the step's loss, accuracy and (BBN) branch terms."""
        self.weight_optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp_dtype):
            loss, accuracy, branches = _loss_and_accuracy(
                self.model, batch, mixing_ratio, self.class_weights
            )
        loss.backward(inputs=self.weight_params)
        nn.utils.clip_grad_norm_(self.weight_params, self.config.grad_clip, foreach=True)
        self.weight_optimizer.step()
        return loss.detach(), accuracy, branches

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """Alternating weight and α steps (α only from `alpha_start_epoch` on), the weights'
        μ on training progress, every α rate on α-progress."""
        config, steps, hooks = self.config, self.steps_per_epoch, self.hooks
        set_lr(
            self.weight_optimizer,
            cosine_lr(config.weight_lr, config.weight_lr_min, epoch, config.epochs),
        )
        losses = torch.zeros(steps, device=self.device)
        accuracies = torch.zeros(steps, device=self.device)
        branch_sums = torch.zeros(2, device=self.device)
        self.model.train()
        self.weight_batches.new_epoch()
        self.alpha_batches.new_epoch()
        self._alpha_before = alpha_snapshot(self.model)
        self._epoch_alpha_lrs = dict.fromkeys(self.groups, 0.0)
        for step in range(steps):
            hooks.before_step(epoch, step)
            progress = (epoch * steps + step) / (config.epochs * steps)
            mixing_ratio = config.schedule.mixing(progress) if config.is_bbn else None
            weight_batch = self.weight_batches.next()
            t_alpha = alpha_progress(epoch, step, steps, config.epochs, config.alpha_start_epoch)
            if t_alpha is not None:  # α warm-up: α frozen before alpha_start_epoch
                set_lr(self.alpha_optimizer, alpha_learning_rates(config, t_alpha, self.groups))
                if step == 0:
                    self._epoch_alpha_lrs = optimizer_rates(self.alpha_optimizer)
                self.alpha_step(self.alpha_batches.next(), weight_batch, mixing_ratio)
            losses[step], accuracies[step], branches = self.weight_step(weight_batch, mixing_ratio)
            if branches is not None:
                branch_sums += branches
            hooks.after_step(epoch, step + 1, steps, config.batch_size)
        if config.is_bbn:
            conventional, rebalancing = (branch_sums / steps).tolist()
            self._epoch_branch_losses = {"conventional": conventional, "rebalancing": rebalancing}
        return epoch_means(epoch, losses, accuracies)

    def epoch_record(
        self, epoch: int, train_loss: float, train_accuracy: float, seconds: float
    ) -> EpochMetrics:
        """The epoch's record, validated on the validation split."""
        config = self.config
        val = evaluate(self.model, self.split["val"], self.data.num_classes, config.eval_batch_size)
        return EpochMetrics(
            epoch=epoch,
            epochs=config.epochs,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_accuracy=val.accuracy,
            val_balanced_accuracy=val.balanced_accuracy,
            val_per_class_accuracy=val.per_class_accuracy,
            mixing_ratio=config.schedule.mixing(epoch / config.epochs) if config.is_bbn else None,
            alpha_lrs=dict(self._epoch_alpha_lrs),
            alphas={g: p.cpu().tolist() for g, p in self.model.alpha_probabilities().items()},
            genotype=self.model.genotype(),
            seconds=seconds,
            val_loss=val.loss,
            branch_losses=self._epoch_branch_losses if config.is_bbn else None,
            alpha_movement=alpha_movement(self.model, self._alpha_before),
        )

    def test_metrics(self) -> LongTailMetrics:
        """The supernet's figures on the balanced test set."""
        return longtail_metrics(
            self.model, self.split["test"], self.data, self.config.eval_batch_size
        )


def search_result(config: SearchConfig, runner: Any, outcome: RunOutcome) -> SearchResult:
    """The result of a search-like run (`Search`, adapt_head's adaptation): the last epoch's
    genotype, and the test set's figures only when every epoch ran."""
    history = outcome.history
    test = None if outcome.stopped_early or not history else runner.test_metrics()
    return SearchResult(
        config=config,
        genotype=history[-1].genotype if history else runner.model.genotype(),
        history=history,
        stopped_early=outcome.stopped_early,
        resumed_from_epoch=outcome.resumed_from_epoch,
        seconds=outcome.seconds,
        test=test,
    )


def run(
    config: SearchConfig,
    *,
    data: LongTailData | None = None,
    hooks: RunHooks | None = None,
    checkpoint: str | Path | CheckpointFile | None = None,
) -> SearchResult:
    """Runs one plain search (every method but adapt_head, which `hls_tune.engine.run_search`
    hands to `adapt.run`) and returns the derived genotype and its metrics.

    Args:
        config: the engine settings.
        data: prepared long-tailed data (default: built from `config.data`, cached).
        hooks: the caller's callbacks (`RunHooks`: epoch, resume, step, stop).
        checkpoint: file to write after every epoch; when it exists the run resumes from it.

    Raises:
        NonFiniteLossError: the loss became NaN/inf (names the epoch and step).
        SearchInterrupted: `hooks.should_stop` asked the run to stop.
        ConfigError: bad settings or data; `UnusableCheckpoint` for a checkpoint from a
            different configuration (unless `checkpoint.restart_unusable`).

    Example:
        >>> from hls_tune.engine.settings import SearchConfig, DataConfig
        >>> cfg = SearchConfig(method="hls", channels=4, layers=3, epochs=1, batch_size=32,
        ...                    data=DataConfig(image_size=8), flip=False)
        >>> result = run(cfg)  # doctest: +SKIP
        >>> result.genotype.normal[:2]  # doctest: +SKIP
    """
    device = resolve_device(config.device)
    data = data if data is not None else prepare_data(config.data)
    search = Search(config, data, device, hooks)
    return search_result(
        config, search, run_epochs(search, config.epochs, CheckpointFile.of(checkpoint))
    )
