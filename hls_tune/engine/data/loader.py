"""Device-resident batches: uint8 images on the device, class samplers, tensor augmentation.

No DataLoader, no PIL, no per-image Python and no host sync on the batch path (airbench style).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from hls_tune.engine.data.sources import ImageSet
from hls_tune.errors import ConfigError

SAMPLERS = ("instance", "reversed", "class_balanced", "square_root")


def class_probabilities(class_counts: torch.Tensor, sampler: str) -> torch.Tensor:
    """Returns the probability of drawing each class under ``sampler`` (float64, CPU).

    ``instance`` ∝ n_i (uniform over images); ``reversed`` (BBN) ∝ w_i = N_max / N_i;
    ``class_balanced`` uniform; ``square_root`` ∝ √n_i. Classes with no image get 0.

    Args:
        class_counts: images per class.
        sampler: one of ``SAMPLERS``.

    Raises:
        ConfigError: unknown sampler, or no class has an image.

    Example:
        >>> class_probabilities(torch.tensor([300, 100]), "reversed").tolist()
        [0.25, 0.75]
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler: unknown sampler {sampler!r}; expected one of {SAMPLERS}.")
    counts = class_counts.detach().to("cpu", torch.float64)
    present = counts > 0
    if not bool(present.any()):
        raise ConfigError(f"sampler {sampler!r}: no class has an image (counts {counts.tolist()}).")
    if sampler == "instance":
        weights = counts
    elif sampler == "reversed":
        weights = torch.where(present, counts.max() / counts.clamp_min(1), 0.0)
    elif sampler == "class_balanced":
        weights = present.to(torch.float64)
    else:
        weights = counts.sqrt()
    return weights / weights.sum()


def _draw_augmentation(
    x: torch.Tensor,
    generator: torch.Generator,
    crop_padding: int,
    flip: bool,
    cutout: int,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Draws the per-sample randomness in a fixed order: crop offsets, flip mask, cutout."""
    if crop_padding < 0:
        raise ConfigError(f"crop_padding must be >= 0 but got {crop_padding!r}.")
    if cutout < 0:
        raise ConfigError(f"cutout must be >= 0 (0 = off) but got {cutout!r}.")
    n, _, height, width = x.shape
    device = x.device
    offsets = None
    if crop_padding > 0:
        offsets = torch.randint(0, 2 * crop_padding + 1, (2, n), generator=generator, device=device)
    flipped = None
    if flip:
        flipped = torch.rand(n, generator=generator, device=device) < 0.5
    cut = None
    if cutout > 0:
        centre_y = torch.randint(0, height, (n,), generator=generator, device=device)
        centre_x = torch.randint(0, width, (n,), generator=generator, device=device)
        # A side-`cutout` square, [c − cutout//2, c − cutout//2 + cutout), clipped by the
        # comparison itself at the borders (as in DeVries & Taylor's and DARTS's Cutout).
        top = (centre_y - cutout // 2).view(n, 1, 1, 1)
        left = (centre_x - cutout // 2).view(n, 1, 1, 1)
        rows = torch.arange(height, device=device).view(1, 1, height, 1)
        cols = torch.arange(width, device=device).view(1, 1, 1, width)
        cut = (rows >= top) & (rows < top + cutout) & (cols >= left) & (cols < left + cutout)
    return offsets, flipped, cut


def _crop_and_flip(
    x: torch.Tensor, offsets: torch.Tensor | None, flipped: torch.Tensor | None, padding: int
) -> torch.Tensor:
    n, channels, height, width = x.shape
    if offsets is not None:
        padded = F.pad(x, (padding, padding, padding, padding))  # zeros: black, like RandomCrop
        rows = (offsets[0].view(n, 1) + torch.arange(height, device=x.device)).view(n, 1, height, 1)
        cols = (offsets[1].view(n, 1) + torch.arange(width, device=x.device)).view(n, 1, 1, width)
        batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        channel = torch.arange(channels, device=x.device).view(1, channels, 1, 1)
        x = padded[batch, channel, rows, cols]
    if flipped is not None:
        x = torch.where(flipped.view(n, 1, 1, 1), x.flip(-1), x)
    return x


def augment_batch(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    crop_padding: int = 4,
    flip: bool = True,
    cutout: int = 0,
) -> torch.Tensor:
    """Randomly crops, flips and cuts out a batch with tensor ops on its own device.

    Crop: zero-pad by ``crop_padding`` and take an H×W window at a per-sample random offset.
    Flip: each sample is mirrored horizontally with probability ½. Cutout: a square of side
    ``cutout`` centred at a random pixel (clipped at the borders) is set to 0.

    Args:
        x: uint8 or float batch, N×C×H×W.
        generator: random source on ``x.device`` (a CUDA generator for CUDA tensors).
        crop_padding: padding of the random crop in pixels; 0 disables the crop.
        flip: whether to flip a random half of the batch.
        cutout: side of the cutout square in pixels; 0 disables it.

    Returns:
        A new batch of the same shape, dtype and device.

    Example:
        >>> x = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)
        >>> augment_batch(x, torch.Generator().manual_seed(0), cutout=16).shape
        torch.Size([8, 3, 32, 32])
    """
    offsets, flipped, cut = _draw_augmentation(x, generator, crop_padding, flip, cutout)
    x = _crop_and_flip(x, offsets, flipped, crop_padding)
    if cut is not None:
        x = x.masked_fill(cut, 0)
    return x


class DeviceImages:
    """An ImageSet moved to ``device`` once, as uint8, plus the per-class index table.

    Batches are built on the device: indices from ``sample`` or ``epoch_permutation``,
    then ``gather`` augments and normalises them. Pass a generator on the same device
    (``torch.Generator(device="cuda")`` for CUDA data); nothing on the batch path reads a
    value back to the host.

    Args:
        images: the images and labels to hold.
        device: where to keep them.
        mean: per-channel mean in [0, 1] pixel units, used by the normalisation.
        std: per-channel standard deviation, same units.

    Example:
        >>> from hls_tune.engine.data.sources import load_source
        >>> train = DeviceImages(load_source("digits").train, "cpu", [0.3], [0.4])
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = train.gather(train.sample("reversed", 64, g), augment=True, generator=g)
        >>> x.shape, x.dtype, y.shape
        (torch.Size([64, 1, 8, 8]), torch.float32, torch.Size([64]))
    """

    def __init__(
        self,
        images: ImageSet,
        device: torch.device | str,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        channels = images.in_channels
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"mean and std need {channels} values (one per channel) but got "
                f"{len(mean)} and {len(std)}."
            )
        if min(std) <= 0:
            raise ValueError(f"std must be positive but got {list(std)}.")
        self.device = torch.device(device)
        self.images = images.images.to(self.device)
        self.labels = images.labels.to(self.device)
        self.num_classes = images.num_classes
        self.class_counts = images.class_counts()  # CPU, for probabilities and reports
        # Class-sorted index table: the images of class c are
        # table[starts[c] : starts[c] + counts[c]].
        self._counts = self.class_counts.to(self.device)
        self._starts = (torch.cumsum(self.class_counts, 0) - self.class_counts).to(self.device)
        self._table = torch.argsort(self.labels, stable=True)
        # (x/255 − mean)/std as one multiply-add per pixel.
        std_t = torch.tensor(list(std), dtype=torch.float32, device=self.device)
        mean_t = torch.tensor(list(mean), dtype=torch.float32, device=self.device)
        self._scale = (1.0 / (255.0 * std_t)).view(1, channels, 1, 1)
        self._shift = (-mean_t / std_t).view(1, channels, 1, 1)
        self._probabilities: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.images.shape[0]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Returns float32 (x/255 − mean)/std for a uint8 batch on this device.

        Args:
            x: uint8 batch, N×C×H×W.
        """
        return x.to(torch.float32).mul_(self._scale).add_(self._shift)

    def sample(self, sampler: str, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Draws ``batch_size`` image indices (with replacement) on the device.

        ``instance`` draws images uniformly; the other samplers draw a class from
        ``class_probabilities`` and then an image uniformly within it.

        Args:
            sampler: one of ``SAMPLERS``.
            batch_size: number of indices.
            generator: random source on this device.
        """
        if sampler not in SAMPLERS:
            raise ConfigError(f"sampler: unknown sampler {sampler!r}; expected one of {SAMPLERS}.")
        if len(self) == 0:
            raise ValueError("cannot sample from an empty image set.")
        if sampler == "instance":
            return torch.randint(
                0, len(self), (batch_size,), generator=generator, device=self.device
            )
        probabilities = self._probabilities.get(sampler)
        if probabilities is None:
            probabilities = class_probabilities(self.class_counts, sampler).to(
                self.device, torch.float32
            )
            self._probabilities[sampler] = probabilities
        classes = torch.multinomial(
            probabilities, batch_size, replacement=True, generator=generator
        )
        counts = self._counts[classes]
        uniform = torch.rand(batch_size, generator=generator, device=self.device)
        # min(): float32 rounding can turn u·n into n for u just below 1.
        within = torch.minimum((uniform * counts).long(), counts - 1)
        return self._table[self._starts[classes] + within]

    def epoch_permutation(self, generator: torch.Generator) -> torch.Tensor:
        """Returns a random permutation of all indices, on the device.

        Args:
            generator: random source on this device.
        """
        return torch.randperm(len(self), generator=generator, device=self.device)

    def batches_for_eval(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yields (normalised images, labels) in order, without augmentation.

        Args:
            batch_size: images per batch; the last batch may be smaller.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 but got {batch_size}.")
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield self.normalize(self.images[start:stop]), self.labels[start:stop]

    def gather(
        self,
        indices: torch.Tensor,
        *,
        augment: bool,
        generator: torch.Generator | None = None,
        crop_padding: int = 4,
        flip: bool = True,
        cutout: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the normalised float images and the labels at ``indices``.

        With ``augment``, crop and flip act on the uint8 pixels (padding is black, as
        torchvision's RandomCrop on PIL images) and cutout zeroes the normalised pixels
        (the mean colour, as DARTS's Cutout); the random draws are those of
        ``augment_batch``.

        Args:
            indices: index tensor on this device.
            augment: apply the random crop/flip/cutout.
            generator: random source on this device; required when ``augment`` is true.
            crop_padding: padding of the random crop; 0 disables it.
            flip: random horizontal flips.
            cutout: side of the cutout square; 0 disables it.
        """
        x = self.images[indices]
        labels = self.labels[indices]
        if not augment:
            return self.normalize(x), labels
        if generator is None:
            raise ValueError("gather(augment=True) needs a generator.")
        offsets, flipped, cut = _draw_augmentation(x, generator, crop_padding, flip, cutout)
        x = self.normalize(_crop_and_flip(x, offsets, flipped, crop_padding))
        if cut is not None:
            x.masked_fill_(cut, 0.0)
        return x, labels


class InstanceStream:
    """Batches of image indices from successive random permutations (uniform over images).

    Args:
        images: the image set to index.
        generator: random source on the images' device.
    """

    def __init__(self, images: DeviceImages, generator: torch.Generator) -> None:
        self.images = images
        self.generator = generator
        self.order = torch.empty(0, dtype=torch.long, device=images.labels.device)
        self.position = 0

    def new_epoch(self) -> None:
        """Starts a fresh permutation, so that an epoch depends only on the RNG state."""
        self.position = len(self.order)

    def take(self, n: int) -> torch.Tensor:
        """The next `n` indices (a new permutation starts when one runs out)."""
        parts, need = [], n
        while need > 0:
            if self.position >= len(self.order):
                self.order = self.images.epoch_permutation(self.generator)
                self.position = 0
            part = self.order[self.position : self.position + need]
            self.position += len(part)
            need -= len(part)
            parts.append(part)
        return parts[0] if len(parts) == 1 else torch.cat(parts)
