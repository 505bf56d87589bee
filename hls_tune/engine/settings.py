"""Engine settings for one search: frozen, validated dataclasses (no Optuna here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hls_tune.engine.checks import build_dataclass, check_choice, check_device, check_range
from hls_tune.engine.records import digest, setting
from hls_tune.engine.schedules import HLSSchedule, MixingRatio, default_schedule
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
VAL_SOURCES = ("unused_balanced", "longtail_split")  # = hls_tune.engine.data.VAL_SOURCES


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

    dataset: str = setting("digits", role="source")
    root: str | None = setting(None, role="source")
    image_size: int | None = setting(None, role="source")
    download: bool = setting(False, role="execution")
    imbalance_ratio: float = setting(10.0, role="target")
    profile: str = setting("exponential", role="target")
    val_source: str = setting("unused_balanced", role="target")
    val_per_class: int = setting(50, role="source")
    val_fraction: float = setting(0.1, role="source")
    alpha_fraction: float = setting(0.5, role="source")
    test_per_class: int = setting(30, role="source")
    seed: int = setting(0, role="source")
    many_above: int = setting(100, role="target")
    few_below: int = setting(20, role="target")
    max_per_class: int | None = setting(None, role="source")

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

    method: str = setting("hls", role="target")
    data: DataConfig = setting(role="record", default_factory=DataConfig)
    schedule: HLSSchedule | None = setting(None, role="target")
    alpha_lr: float = setting(3e-4, role="source")
    channels: int = setting(16, role="source")
    layers: int = setting(8, role="source")
    nodes: int = setting(4, role="source")
    head_cells: int = setting(1, role="target")
    partial_channels: int = setting(1, role="source")
    epochs: int = setting(50, role="source")
    batch_size: int = setting(64, role="source")
    weight_lr: float = setting(0.025, role="source")
    weight_lr_min: float = setting(0.001, role="source")
    momentum: float = setting(0.9, role="source")
    weight_decay: float = setting(3e-4, role="source")
    grad_clip: float = setting(5.0, role="source")
    alpha_betas: tuple[float, float] = setting((0.5, 0.999), role="source")
    alpha_weight_decay: float = setting(1e-3, role="source")
    second_order: bool = setting(False, role="source")
    alpha_start_epoch: int = setting(0, role="source")
    bbn_joint_batch: bool = setting(False, role="target")
    reweight: str = setting("inverse", role="target")
    reweight_beta: float = setting(0.9999, role="target")
    source_dataset: str = setting("balanced", role="source")
    source_root: str | None = setting(None, role="source")
    head_epochs: int = setting(10, role="target")
    adapt_mode: str = setting("head_reweight", role="target")
    adapt_alpha_epochs: int = setting(5, role="target")
    crop_padding: int = setting(4, role="source")
    flip: bool = setting(True, role="source")
    cutout: int = setting(0, role="source")
    seed: int = setting(0, role="source")
    device: str = setting("auto", role="execution")
    eval_batch_size: int = setting(256, role="execution")
    fused: bool = setting(True, role="execution")
    channels_last: bool = setting(True, role="execution")
    amp: str = setting("auto", role="precision")
    compile: bool = setting(False, role="execution")

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
        check_device("device", self.device)

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
        return build_dataclass(cls, values, prefix="")

    def fingerprint(self) -> str:
        """A short hash of every setting that shapes the run (not the execution or
        precision ones: device, fused, channels_last, amp, compile, eval_batch_size), to
        refuse resuming a different run."""
        return digest(self, drop=("execution", "precision"))


NETWORKS = ("plain", "bbn")


@dataclass(frozen=True)
class TrainConfig:
    """How to train a genotype. Defaults are DARTS' CIFAR-10 evaluation recipe.

    The augmentation defaults scale DARTS' 32×32 recipe to the image size **(ours)**: crop
    padding = side/8 (4 on 32×32), cutout = side/2 (16 on 32×32), flips on except for
    digits (a mirrored digit is another glyph). Set them to override. Each field declares
    its role (`engine.records`): the recipe, the data, the seed, or the execution only.

    Args:
        data: the long-tailed data: the network trains on its weight and α splits (with
            the default `val_source = "unused_balanced"`, the whole long-tailed training set)
            and the validation set the searches use is evaluated every epoch.
        network: ``plain`` (the DARTS network of the genotype's normal and reduce cells) or
            ``bbn`` (the bilateral-branch network: two heads, cumulative learning, the
            reversed sampler; a genotype without head cells uses its normal cell for both).
        epochs: training epochs (DARTS: 600).
        channels: C of the first cells (DARTS: 36).
        layers: L, cells of the (shared) backbone (DARTS: 20).
        head_cells: cells in each BBN head stage.
        batch_size: images per step, per branch for BBN (DARTS: 96).
        weight_lr: initial SGD learning rate, cosine-annealed per epoch to `weight_lr_min`.
        weight_lr_min: final learning rate (DARTS: 0).
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        grad_clip: gradient-norm clip.
        crop_padding: random-crop padding in pixels (None: image side // 8, at least 1;
            0: off).
        flip: random horizontal flips (None: on, except for digits).
        cutout: side of the cutout square in pixels (None: image side // 2; 0: off).
        drop_path: final drop-path probability; it grows linearly from 0 over the epochs.
        auxiliary_weight: weight of the auxiliary head's loss (0 builds no auxiliary head).
        mixing: BBN's mixing ratio μ(t) (BBN: parabolic).
        bbn_joint_batch: BBN only: one backbone pass over both branches' batches (BatchNorm
            statistics of the union) instead of BBN's one pass per branch.
        device: auto, cpu, cuda or cuda:N.
        seed: seed of the weights, sampling, augmentation and drop-path.
        eval_batch_size: images per evaluation batch.
    """

    data: DataConfig = setting(role="record", default_factory=DataConfig)
    network: str = setting("plain", role="recipe")
    epochs: int = setting(600, role="recipe")
    channels: int = setting(36, role="recipe")
    layers: int = setting(20, role="recipe")
    head_cells: int = setting(1, role="recipe")
    batch_size: int = setting(96, role="recipe")
    weight_lr: float = setting(0.025, role="recipe")
    weight_lr_min: float = setting(0.0, role="recipe")
    momentum: float = setting(0.9, role="recipe")
    weight_decay: float = setting(3e-4, role="recipe")
    grad_clip: float = setting(5.0, role="recipe")
    crop_padding: int | None = setting(None, role="recipe")
    flip: bool | None = setting(None, role="recipe")
    cutout: int | None = setting(None, role="recipe")
    drop_path: float = setting(0.2, role="recipe")
    auxiliary_weight: float = setting(0.4, role="recipe")
    mixing: MixingRatio = setting(role="recipe", default_factory=MixingRatio)
    bbn_joint_batch: bool = setting(False, role="recipe")
    device: str = setting("auto", role="execution")
    seed: int = setting(0, role="seed")
    eval_batch_size: int = setting(256, role="execution")

    def __post_init__(self) -> None:
        check_choice("network", self.network, NETWORKS)
        for key in ("epochs", "channels", "layers", "head_cells", "batch_size"):
            check_range(key, getattr(self, key), 1)
        check_range("eval_batch_size", self.eval_batch_size, 1)
        check_range("weight_lr", self.weight_lr, 0.0, low_open=True)
        check_range("weight_lr_min", self.weight_lr_min, 0.0, self.weight_lr)
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
        if not isinstance(self.mixing, MixingRatio):
            raise ConfigError(f"mixing must be a MixingRatio but got {self.mixing!r}.")
        if not isinstance(self.bbn_joint_batch, bool):
            raise ConfigError(
                f"bbn_joint_batch must be a boolean but got {self.bbn_joint_batch!r}."
            )
        check_device("device", self.device)

    @property
    def bbn(self) -> bool:
        """Whether the bilateral-branch network trains."""
        return self.network == "bbn"

    def augmentation(self, image_size: int) -> tuple[int, bool, int]:
        """(crop padding, flip, cutout) for images of side `image_size` (None resolved)."""
        crop = self.crop_padding if self.crop_padding is not None else max(1, image_size // 8)
        flip = self.flip if self.flip is not None else self.data.dataset != "digits"
        cutout = self.cutout if self.cutout is not None else image_size // 2
        return crop, flip, cutout

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the data settings and μ as nested tables)."""
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A short hash of every setting but the execution ones (refuses resuming another
        run)."""
        return digest(self)

    def recipe_fingerprint(self) -> str:
        """A short hash of the recipe alone (no data, seed or execution settings): what
        makes two trainings of one genotype on the same data and seed the same training."""
        return digest(self, drop=("record", "seed", "execution"))
