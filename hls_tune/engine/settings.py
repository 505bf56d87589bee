"""Engine settings for one search: frozen, validated dataclasses (no Optuna here)."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hls_tune.engine.schedules import HLSSchedule, default_schedule
from hls_tune.errors import ConfigError

METHODS = ("darts", "darts_resample", "darts_reweight", "bbn_darts", "hls", "adapt_head")
BBN_METHODS = frozenset({"bbn_darts", "hls"})
REWEIGHTS = ("inverse", "effective_number")
# adapt_head's source: "balanced" (the balanced version of data.dataset) or a dataset name.
SOURCE_DATASETS = ("balanced", "digits", "cifar10", "cifar100", "imagefolder")
# adapt_head's adaptation strategies (SPEC §5): none, the linear head with CE or the
# re-weighted loss, or every weight (fine-tuning) with CE or the re-weighted loss.
ADAPT_MODES = ("none", "head_ce", "head_reweight", "finetune", "finetune_reweight")
AMP_MODES = ("auto", "bf16", "off")
DEVICES_HELP = "auto, cpu, cuda or cuda:N"
VAL_SOURCES = ("unused_balanced", "longtail_split")  # = hls_tune.engine.data.VAL_SOURCES


def did_you_mean(value: str, allowed: Iterable[str]) -> str:
    """A " (did you mean 'x'?)" suffix when `value` is close to one allowed word, else ""."""
    close = difflib.get_close_matches(str(value), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(key: str, value: object, allowed: Iterable[str]) -> None:
    """Raises ConfigError unless `value` is one of `allowed`."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(
            f"{key} must be one of {', '.join(allowed)} but got {value!r}"
            f"{did_you_mean(str(value), allowed)}."
        )


def check_range(
    key: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
) -> None:
    """Raises ConfigError unless low ≤ value ≤ high (low < value with low_open)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{key} must be a number but got {value!r}.")
    if math.isinf(value):  # no setting of the engine can run with an infinite value
        raise ConfigError(f"{key} must be a finite number but got {value!r}.")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        bracket = "(" if low_open else "["
        raise ConfigError(f"{key} must be in {bracket}{lo}, {hi}] but got {value!r}.")


# Upper bounds of the network's size: far above any searchable supernet, low enough that a
# typo (channels = 4000000) is refused before it fails every trial. At 2**17 channels the
# float32 weights of one 1x1 conv over 3C channels already take 618 GB; wider nets cannot
# even be built (narrower ones too large for a given machine fail as out-of-memory trials).
MAX_CHANNELS = 131_072
MAX_LAYERS = 100


@dataclass(frozen=True)
class DataConfig:
    """Which data, how long-tailed, how split.

    Args:
        dataset: digits (embedded default), cifar10, cifar100 or imagefolder.
        root: directory of the dataset files (not needed for digits).
        image_size: resize images to this square size (None keeps the native size).
        download: fetch CIFAR through torchvision when the files are missing.
        imbalance_ratio: n_max / n_min of the long-tailed training set (≥ 1).
        profile: exponential, step, or none (keep the data's own counts).
        val_source: where the validation set (it drives the study) comes from:
            ``unused_balanced`` (default) draws `val_per_class` images of every class from
            the training images the long-tailed subset leaves unused, and the whole
            long-tailed set trains weights and α; ``longtail_split`` holds out
            `val_fraction` of each class's long-tailed images (a long-tailed split).
        val_per_class: validation images per class with ``unused_balanced``. A class with
            fewer unused images falls back to the long-tailed split, with a warning.
        val_fraction: share of each class's long-tailed images held out to validate with
            ``longtail_split`` (and for a fallback class of ``unused_balanced``).
        alpha_fraction: share of the rest that updates α; the remainder updates weights.
        test_per_class: balanced test images per class split off when the source has no
            test set (digits, a flat image folder).
        seed: seed of the long-tailed subset and the splits.
        many_above: classes with more training images are "many-shot".
        few_below: classes with fewer training images are "few-shot".
        max_per_class: cap on n_max, the head class's image count (None: the source's).
    """

    dataset: str = "digits"
    root: str | None = None
    image_size: int | None = None
    download: bool = False
    imbalance_ratio: float = 10.0
    profile: str = "exponential"
    val_source: str = "unused_balanced"
    val_per_class: int = 50
    val_fraction: float = 0.1
    alpha_fraction: float = 0.5
    test_per_class: int = 30
    seed: int = 0
    many_above: int = 100
    few_below: int = 20
    max_per_class: int | None = None

    def __post_init__(self) -> None:
        check_choice("data.dataset", self.dataset, ("digits", "cifar10", "cifar100", "imagefolder"))
        check_choice("data.profile", self.profile, ("exponential", "step", "none"))
        check_range("data.imbalance_ratio", self.imbalance_ratio, 1.0)
        check_choice("data.val_source", self.val_source, VAL_SOURCES)
        if isinstance(self.val_per_class, bool) or not isinstance(self.val_per_class, int):
            raise ConfigError(
                f"data.val_per_class must be an integer >= 1 but got {self.val_per_class!r}."
            )
        check_range("data.val_per_class", self.val_per_class, 1)
        check_range("data.val_fraction", self.val_fraction, 0.0, 0.9)
        check_range("data.alpha_fraction", self.alpha_fraction, 0.0, 1.0, low_open=True)
        if self.alpha_fraction >= 1.0:
            raise ConfigError(
                f"data.alpha_fraction must be in (0, 1) but got {self.alpha_fraction!r}."
            )
        check_range("data.test_per_class", self.test_per_class, 1)
        if self.image_size is not None:
            check_range("data.image_size", self.image_size, 4)
        if self.max_per_class is not None:
            check_range("data.max_per_class", self.max_per_class, 3)
        if self.few_below > self.many_above:
            raise ConfigError(
                f"data.few_below ({self.few_below}) must not exceed "
                f"data.many_above ({self.many_above})."
            )
        if self.dataset != "digits" and not self.root:
            raise ConfigError(f"data.root is required for data.dataset = {self.dataset!r}.")


@dataclass(frozen=True)
class SearchConfig:
    """Everything one BBN-DARTS / DARTS search needs. Defaults are the DARTS CIFAR-10 recipe.

    Args:
        method: darts, darts_resample, darts_reweight, bbn_darts, hls or adapt_head (SPEC §6).
        data: the data settings.
        schedule: the HLS schedule (per-group α-LR shapes, breakpoints, floors,
            multipliers, coupling, μ form). `hls` uses all of it; `bbn_darts` only its mixing
            form (one constant α learning rate for every group); the plain methods ignore it.
            None (the default): the method's own default (`default_schedule`): the
            paper-reading preset for `hls`, BBN's parabolic μ for `bbn_darts`.
        alpha_lr: base learning rate of the architecture parameters (Adam).
        channels: C, channels of the first cell.
        layers: L, number of backbone cells (reduction cells at L//3 and 2L//3).
        nodes: intermediate nodes per cell.
        head_cells: searched cells in each BBN head stage.
        partial_channels: PC-DARTS K (1 = off).
        epochs: search epochs (adapt_head: epochs of the supernet search on the source).
        batch_size: images per step and per branch.
        weight_lr: initial SGD learning rate of the weights (cosine to weight_lr_min).
        second_order: use the unrolled (second-order) α gradient.
        alpha_start_epoch: α warm-up: α is frozen (no α step) in the epochs before this one,
            for every method (PC-DARTS starts α at epoch 15); 0 updates α from the start.
        bbn_joint_batch: BBN methods only: push both branches' batches through the shared
            backbone in one concatenated pass (BatchNorm statistics of the union; faster).
            False (BBN's own behaviour): one backbone pass per branch batch, so BatchNorm
            batch statistics are per branch.
        reweight: class weights of darts_reweight's loss and of adapt_head's head retraining:
            inverse frequency or effective number.
        reweight_beta: β of the effective number (1 − β)/(1 − β^n).
        source_dataset: adapt_head's balanced source: "balanced" (data.dataset with every
            class at the head count, the target's validation and test images left out) or
            another dataset name (made balanced the same way).
        source_root: root of another source dataset (default: data.root).
        head_epochs: adapt_head's epochs of adapting the weights (the linear head, or every
            weight when fine-tuning) on the long-tailed target.
        adapt_mode: adapt_head's strategy: none (the source supernet as is), head_ce,
            head_reweight (a fresh linear head, CE or re-weighted loss), finetune,
            finetune_reweight (every weight, CE or re-weighted loss).
        adapt_alpha_epochs: adapt_head's epochs of the α phase after the weights are
            adapted (weights frozen, re-weighted loss on the target's α split), which lets
            the target choose the architecture; 0 keeps the source's α.
        crop_padding: random-crop padding of the training augmentation (0 = no crop).
        flip: random horizontal flips (turn off for digits and text-like data).
        cutout: side of the cutout square (0 = off).
        seed: seed of the weights, α initialisation, sampling and augmentation.
        device: auto, cpu, cuda or cuda:N.
        eval_batch_size: batch size of validation and test passes.
        fused: use the fused supernet (same parameters and mathematics, faster; see
            docs/performance.md); False runs the per-op reference supernet.
        channels_last: keep activations in channels_last memory format.
        amp: autocast dtype of the training steps: auto (bf16 on CUDA, off elsewhere),
            bf16 or off.
        compile: torch.compile each search cell (CUDA only; ignored on CPU).
    """

    method: str = "hls"
    data: DataConfig = field(default_factory=DataConfig)
    schedule: HLSSchedule | None = None
    alpha_lr: float = 3e-4
    channels: int = 16
    layers: int = 8
    nodes: int = 4
    head_cells: int = 1
    partial_channels: int = 1
    epochs: int = 50
    batch_size: int = 64
    weight_lr: float = 0.025
    weight_lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    second_order: bool = False
    alpha_start_epoch: int = 0
    bbn_joint_batch: bool = False
    reweight: str = "inverse"
    reweight_beta: float = 0.9999
    source_dataset: str = "balanced"
    source_root: str | None = None
    head_epochs: int = 10
    adapt_mode: str = "head_reweight"
    adapt_alpha_epochs: int = 5
    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 256
    fused: bool = True
    channels_last: bool = True
    amp: str = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        if self.schedule is None:
            object.__setattr__(self, "schedule", default_schedule(self.method))
        check_choice("amp", self.amp, AMP_MODES)
        for key in ("fused", "channels_last", "compile", "bbn_joint_batch"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} must be a boolean but got {getattr(self, key)!r}.")
        check_choice("reweight", self.reweight, REWEIGHTS)
        check_choice("source_dataset", self.source_dataset, SOURCE_DATASETS)
        check_range("head_epochs", self.head_epochs, 1)
        check_choice("adapt_mode", self.adapt_mode, ADAPT_MODES)
        check_range("adapt_alpha_epochs", self.adapt_alpha_epochs, 0)
        check_range("alpha_start_epoch", self.alpha_start_epoch, 0)
        if self.alpha_start_epoch >= self.epochs:
            raise ConfigError(
                f"alpha_start_epoch must be below epochs ({self.epochs}) but got "
                f"{self.alpha_start_epoch!r}."
            )
        if self.source_dataset not in ("balanced", "digits") and not (
            self.source_root or self.data.root
        ):
            raise ConfigError(
                f"source_root is required for source_dataset = {self.source_dataset!r} "
                "(or set data.root)."
            )
        check_range("alpha_lr", self.alpha_lr, 0.0)
        check_range("weight_lr", self.weight_lr, 0.0, low_open=True)
        check_range("weight_lr_min", self.weight_lr_min, 0.0, self.weight_lr)
        for key in ("channels", "layers", "nodes", "head_cells", "epochs", "batch_size"):
            check_range(key, getattr(self, key), 1)
        # The reduction cells sit at L//3 and 2L//3: fewer than 3 cells put both at cell 0.
        check_range("layers", self.layers, 3, MAX_LAYERS)
        check_range("channels", self.channels, 1, MAX_CHANNELS)
        check_range("eval_batch_size", self.eval_batch_size, 1)
        check_range("partial_channels", self.partial_channels, 1)
        op_channels, rest = divmod(self.channels, self.partial_channels)
        if rest or op_channels % 2:
            raise ConfigError(
                f"partial_channels must divide channels into an even number of channels, but "
                f"channels = {self.channels} and partial_channels = {self.partial_channels}."
            )
        check_range("momentum", self.momentum, 0.0, 1.0)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("alpha_weight_decay", self.alpha_weight_decay, 0.0)
        check_range("grad_clip", self.grad_clip, 0.0, low_open=True)
        check_range("reweight_beta", self.reweight_beta, 0.0, 1.0, low_open=True)
        check_range("crop_padding", self.crop_padding, 0)
        check_range("cutout", self.cutout, 0)
        if len(self.alpha_betas) != 2 or not all(0 <= b < 1 for b in self.alpha_betas):
            raise ConfigError(
                f"alpha_betas must be two numbers in [0, 1) but got {self.alpha_betas!r}."
            )
        object.__setattr__(self, "alpha_betas", tuple(self.alpha_betas))
        device = str(self.device)
        if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
            raise ConfigError(f"device must be {DEVICES_HELP} but got {device!r}.")

    @property
    def is_bbn(self) -> bool:
        """Whether the method uses the bilateral-branch supernet."""
        return self.method in BBN_METHODS

    @property
    def total_epochs(self) -> int:
        """Epochs the run reports: `epochs`; for adapt_head the adaptation's epochs on the
        target (`head_epochs` + `adapt_alpha_epochs`, or one evaluation epoch for
        adapt_mode none), since the source search is shared and cached."""
        if self.method != "adapt_head":
            return self.epochs
        if self.adapt_mode == "none":
            return 1
        return self.head_epochs + self.adapt_alpha_epochs

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (nested `data` and `schedule` tables)."""
        return dataclasses.asdict(self) | {"alpha_betas": list(self.alpha_betas)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SearchConfig:
        """Builds a config from `to_dict` output (unknown keys are an error)."""
        values = dict(values)
        data = build_dataclass(DataConfig, values.pop("data", {}), prefix="data.")
        schedule = values.pop("schedule", None)
        if schedule is not None:
            schedule = build_dataclass(HLSSchedule, schedule, prefix="")
        return build_dataclass(cls, values | {"data": data, "schedule": schedule}, prefix="")

    def fingerprint(self) -> str:
        """A short hash of every setting except the execution ones (device, fused,
        channels_last, amp, compile), to refuse resuming a different run."""
        values = self.to_dict()
        for key in ("device", "fused", "channels_last", "amp", "compile"):
            values.pop(key)
        text = json.dumps(values, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_dataclass(cls: type, values: Mapping[str, Any], *, prefix: str) -> Any:
    """Instantiates a settings dataclass, naming unknown keys (with a suggestion)."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            raise ConfigError(
                f"unknown key {prefix}{key}{did_you_mean(key, names)}; allowed: {', '.join(names)}."
            )
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        check_type(f"{prefix}{key}", value, hints[key])
    return cls(**values)


_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}


def check_type(key: str, value: Any, annotation: Any) -> None:
    """Raises ConfigError when `value` does not fit a simple field annotation.

    Handles the annotations settings use: str, int, float (an int is accepted), bool,
    `X | None`, tuples of numbers; nested dataclasses are checked by their own fields.
    """
    if dataclasses.is_dataclass(annotation):
        return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return  # a nested settings dataclass (`X | None`) validates its own fields
    options = (
        typing.get_args(annotation)
        if typing.get_origin(annotation)
        in (
            types.UnionType,
            typing.Union,
        )
        else (annotation,)
    )
    if value is None:
        if type(None) in options:
            return
        raise ConfigError(f"{key} must be set but got None.")
    for option in options:
        if option is type(None):
            continue
        if typing.get_origin(option) is tuple:
            if isinstance(value, list | tuple) and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value
            ):
                return
            continue
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if option in (bool, str) and isinstance(value, option):
            return
    wanted = " or ".join(
        _TYPE_NAMES.get(o, "a list of numbers") for o in options if o is not type(None)
    )
    raise ConfigError(f"{key} must be {wanted} but got {value!r}.")
