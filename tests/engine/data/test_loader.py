"""Device-resident batches: class samplers, normalisation and tensor augmentation (on CPU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hls_tune.engine.data.loader import SAMPLERS, DeviceImages, augment_batch, class_probabilities
from hls_tune.engine.data.sources import ImageSet
from hls_tune.errors import ConfigError

COUNTS = [500, 200, 50, 10]


def _image_set(counts: list[int], size: int = 2, channels: int = 1, seed: int = 0) -> ImageSet:
    """Shuffled labels, so a sampler that ignores its class table shows it."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=generator)]
    images = torch.randint(0, 256, (len(labels), channels, size, size), generator=generator)
    return ImageSet(images.to(torch.uint8), labels, tuple(str(c) for c in range(len(counts))))


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- class_probabilities --------------------------------------------------------------


def test_class_probabilities_follow_each_sampler_definition() -> None:
    counts = torch.tensor([400, 100, 25])
    n = counts.double()
    expected = {
        "instance": n / n.sum(),
        "reversed": (400 / n) / (400 / n).sum(),  # BBN: w_i = N_max / N_i
        "class_balanced": torch.full((3,), 1 / 3, dtype=torch.float64),
        "square_root": n.sqrt() / n.sqrt().sum(),
    }
    assert set(expected) == set(SAMPLERS)
    for sampler, probabilities in expected.items():
        got = class_probabilities(counts, sampler)
        assert got.dtype == torch.float64
        assert torch.allclose(got, probabilities), sampler
    assert class_probabilities(counts, "reversed").tolist() == pytest.approx(
        [1 / 21, 4 / 21, 16 / 21]
    )


def test_class_without_images_is_never_drawn() -> None:
    counts = torch.tensor([10, 0, 5])
    for sampler in SAMPLERS:
        probabilities = class_probabilities(counts, sampler)
        assert probabilities[1] == 0
        assert probabilities.sum().item() == pytest.approx(1)


def test_unknown_sampler_is_a_config_error_naming_sampler() -> None:
    with pytest.raises(ConfigError, match=r"sampler: unknown sampler 'balanced'.*class_balanced"):
        class_probabilities(torch.tensor([3, 1]), "balanced")
    images = DeviceImages(_image_set([3, 1]), "cpu", [0.5], [0.5])
    with pytest.raises(ConfigError, match=r"sampler"):
        images.sample("balanced", 4, _generator())


# --- sample ---------------------------------------------------------------------------


DRAWS = 20_000


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sampled_class_frequencies_match_the_sampler_probabilities(sampler: str) -> None:
    images = DeviceImages(_image_set(COUNTS), "cpu", [0.5], [0.5])
    index = images.sample(sampler, DRAWS, _generator(1))
    assert index.dtype == torch.int64 and index.shape == (DRAWS,)
    frequencies = torch.bincount(images.labels[index], minlength=4).double() / DRAWS
    expected = class_probabilities(torch.tensor(COUNTS), sampler)
    # 1σ <= sqrt(0.25 / 20000) = 0.0035; 0.012 is more than 3σ.
    assert torch.allclose(frequencies, expected, atol=0.012), (frequencies, expected)


def test_reversed_sampler_favours_the_tail_by_n_max_over_n_i() -> None:
    images = DeviceImages(_image_set(COUNTS), "cpu", [0.5], [0.5])
    index = images.sample("reversed", DRAWS, _generator(2))
    frequencies = torch.bincount(images.labels[index], minlength=4).double() / DRAWS
    weights = torch.tensor([500 / n for n in COUNTS], dtype=torch.float64)
    assert torch.allclose(frequencies, weights / weights.sum(), atol=0.01)
    assert frequencies[3] > 0.6  # the 10-image class: 50 / (1 + 2.5 + 10 + 50) ≈ 0.79


def test_class_sampler_draws_images_uniformly_within_a_class() -> None:
    image_set = _image_set(COUNTS)
    images = DeviceImages(image_set, "cpu", [0.5], [0.5])
    index = images.sample("class_balanced", DRAWS, _generator(3))
    tail = index[images.labels[index] == 3]
    per_image = torch.bincount(tail, minlength=len(image_set))
    tail_images = (image_set.labels == 3).nonzero().flatten()
    assert per_image.sum() == per_image[tail_images].sum()  # only class-3 images
    share = per_image[tail_images].double() / len(tail)
    assert torch.allclose(share, torch.full((10,), 0.1, dtype=torch.float64), atol=0.025)


def test_same_generator_seed_gives_the_same_batch() -> None:
    images = DeviceImages(_image_set(COUNTS, size=8, channels=3), "cpu", [0.5] * 3, [0.25] * 3)

    def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = _generator(seed)
        index = images.sample("reversed", 64, generator)
        return images.gather(index, augment=True, generator=generator, cutout=3)

    (x1, y1), (x2, y2), (x3, _) = batch(7), batch(7), batch(8)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


def test_epoch_permutation_visits_every_image_once() -> None:
    images = DeviceImages(_image_set(COUNTS), "cpu", [0.5], [0.5])
    permutation = images.epoch_permutation(_generator())
    assert torch.equal(permutation.sort().values, torch.arange(sum(COUNTS)))
    assert not torch.equal(permutation, torch.arange(sum(COUNTS)))


# --- normalisation --------------------------------------------------------------------


def test_eval_batches_are_normalised_in_order_without_augmentation() -> None:
    image_set = _image_set([7, 6], size=4, channels=3)
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.3, 0.4]
    images = DeviceImages(image_set, "cpu", mean, std)
    batches = list(images.batches_for_eval(5))
    assert [len(y) for _, y in batches] == [5, 5, 3]
    x = torch.cat([b for b, _ in batches])
    expected = (
        image_set.images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)
    ) / torch.tensor(std).view(1, 3, 1, 1)
    assert x.dtype == torch.float32
    assert torch.allclose(x, expected, atol=1e-5)
    assert torch.equal(torch.cat([y for _, y in batches]), image_set.labels)


def test_gather_without_augmentation_returns_the_indexed_images_normalised() -> None:
    image_set = _image_set([7, 6], size=4, channels=3)
    images = DeviceImages(image_set, "cpu", [0.5] * 3, [0.5] * 3)
    index = torch.tensor([3, 0, 3, 12])
    x, y = images.gather(index, augment=False)
    assert torch.allclose(x, image_set.images[index].float() / 127.5 - 1, atol=1e-5)
    assert torch.equal(y, image_set.labels[index])


def test_gather_pads_crops_with_black_and_cuts_out_to_the_mean() -> None:
    white = ImageSet(
        torch.full((64, 1, 8, 8), 255, dtype=torch.uint8),
        torch.zeros(64, dtype=torch.int64),
        ("a",),
    )
    images = DeviceImages(white, "cpu", [0.5], [0.5])
    index = torch.arange(64)
    x, _ = images.gather(index, augment=True, generator=_generator(), crop_padding=3, flip=False)
    assert set(x.unique().tolist()) == {-1.0, 1.0}  # black padding → (0 − 0.5) / 0.5
    x, _ = images.gather(index, augment=True, generator=_generator(), crop_padding=0, cutout=4)
    assert set(x.unique().tolist()) == {0.0, 1.0}  # cutout → 0 after normalisation


def test_mean_and_std_need_one_value_per_channel() -> None:
    with pytest.raises(ValueError, match="3 values"):
        DeviceImages(_image_set([2, 2], channels=3), "cpu", [0.5], [0.5])


# --- augment_batch --------------------------------------------------------------------


def _distinct_batch(n: int = 256, size: int = 8, dtype=torch.uint8) -> torch.Tensor:
    """Images whose pixels are all distinct and non-zero, so any shift or flip is visible."""
    base = torch.arange(1, 3 * size * size + 1).view(1, 3, size, size) % 250 + 1
    x = base + torch.arange(n).view(n, 1, 1, 1) % 5
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_augment_keeps_shape_dtype_and_device(dtype: torch.dtype) -> None:
    x = _distinct_batch(dtype=dtype)
    y = augment_batch(x, _generator(), crop_padding=4, flip=True, cutout=3)
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device


def test_crop_without_padding_and_without_flip_is_the_identity() -> None:
    x = _distinct_batch()
    assert torch.equal(augment_batch(x, _generator(), crop_padding=0, flip=False), x)


def test_crop_takes_a_window_of_the_zero_padded_image_at_a_per_sample_offset() -> None:
    x = _distinct_batch(n=64)
    padding = 2
    y = augment_batch(x, _generator(), crop_padding=padding, flip=False)
    padded = F.pad(x, (padding,) * 4)
    offsets = set()
    for i in range(len(x)):
        matches = [
            (dy, dx)
            for dy in range(2 * padding + 1)
            for dx in range(2 * padding + 1)
            if torch.equal(y[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert len(matches) == 1, f"sample {i} is not a window of its padded image"
        offsets.add(matches[0])
    assert len(offsets) > 10  # offsets are drawn per sample, not once per batch


def test_flip_mirrors_exactly_the_chosen_samples_and_about_half_of_them() -> None:
    x = _distinct_batch(n=2000)
    y = augment_batch(x, _generator(), crop_padding=0, flip=True)
    kept = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    assert (kept ^ mirrored).all(), "every sample is either untouched or fully mirrored"
    assert 900 < int(mirrored.sum()) < 1100


def test_cutout_zeroes_one_square_of_the_given_side_clipped_at_the_borders() -> None:
    size, side = 12, 5
    x = torch.full((500, 3, size, size), 200, dtype=torch.uint8)
    y = augment_batch(x, _generator(), crop_padding=0, flip=False, cutout=side)
    zero = y == 0
    assert torch.equal(zero[:, :1].expand_as(zero), zero), "same square in every channel"
    full_squares = 0
    for mask in zero[:, 0]:
        rows = mask.any(1).nonzero().flatten()
        cols = mask.any(0).nonzero().flatten()
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        assert mask.sum() == (bottom - top) * (right - left), "the zeroed region is a rectangle"
        for start, stop in ((top, bottom), (left, right)):
            # The side is exactly `side` unless the square was clipped by a border.
            assert stop - start == side or start == 0 or stop == size
            assert stop - start <= side
        full_squares += int(mask.sum() == side * side)
    assert full_squares > 100


def test_augment_with_the_same_seed_is_deterministic() -> None:
    x = _distinct_batch()
    a = augment_batch(x, _generator(3), cutout=4)
    b = augment_batch(x, _generator(3), cutout=4)
    c = augment_batch(x, _generator(4), cutout=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_negative_crop_padding_or_cutout_is_rejected() -> None:
    with pytest.raises(ConfigError, match="crop_padding"):
        augment_batch(_distinct_batch(), _generator(), crop_padding=-1)
    with pytest.raises(ConfigError, match="cutout"):
        augment_batch(_distinct_batch(), _generator(), cutout=-2)
