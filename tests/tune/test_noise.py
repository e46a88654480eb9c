"""Noise specs: parsing, the accepted forms in errors, and the noise itself."""

from __future__ import annotations

import pytest
import torch

from predify.errors import ConfigError, DataError
from predify.tune import NoiseSpec, add_noise, check_disjoint_images, image_hashes, parse_noise


def _images(count: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("text", "kind", "level", "label"),
    [
        ("gaussian:0.5", "gaussian", 0.5, "gaussian-0.5"),
        (" Gaussian:1 ", "gaussian", 1.0, "gaussian-1"),
        ("gaussian:0", "gaussian", 0.0, "gaussian-0"),
        ("saltpepper:0.1", "saltpepper", 0.1, "saltpepper-0.1"),
        ("uniform:0.25", "uniform", 0.25, "uniform-0.25"),
    ],
)
def test_parse_accepts_the_documented_forms(text, kind, level, label):
    noise = parse_noise(text)
    assert (noise.kind, noise.level, noise.clip) == (kind, level, False)
    assert noise.label == label
    assert parse_noise(str(noise)) == noise


@pytest.mark.parametrize(
    "text",
    [
        "gauss:0.5",
        "gaussian:-1",
        "gaussian:abc",
        "gaussian",
        "gaussian:",
        "0.5",
        "gaussian:nan",
        "gaussian:inf",
        "saltpepper:1.5",
        "uniform:-0.1",
    ],
)
def test_parse_refuses_bad_specs_in_one_line_listing_the_forms(text):
    with pytest.raises(ConfigError) as error:
        parse_noise(text)
    message = str(error.value)
    assert "\n" not in message
    assert "gaussian:SIGMA" in message and "saltpepper:P" in message and "uniform:W" in message
    assert repr(text) in message or text.split(":")[0] in message


def test_same_seed_same_noise_and_input_untouched():
    images = _images()
    original = images.clone()
    noise = parse_noise("gaussian:0.5")
    first = add_noise(images, noise, torch.Generator().manual_seed(3))
    second = noise.apply(images, torch.Generator().manual_seed(3))
    other = add_noise(images, noise, torch.Generator().manual_seed(4))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    assert torch.equal(images, original)
    assert first.shape == images.shape and first.dtype == images.dtype


def test_gaussian_noise_has_the_requested_sigma_and_is_unclipped_by_default():
    images = _images(256)
    noisy = add_noise(images, parse_noise("gaussian:0.5"), torch.Generator().manual_seed(0))
    assert abs(float((noisy - images).std()) - 0.5) < 0.01
    assert abs(float((noisy - images).mean())) < 0.01
    assert noisy.min() < 0 and noisy.max() > 1
    clipped = add_noise(
        images, parse_noise("gaussian:0.5", clip=True), torch.Generator().manual_seed(0)
    )
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert torch.equal(clipped, noisy.clamp(0, 1))


def test_uniform_noise_stays_within_its_half_width():
    images = _images(256)
    noisy = add_noise(images, parse_noise("uniform:0.3"), torch.Generator().manual_seed(0))
    difference = noisy - images
    assert difference.abs().max() <= 0.3 + 1e-6
    # U(-w, w) has standard deviation w / sqrt(3).
    assert abs(float(difference.std()) - 0.3 / 3**0.5) < 0.01


def test_salt_and_pepper_replaces_the_requested_fraction_with_0_or_1():
    images = _images(256) * 0.5 + 0.25  # no pixel is 0 or 1 before the noise
    noisy = add_noise(images, parse_noise("saltpepper:0.2"), torch.Generator().manual_seed(0))
    changed = noisy != images
    assert abs(float(changed.float().mean()) - 0.2) < 0.01
    assert set(noisy[changed].unique().tolist()) == {0.0, 1.0}
    assert abs(float(noisy[changed].mean()) - 0.5) < 0.02


def test_zero_noise_is_a_copy_and_integer_images_are_refused():
    images = _images(4)
    noisy = add_noise(images, NoiseSpec("gaussian", 0.0), torch.Generator())
    assert torch.equal(noisy, images) and noisy is not images
    with pytest.raises(ConfigError, match="floating-point"):
        add_noise(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), parse_noise("gaussian:0.1"), None)  # type: ignore[arg-type]


def test_image_hashes_tell_identical_images_apart_from_changed_ones():
    images = _images(8)
    hashes = image_hashes(images)
    assert len(set(hashes)) == 8
    changed = images.clone()
    changed[3, 0, 5, 5] += 1e-6
    assert image_hashes(changed)[3] != hashes[3]
    assert image_hashes(changed)[2] == hashes[2]


def test_overlapping_image_sets_are_refused():
    images = _images(20)
    check_disjoint_images(images[:10], images[10:])
    with pytest.raises(DataError, match="share 2 identical images") as error:
        check_disjoint_images(images[:10], torch.cat([images[12:15], images[[4, 7]]]))
    assert "\n" not in str(error.value)
