"""Tests of predify.evaluate.corruptions: contract, fidelity to the published code, readers."""

from __future__ import annotations

import functools
import importlib.util
import io
import itertools
import math
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from predify.errors import DataError
from predify.evaluate.corruptions import (
    ALL_CORRUPTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    IMAGENET_C_CORRUPTIONS,
    CifarCArrays,
    ImageNetCFolder,
    _filters,
    _frost_photos,
    blur,
    corrupt,
    digital,
    frost_source,
    noise,
    parse_severities,
    resolve_corruptions,
    weather,
)
from predify.evaluate.corruptions._common import reference_shape, spatial_scale
from predify.evaluate.corruptions._frost_textures import generate_frost_texture

SHAPES = {
    "rgb32": (2, 3, 32, 32),
    "gray28": (1, 1, 28, 28),
    "rgb40x56": (2, 3, 40, 56),
}
SEVERITY_LEVELS = (1, 2, 3, 4, 5)
#: Corruptions that draw no random numbers.
DETERMINISTIC = {
    "defocus_blur",
    "zoom_blur",
    "brightness",
    "contrast",
    "pixelate",
    "jpeg_compression",
    "gaussian_blur",
    "saturate",
}
RANDOM = [name for name in ALL_CORRUPTIONS if name not in DETERMINISTIC]
#: (shape, corruption, severity) left (nearly) unchanged, and why. At 28-40 pixels the scaled
#: pixel parameters fall below half a pixel: defocus severity 1 has a disk radius of
#: 3 * s < 0.55 px (only the centre pixel) and an anti-aliasing sigma of 0.1 px; Gaussian blur
#: severities 1-2 have sigma s or 2 s <= 0.36 px. Saturation does not exist in grayscale.
NEARLY_UNCHANGED = {
    *((shape, "defocus_blur", 1) for shape in SHAPES),
    *((shape, "gaussian_blur", 1) for shape in SHAPES),
    ("gray28", "gaussian_blur", 2),
    ("rgb32", "gaussian_blur", 2),
    *(("gray28", "saturate", severity) for severity in SEVERITY_LEVELS),
}
#: Corruptions whose mean absolute change grows with severity for every shape here. Left out:
#: glass blur (sigma, displacement and number of passes do not grow together, and at small
#: sizes the displacement rounds to 1 px for every severity), zoom blur (severity 2 averages
#: 16 zooms up to 1.15, severity 3 11 zooms up to 1.2), snow, frost, fog and spatter (their
#: layers change character across severities), elastic transform (severities 1-2 are a large
#: affine warp, 3-5 a fine elastic one), saturate (gains 0.3, 0.1, 2, 5, 20) and pixelate on
#: 28 px (int(28 * factor) rounds unevenly).
MONOTONIC = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "defocus_blur",
    "motion_blur",
    "gaussian_blur",
    "brightness",
    "contrast",
    "jpeg_compression",
)


def make_images(shape: tuple[int, int, int, int], seed: int = 0) -> torch.Tensor:
    """Smooth structure plus fine texture, values in [0.1, 0.9]: [B, C, H, W]."""
    generator = torch.Generator().manual_seed(seed)
    batch, channels, height, width = shape
    coarse = torch.rand(
        batch, channels, max(2, height // 8), max(2, width // 8), generator=generator
    )
    smooth = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    fine = torch.rand(shape, generator=generator)
    return (0.1 + 0.6 * smooth + 0.2 * fine).clamp(0.0, 1.0)


@functools.cache
def corrupted(shape_key: str, name: str, severity: int) -> torch.Tensor:
    images = make_images(SHAPES[shape_key])
    return corrupt(images, name, severity, torch.Generator().manual_seed(1234))


def mean_change(shape_key: str, name: str, severity: int) -> float:
    images = make_images(SHAPES[shape_key])
    return float((corrupted(shape_key, name, severity) - images).abs().mean())


# --------------------------------------------------------------------------- registry


def test_registry_order_and_groups() -> None:
    assert list(CORRUPTIONS) == list(ALL_CORRUPTIONS)
    assert IMAGENET_C_CORRUPTIONS == (
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "defocus_blur",
        "glass_blur",
        "motion_blur",
        "zoom_blur",
        "snow",
        "frost",
        "fog",
        "brightness",
        "contrast",
        "elastic_transform",
        "pixelate",
        "jpeg_compression",
    )
    assert EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert ALL_CORRUPTIONS == IMAGENET_C_CORRUPTIONS + EXTRA_CORRUPTIONS
    assert all(CORRUPTIONS[name].__name__ == name for name in ALL_CORRUPTIONS)


def test_resolve_corruptions() -> None:
    assert resolve_corruptions("all") == list(ALL_CORRUPTIONS)
    assert resolve_corruptions("imagenet-c") == list(IMAGENET_C_CORRUPTIONS)
    assert resolve_corruptions("ImageNet_C") == list(IMAGENET_C_CORRUPTIONS)
    assert resolve_corruptions("extra") == list(EXTRA_CORRUPTIONS)
    assert resolve_corruptions("fog, snow,fog") == ["fog", "snow"]
    assert resolve_corruptions(["Gaussian-Noise", "extra"]) == [
        "gaussian_noise",
        *EXTRA_CORRUPTIONS,
    ]


def test_parse_severities() -> None:
    assert parse_severities("1-5") == [1, 2, 3, 4, 5]
    assert parse_severities("3") == [3]
    assert parse_severities("1,3,5") == [1, 3, 5]
    assert parse_severities("1-2, 5") == [1, 2, 5]
    assert parse_severities(4) == [4]
    assert parse_severities([5, 1, 5]) == [5, 1]


def test_scaling_rule() -> None:
    assert spatial_scale(224, 224) == 1.0
    assert reference_shape(224, 224) == (224, 224)
    assert reference_shape(28, 28) == (224, 224)
    assert reference_shape(40, 56) == (224, 314)
    assert spatial_scale(28, 28) == pytest.approx(0.125)


# --------------------------------------------------------------------------- output contract


@pytest.mark.parametrize("shape_key", list(SHAPES))
@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_output_contract_and_change(name: str, shape_key: str) -> None:
    images = make_images(SHAPES[shape_key])
    original = images.clone()
    for severity in SEVERITY_LEVELS:
        result = corrupted(shape_key, name, severity)
        assert result.shape == images.shape
        assert result.dtype == images.dtype
        assert result.device == images.device
        assert torch.isfinite(result).all()
        assert float(result.min()) >= 0.0 and float(result.max()) <= 1.0
        change = mean_change(shape_key, name, severity)
        if (shape_key, name, severity) in NEARLY_UNCHANGED:
            assert change < 0.01, (name, severity, change)
        else:
            assert change > 1e-3, (name, severity, change)
    assert torch.equal(make_images(SHAPES[shape_key]), original)


@pytest.mark.parametrize("shape_key", ["rgb32", "rgb40x56", "gray28"])
@pytest.mark.parametrize("name", MONOTONIC)
def test_severity_monotonic(name: str, shape_key: str) -> None:
    changes = [mean_change(shape_key, name, severity) for severity in SEVERITY_LEVELS]
    # Non-strict: on small images neighbouring severities can round to the same kernel.
    for lower, higher in itertools.pairwise(changes):
        assert higher >= lower - 1e-6, (name, changes)
    assert changes[-1] > changes[0], (name, changes)


@pytest.mark.parametrize("shape_key", ["rgb32", "rgb40x56"])
def test_pixelate_monotonic_on_rgb(shape_key: str) -> None:
    changes = [mean_change(shape_key, "pixelate", severity) for severity in SEVERITY_LEVELS]
    assert changes == sorted(changes)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", ["gaussian_noise", "glass_blur", "snow", "elastic_transform"])
def test_dtypes_preserved(name: str, dtype: torch.dtype) -> None:
    images = make_images((1, 3, 24, 24)).to(dtype)
    result = corrupt(images, name, 2, torch.Generator().manual_seed(0))
    assert result.dtype == dtype and result.shape == images.shape
    assert float(result.min()) >= 0.0 and float(result.max()) <= 1.0


def test_empty_batch() -> None:
    images = torch.zeros(0, 3, 16, 16)
    assert corrupt(images, "fog", 3).shape == (0, 3, 16, 16)


# --------------------------------------------------------------------------- randomness


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_seeded_generator_is_deterministic(name: str) -> None:
    images = make_images(SHAPES["rgb32"], seed=5)
    for severity in (3, 5):
        first = corrupt(images, name, severity, torch.Generator().manual_seed(7))
        second = corrupt(images, name, severity, torch.Generator().manual_seed(7))
        assert torch.equal(first, second)


@pytest.mark.parametrize("name", RANDOM)
def test_other_seed_gives_other_result(name: str) -> None:
    images = make_images(SHAPES["rgb32"], seed=5)
    first = corrupt(images, name, 3, torch.Generator().manual_seed(0))
    second = corrupt(images, name, 3, torch.Generator().manual_seed(1))
    assert not torch.equal(first, second)


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_corruptions_ignore_generator(name: str) -> None:
    images = make_images(SHAPES["rgb32"], seed=5)
    seeded = corrupt(images, name, 3, torch.Generator().manual_seed(0))
    assert torch.equal(seeded, corrupt(images, name, 3, torch.Generator().manual_seed(1)))
    assert torch.equal(seeded, corrupt(images, name, 3))


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_global_rng_untouched(name: str) -> None:
    images = make_images((1, 3, 20, 20))
    torch.manual_seed(99)
    state = torch.get_rng_state()
    corrupt(images, name, 4, torch.Generator().manual_seed(3))
    corrupt(images, name, 4)  # no generator: a fresh OS-seeded one, not the global one
    assert torch.equal(torch.get_rng_state(), state)


# --------------------------------------------------------------------------- bad input


def test_unknown_corruption_suggests_nearest() -> None:
    images = make_images((1, 3, 8, 8))
    with pytest.raises(DataError, match=r"unknown corruption 'gausian_noise'.*'gaussian_noise'"):
        corrupt(images, "gausian_noise", 1)
    with pytest.raises(DataError, match="expected one of: gaussian_noise, shot_noise"):
        corrupt(images, "nonsense", 1)
    with pytest.raises(DataError, match="unknown corruption 'fogg'"):
        resolve_corruptions("snow,fogg")
    with pytest.raises(DataError, match="no corruption selected"):
        resolve_corruptions(" , ")


@pytest.mark.parametrize("severity", [0, 6, -1, 2.5, True, "3", None])
def test_bad_severity(severity: object) -> None:
    with pytest.raises(DataError, match="severity must be an integer from 1 to 5"):
        corrupt(make_images((1, 3, 8, 8)), "contrast", severity)  # type: ignore[arg-type]


@pytest.mark.parametrize("spec", ["0-3", "1-6", "5-1", "a", "", "1,,x", 7])
def test_bad_severity_specs(spec: object) -> None:
    with pytest.raises(DataError):
        parse_severities(spec)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.full((1, 3, 8, 8), 1.1), r"must lie in \[0, 1\], got values in \[1\.1, 1\.1\]"),
        (torch.full((1, 3, 8, 8), -0.2), r"must lie in \[0, 1\]"),
        (torch.full((1, 3, 8, 8), float("nan")), "NaN or infinite"),
        (torch.rand(3, 8, 8), r"4 dimensions \[B, C, H, W\], got 3 with shape \(3, 8, 8\)"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.uint8), "floating-point.*torch.uint8"),
        (torch.rand(1, 2, 8, 8), "1 \\(grayscale\\) or 3 \\(RGB\\) channels, got 2"),
        (np.zeros((1, 3, 8, 8), dtype=np.float32), "must be a torch.Tensor"),
    ],
)
def test_bad_images(images: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        corrupt(images, "gaussian_noise", 1)  # type: ignore[arg-type]


def test_range_slack_accepted() -> None:
    images = torch.full((1, 3, 8, 8), 1.0 + 5e-7)
    images[..., 0, 0] = -5e-7
    result = corrupt(images, "contrast", 1)
    assert float(result.min()) >= 0.0 and float(result.max()) <= 1.0


def test_bad_generator() -> None:
    with pytest.raises(DataError, match=r"generator must be a torch\.Generator"):
        corrupt(make_images((1, 3, 8, 8)), "fog", 1, 123)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- fidelity


def published_plasma(mapsize: int, decay: float, draws: list[np.ndarray]) -> np.ndarray:
    """The published diamond-square code, fed with recorded uniform draws."""
    grid = np.zeros((mapsize, mapsize))
    step, wibble, supply = mapsize, 100.0, iter(draws)

    def jittered(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * next(supply)

    while step >= 2:
        half = step // 2
        corners = grid[0::step, 0::step]
        total = corners + np.roll(corners, -1, axis=0)
        total += np.roll(total, -1, axis=1)
        grid[half::step, half::step] = jittered(total)
        centres, corners = grid[half::step, half::step], grid[0::step, 0::step]
        grid[0::step, half::step] = jittered(
            centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        )
        grid[half::step, 0::step] = jittered(
            centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        )
        step //= 2
        wibble /= decay
    grid -= grid.min()
    return grid / grid.max()


def test_plasma_fractal_matches_published(monkeypatch: pytest.MonkeyPatch) -> None:
    draws: list[np.ndarray] = []
    original = weather.uniform

    def recording_uniform(*args: object, **kwargs: object) -> torch.Tensor:
        values = original(*args, **kwargs)  # type: ignore[arg-type]
        draws.append(values[0].double().numpy().copy())
        return values

    monkeypatch.setattr(weather, "uniform", recording_uniform)
    like = torch.zeros(1, dtype=torch.float64)
    maps = weather.plasma_fractal(1, 64, 1.7, torch.Generator().manual_seed(0), like)
    np.testing.assert_allclose(maps[0].numpy(), published_plasma(64, 1.7, draws), atol=1e-12)


@pytest.mark.parametrize(("height", "width"), [(224, 224), (40, 56), (28, 28)])
def test_pixelate_matches_pil_box(height: int, width: int) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    images = torch.from_numpy(pixels).permute(2, 0, 1)[None].double() / 255
    for severity, factor in enumerate(digital.PIXELATE_FACTOR, start=1):
        small = (int(width * factor), int(height * factor))
        pil = (
            Image.fromarray(pixels)
            .resize(small, Image.Resampling.BOX)
            .resize((width, height), Image.Resampling.BOX)
        )
        ours = corrupt(images, "pixelate", severity)[0].permute(1, 2, 0).numpy() * 255
        # PIL rounds to 8 bits after each pass; we do not.
        assert np.abs(np.asarray(pil, dtype=np.float64) - ours).max() <= 1.01


def rgb_to_hsv_reference(rgb: np.ndarray) -> np.ndarray:
    """skimage.color.rgb2hsv, written out."""
    value = rgb.max(-1)
    delta = value - rgb.min(-1)
    saturation = np.where(delta == 0, 0.0, delta / np.where(value == 0, 1, value))
    red, green, blue = np.moveaxis(rgb, -1, 0)
    safe = np.where(delta == 0, 1, delta)
    hue = np.where(
        blue == value,
        4 + (red - green) / safe,
        np.where(green == value, 2 + (blue - red) / safe, (green - blue) / safe),
    )
    hue = np.where(delta == 0, 0.0, (hue / 6) % 1)
    return np.stack([hue, saturation, value], -1)


def hsv_to_rgb_reference(hsv: np.ndarray) -> np.ndarray:
    """skimage.color.hsv2rgb, written out."""
    hue, saturation, value = np.moveaxis(hsv, -1, 0)
    sector = np.floor(hue * 6) % 6
    frac = hue * 6 - np.floor(hue * 6)
    p, q, t = (
        value * (1 - saturation),
        value * (1 - frac * saturation),
        value * (1 - (1 - frac) * saturation),
    )
    options = [
        (value, t, p),
        (q, value, p),
        (p, value, t),
        (p, q, value),
        (t, p, value),
        (value, p, q),
    ]
    return np.select([sector[..., None] == i for i in range(6)], [np.stack(o, -1) for o in options])


def test_brightness_and_saturate_match_hsv_roundtrip() -> None:
    rgb = np.random.default_rng(1).random((12, 12, 3))
    rgb[0, :3] = 0.4  # grey pixels
    rgb[1, :3] = 0.0  # black pixels
    rgb[2, 0] = (1.0, 1.0, 0.2)  # tied maxima
    images = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    for severity in SEVERITY_LEVELS:
        hsv = rgb_to_hsv_reference(rgb)
        hsv[..., 2] = np.clip(hsv[..., 2] + digital.BRIGHTNESS_SHIFT[severity - 1], 0, 1)
        expected = np.clip(hsv_to_rgb_reference(hsv), 0, 1)
        ours = corrupt(images, "brightness", severity)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(ours, expected, atol=1e-12)
        gain, offset = digital.SATURATE_PARAMS[severity - 1]
        hsv = rgb_to_hsv_reference(rgb)
        hsv[..., 1] = np.clip(hsv[..., 1] * gain + offset, 0, 1)
        expected = np.clip(hsv_to_rgb_reference(hsv), 0, 1)
        ours = corrupt(images, "saturate", severity)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_gaussian_blur_matches_scipy() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    image = np.random.default_rng(2).random((3, 224, 224))
    images = torch.from_numpy(image)[None]
    for severity in (1, 5):
        sigma = blur.GAUSSIAN_BLUR_SIGMA[severity - 1]
        expected = np.stack([ndimage.gaussian_filter(c, sigma, mode="nearest") for c in image])
        ours = corrupt(images, "gaussian_blur", severity)[0].numpy()
        np.testing.assert_allclose(ours, np.clip(expected, 0, 1), atol=1e-10)


def test_wide_reflect_gaussian_matches_scipy() -> None:
    """Elastic severity 1 smooths with sigma 170.8 px (kernel wider than the image)."""
    ndimage = pytest.importorskip("scipy.ndimage")
    field = np.random.default_rng(3).uniform(-1, 1, (50, 64))
    sigma = digital.ELASTIC_PARAMS[0][1]
    expected = ndimage.gaussian_filter(field, sigma, mode="reflect", truncate=3)
    ours = _filters.gaussian_filter(torch.from_numpy(field), sigma, truncate=3, mode="reflect")
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12)


def test_clipped_zoom_matches_scipy_zoom() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    image = np.random.default_rng(4).random((40, 40))
    for zoom in (*blur.zoom_factors(1), *blur.zoom_factors(5), 4.5):
        crop = math.ceil(40 / zoom)
        top = (40 - crop) // 2
        enlarged = ndimage.zoom(image[top : top + crop, top : top + crop], zoom, order=1)
        trim = (enlarged.shape[0] - 40) // 2
        expected = enlarged[trim : trim + 40, trim : trim + 40]
        ours = _filters.clipped_zoom(torch.from_numpy(image), zoom).numpy()
        np.testing.assert_allclose(ours, expected, atol=1e-9)


def test_zoom_blur_factor_counts_follow_numpy_arange() -> None:
    assert [len(blur.zoom_factors(s)) for s in SEVERITY_LEVELS] == [12, 16, 11, 13, 11]


def test_motion_blur_kernel_follows_imagemagick() -> None:
    kernels = _filters.motion_blur_kernels(3, 1.5, torch.tensor([0.0, 90.0, 45.0]))
    half = kernels.shape[-1] // 2
    weights = torch.exp(-(torch.arange(7.0, dtype=torch.float64) ** 2) / (2 * 1.5**2))
    weights /= weights.sum()
    torch.testing.assert_close(kernels[0, half, half:], weights)  # along +x
    torch.testing.assert_close(kernels[1, half:, half], weights)  # along +y (down)
    assert float(kernels.sum(dim=(1, 2)).sub(1).abs().max()) < 1e-12
    # At 45 degrees the rounded taps 1 and 2 land on the same pixel (1, 1).
    assert float(kernels[2, half + 1, half + 1]) == pytest.approx(float(weights[1] + weights[2]))


def test_defocus_kernel_is_published_disk() -> None:
    kernel = blur.disk_kernel(3, 0.1)
    assert kernel.shape == (17, 17)
    inside = kernel > 1e-6
    assert int(inside.sum()) == 29  # lattice points with x^2 + y^2 <= 9
    assert float(kernel.sum()) == pytest.approx(1.0)
    assert blur.disk_kernel(10, 0.5).shape == (21, 21)


def test_frost_textures_are_deterministic() -> None:
    first = generate_frost_texture(2, size=96)
    second = generate_frost_texture(2, size=96)
    assert torch.equal(first, second)
    assert first.shape == (3, 96, 96) and first.dtype == torch.float32
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0
    assert not torch.equal(first, generate_frost_texture(3, size=96))


# --------------------------------------------------------------------------- readers


def write_imagenet_c(root: Path, corruption: str, severity: int) -> None:
    rng = np.random.default_rng(0)
    for class_name, count in (("n02", 2), ("n01", 1)):
        folder = root / corruption / str(severity) / class_name
        folder.mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"img{i}.png")


def test_imagenet_c_folder(tmp_path: Path) -> None:
    write_imagenet_c(tmp_path, "motion_blur", 2)
    dataset = ImageNetCFolder(tmp_path, "motion_blur", 2)
    assert dataset.classes == ["n01", "n02"]
    assert len(dataset) == 3
    labels = [dataset[i][1] for i in range(3)]
    assert labels == [0, 1, 1]
    image, label = dataset[1]
    assert isinstance(label, int)
    assert image.shape == (3, 12, 10) and image.dtype == torch.float32
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    with_transform = ImageNetCFolder(
        tmp_path, "motion_blur", 2, transform=lambda picture: picture.size
    )
    assert with_transform[0][0] == (10, 12)


def test_imagenet_c_folder_errors(tmp_path: Path) -> None:
    write_imagenet_c(tmp_path, "fog", 1)
    with pytest.raises(DataError, match=r"ImageNet-C folder not found: .*fog[/\\]3"):
        ImageNetCFolder(tmp_path, "fog", 3)
    with pytest.raises(DataError, match="root folder not found"):
        ImageNetCFolder(f"{tmp_path}/missing", "fog", 1)
    with pytest.raises(DataError, match="unknown corruption 'fgo'"):
        ImageNetCFolder(tmp_path, "fgo", 1)
    with pytest.raises(DataError, match="severity must be"):
        ImageNetCFolder(tmp_path, "fog", 0)


def write_cifar_c(root: Path, per_severity: int = 2, labels_per_severity: bool = False) -> None:
    total = 5 * per_severity
    images = np.zeros((total, 32, 32, 3), dtype=np.uint8)
    for i in range(total):
        images[i] = i * 10  # image i is uniformly i * 10
    np.save(root / "gaussian_noise.npy", images)
    labels = np.arange(per_severity if labels_per_severity else total) % 10
    np.save(root / "labels.npy", labels)


def test_cifar_c_arrays(tmp_path: Path) -> None:
    write_cifar_c(tmp_path)
    dataset = CifarCArrays(tmp_path, "gaussian_noise", 2)
    assert len(dataset) == 2
    image, label = dataset[1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert float(image.mean()) == pytest.approx(30 / 255)  # the 4th image overall
    assert label == 3 and isinstance(label, int)
    with pytest.raises(IndexError):
        dataset[2]


def test_cifar_c_arrays_shared_labels(tmp_path: Path) -> None:
    write_cifar_c(tmp_path, per_severity=3, labels_per_severity=True)
    dataset = CifarCArrays(tmp_path, "gaussian_noise", 5)
    assert [dataset[i][1] for i in range(3)] == [0, 1, 2]
    assert float(dataset[0][0].mean()) == pytest.approx(120 / 255)


def test_cifar_c_arrays_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"CIFAR-C file not found: .*gaussian_noise\.npy"):
        CifarCArrays(tmp_path, "gaussian_noise", 1)
    write_cifar_c(tmp_path)
    with pytest.raises(DataError, match=r"CIFAR-C file not found: .*snow\.npy"):
        CifarCArrays(tmp_path, "snow", 1)
    root = tmp_path
    np.save(root / "fog.npy", np.zeros((7, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"multiple of 5.*N = 7"):
        CifarCArrays(tmp_path, "fog", 1)
    np.save(root / "frost.npy", np.zeros((10, 32, 32, 3), dtype=np.float32))
    with pytest.raises(DataError, match="must hold uint8 images"):
        CifarCArrays(tmp_path, "frost", 1)
    np.save(root / "labels.npy", np.zeros(4, dtype=np.int64))
    with pytest.raises(DataError, match="must hold 10 or 2 labels"):
        CifarCArrays(tmp_path, "gaussian_noise", 1)


# --------------------------------------------------------------------------- CUDA


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_cuda(name: str) -> None:
    images = make_images((2, 3, 40, 56)).cuda()
    for generator in (
        torch.Generator(device="cuda").manual_seed(0),
        torch.Generator().manual_seed(0),
    ):
        result = corrupt(images, name, 3, generator)
        assert result.device == images.device and result.shape == images.shape
        assert float(result.min()) >= 0.0 and float(result.max()) <= 1.0
    cpu = corrupt(images.cpu(), name, 3, torch.Generator().manual_seed(0))
    on_gpu = corrupt(images, name, 3, torch.Generator().manual_seed(0))
    if name in DETERMINISTIC or name in {"motion_blur", "glass_blur", "frost"}:
        # Same draws from the CPU generator: results agree up to float rounding.
        torch.testing.assert_close(on_gpu.cpu(), cpu, atol=2e-4, rtol=0)


# --------------------------------------------------------------------------- published constants
# The severity tables of Hendrycks & Dietterich's code, written out here so that a wrong
# constant in predify fails. Source: github.com/hendrycks/robustness (commit 8190fe3),
# ImageNet-C/create_c/make_imagenet_c.py, the ``c = [...]`` line of the function named in each
# entry; ImageNet-C/imagenet_c/imagenet_c/corruptions.py (the ``imagenet-c`` PyPI package)
# holds the same values in the functions of the same names.
PUBLISHED_TABLES: dict[str, tuple[object, ...]] = {
    # gaussian_noise: c = [.08, .12, 0.18, 0.26, 0.38]
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    # shot_noise: c = [60, 25, 12, 5, 3]
    "shot_noise": (60, 25, 12, 5, 3),
    # impulse_noise: c = [.03, .06, .09, 0.17, 0.27]
    "impulse_noise": (0.03, 0.06, 0.09, 0.17, 0.27),
    # defocus_blur: c = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)]
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    # glass_blur: c = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)]
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    # motion_blur: c = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)]
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    # zoom_blur: c = [np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
    #                 np.arange(1, 1.21, 0.02), np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03)]
    "zoom_blur": (
        (1, 1.11, 0.01),
        (1, 1.16, 0.01),
        (1, 1.21, 0.02),
        (1, 1.26, 0.02),
        (1, 1.31, 0.03),
    ),
    # snow: c = [(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    #            (0.55, 0.3, 4, 0.9, 12, 8, 0.7), (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    #            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)]
    "snow": (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ),
    # frost: c = [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)]
    "frost": ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    # fog: c = [(1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)]
    "fog": ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    # brightness: c = [.1, .2, .3, .4, .5]
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),
    # contrast: c = [0.4, .3, .2, .1, .05]
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),
    # elastic_transform: c = [(244 * 2, 244 * 0.7, 244 * 0.1), (244 * 2, 244 * 0.08, 244 * 0.2),
    #     (244 * 0.05, 244 * 0.01, 244 * 0.02), (244 * 0.07, 244 * 0.01, 244 * 0.02),
    #     (244 * 0.12, 244 * 0.01, 244 * 0.02)]   ("244 should have been 224", kept as published)
    "elastic_transform": (
        (244 * 2, 244 * 0.7, 244 * 0.1),
        (244 * 2, 244 * 0.08, 244 * 0.2),
        (244 * 0.05, 244 * 0.01, 244 * 0.02),
        (244 * 0.07, 244 * 0.01, 244 * 0.02),
        (244 * 0.12, 244 * 0.01, 244 * 0.02),
    ),
    # pixelate: c = [0.6, 0.5, 0.4, 0.3, 0.25]
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),
    # jpeg_compression: c = [25, 18, 15, 10, 7]
    "jpeg_compression": (25, 18, 15, 10, 7),
    # speckle_noise: c = [.15, .2, 0.35, 0.45, 0.6]
    "speckle_noise": (0.15, 0.2, 0.35, 0.45, 0.6),
    # gaussian_blur: c = [1, 2, 3, 4, 6]
    "gaussian_blur": (1, 2, 3, 4, 6),
    # spatter: c = [(0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0),
    #     (0.65, 0.3, 2, 0.68, 0.5, 0), (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)]
    "spatter": (
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    ),
    # saturate: c = [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)]
    "saturate": ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
}
#: Where predify keeps each table.
PREDIFY_TABLES: dict[str, tuple[object, ...]] = {
    "gaussian_noise": noise.GAUSSIAN_NOISE_STD,
    "shot_noise": noise.SHOT_NOISE_PHOTONS,
    "impulse_noise": noise.IMPULSE_NOISE_AMOUNT,
    "defocus_blur": blur.DEFOCUS_BLUR_PARAMS,
    "glass_blur": blur.GLASS_BLUR_PARAMS,
    "motion_blur": blur.MOTION_BLUR_PARAMS,
    "zoom_blur": blur.ZOOM_BLUR_RANGES,
    "snow": weather.SNOW_PARAMS,
    "frost": weather.FROST_PARAMS,
    "fog": weather.FOG_PARAMS,
    "brightness": digital.BRIGHTNESS_SHIFT,
    "contrast": digital.CONTRAST_FACTOR,
    "elastic_transform": digital.ELASTIC_PARAMS,
    "pixelate": digital.PIXELATE_FACTOR,
    "jpeg_compression": digital.JPEG_QUALITY,
    "speckle_noise": noise.SPECKLE_NOISE_STD,
    "gaussian_blur": blur.GAUSSIAN_BLUR_SIGMA,
    "spatter": weather.SPATTER_PARAMS,
    "saturate": digital.SATURATE_PARAMS,
}


def test_published_tables_cover_all_19() -> None:
    assert set(PUBLISHED_TABLES) == set(ALL_CORRUPTIONS) == set(PREDIFY_TABLES)


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_severity_table_is_published(name: str) -> None:
    ours = np.asarray(PREDIFY_TABLES[name], dtype=np.float64)
    published = np.asarray(PUBLISHED_TABLES[name], dtype=np.float64)
    assert ours.shape == published.shape, name
    np.testing.assert_array_equal(ours, published, err_msg=name)


def test_published_scalar_constants() -> None:
    # make_imagenet_c.py, motion_blur: angle=np.random.uniform(-45, 45)
    assert blur.MOTION_BLUR_ANGLE_RANGE == (-45, 45)
    # snow: snow_layer.motion_blur(..., angle=np.random.uniform(-135, -45))
    assert weather.SNOW_ANGLE_RANGE == (-135, -45)
    # plasma_fractal(mapsize=256, ...): wibble = 100
    assert weather._PLASMA_MIN_SIZE == 256 and weather._PLASMA_START_WIBBLE == 100
    # spatter: water "pale turqouise" 175/255, 238/255, 238/255; "mud brown" 63/255, 42/255, 20/255
    assert weather._WATER_RGB == (175 / 255, 238 / 255, 238 / 255)
    assert weather._MUD_RGB == (63 / 255, 42 / 255, 20 / 255)
    # frost: idx = np.random.randint(5) over ['./frost1.png', ..., './frost6.jpg']
    assert _frost_photos.PUBLISHED_FROST_FILES == (
        "frost1.png",
        "frost2.png",
        "frost3.png",
        "frost4.jpg",
        "frost5.jpg",
    )
    # zoom_blur: len(np.arange(...)) per severity, the float quirk of arange included
    assert [len(np.arange(*r)) for r in PUBLISHED_TABLES["zoom_blur"]] == [12, 16, 11, 13, 11]  # type: ignore[misc]


# --------------------------------------------------------------------------- published code
# The ``imagecorruptions`` package (test extra) is the published code that runs here: its
# corruptions.py is Hendrycks & Dietterich's, adapted to any image size (it departs from it in
# places, see the corruptions README: only the functions that agree are compared). Its import
# needs ``pkg_resources`` (gone from recent setuptools) and its blurs skimage's
# ``multichannel`` argument (gone in 0.19); the loader supplies those two for this module's
# tests and changes nothing else in the published functions.


@pytest.fixture(scope="module")
def published() -> Iterator[types.ModuleType]:
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("imagecorruptions (in the test extra) is not installed")
    skimage_filters = pytest.importorskip("skimage.filters")
    root = Path(next(iter(spec.submodule_search_locations)))
    resources = types.ModuleType("pkg_resources")
    resources.resource_filename = lambda _name, path: str(root / path)  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "pkg_resources", resources)
        module_spec = importlib.util.spec_from_file_location(
            "published_imagecorruptions", root / "corruptions.py"
        )
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)

        def gaussian(image: np.ndarray, sigma: float, multichannel: bool = False, **kw: object):
            if multichannel:
                kw["channel_axis"] = -1
            return skimage_filters.gaussian(image, sigma=sigma, **kw)

        module.gaussian = gaussian  # type: ignore[attr-defined]
        yield module


def natural_like(shape: tuple[int, int, int, int], seed: int = 0) -> torch.Tensor:
    """Images with a 1/f amplitude spectrum (as natural images), values in [0.1, 0.9]."""
    generator = torch.Generator().manual_seed(seed)
    rows, cols = torch.fft.fftfreq(shape[-2]), torch.fft.fftfreq(shape[-1])
    radius = (rows.view(-1, 1) ** 2 + cols.view(1, -1) ** 2).sqrt()
    radius[0, 0] = 1.0
    spectrum = torch.complex(
        torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
    )
    spectrum = spectrum / radius
    spectrum[..., 0, 0] = 0
    images = torch.fft.ifft2(spectrum).real.double()
    low = images.amin(dim=(1, 2, 3), keepdim=True)
    high = images.amax(dim=(1, 2, 3), keepdim=True)
    return 0.1 + 0.8 * (images - low) / (high - low)


def to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def quantised(shape: tuple[int, int, int, int], seed: int = 0) -> torch.Tensor:
    """natural_like images on the 8-bit grid, as the published code receives them (float64)."""
    return torch.round(natural_like(shape, seed) * 255) / 255


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_deterministic_corruptions_match_published_code(
    published: types.ModuleType, severity: int
) -> None:
    images = quantised((1, 3, 224, 224), seed=severity)
    picture = to_uint8_hwc(images[0])
    # Float results: the published functions return values in [0, 255].
    for name, atol in (
        ("defocus_blur", 1e-6),  # cv2.filter2D with a float32 kernel vs an FFT in float64
        ("gaussian_blur", 1e-9),  # skimage.filters.gaussian
        ("contrast", 1e-12),
        ("brightness", 1e-12),  # skimage rgb2hsv / hsv2rgb
        ("saturate", 1e-12),
    ):
        expected = getattr(published, name)(picture, severity) / 255
        ours = corrupt(images, name, severity)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(ours, expected, atol=atol, rtol=0, err_msg=name)
    # JPEG: the same PIL codec at the same quality, so the same bytes.
    expected_jpeg = np.asarray(published.jpeg_compression(Image.fromarray(picture), severity))
    ours_jpeg = corrupt(images, "jpeg_compression", severity)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(np.round(ours_jpeg * 255).astype(np.uint8), expected_jpeg)


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_jpeg_matches_pil(severity: int) -> None:
    images = quantised((2, 3, 40, 56), seed=3)
    ours = corrupt(images, "jpeg_compression", severity)
    for image, result in zip(images, ours, strict=True):
        buffer = io.BytesIO()
        Image.fromarray(to_uint8_hwc(image)).save(
            buffer, "JPEG", quality=(25, 18, 15, 10, 7)[severity - 1]
        )
        expected = np.asarray(Image.open(buffer).convert("RGB"))
        np.testing.assert_array_equal(to_uint8_hwc(result), expected)


def test_zoom_blur_matches_published_clipped_zoom() -> None:
    """make_imagenet_c.py, zoom_blur and clipped_zoom, written out with scipy's zoom."""
    ndimage = pytest.importorskip("scipy.ndimage")
    images = quantised((1, 3, 64, 64), seed=2).float()
    x = images[0].permute(1, 2, 0).numpy()
    for severity in (1, 5):
        factors = np.arange(*PUBLISHED_TABLES["zoom_blur"][severity - 1])  # type: ignore[misc]
        out = np.zeros_like(x)
        for factor in factors:
            crop = int(np.ceil(64 / float(factor)))
            top = (64 - crop) // 2
            zoomed = ndimage.zoom(
                x[top : top + crop, top : top + crop], (factor, factor, 1), order=1
            )
            trim = (zoomed.shape[0] - 64) // 2
            out += zoomed[trim : trim + 64, trim : trim + 64]
        expected = np.clip((x + out) / (len(factors) + 1), 0, 1)
        ours = corrupt(images, "zoom_blur", severity)[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(ours, expected, atol=1e-5)


# --------------------------------------------------------------------------- noise statistics


def clipped_normal_moments(mean: float, std: float) -> tuple[float, float]:
    """Mean and standard deviation of clip(mean + std Z, 0, 1), Z standard normal."""
    stats = pytest.importorskip("scipy.stats")
    integrate = pytest.importorskip("scipy.integrate")

    def moment(power: int) -> float:
        inside = integrate.quad(
            lambda v: v**power * stats.norm.pdf(v, mean, std), 0.0, 1.0, epsabs=1e-13
        )[0]
        return inside + stats.norm.sf(1.0, mean, std)  # the mass clipped to 1 (0 adds nothing)

    first, second = moment(1), moment(2)
    return first, math.sqrt(second - first**2)


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_gaussian_and_speckle_noise_follow_their_parameters(severity: int) -> None:
    """Gaussian: x + N(0, c^2); speckle: x + x N(0, c^2); both clipped to [0, 1]. Checked on
    two grey levels, so that an additive speckle or a level-dependent Gaussian noise fails."""
    levels = (0.3, 0.7)
    images = torch.empty(1, 3, 128, 128, dtype=torch.float64)
    images[..., :64, :], images[..., 64:, :] = levels
    for name in ("gaussian_noise", "speckle_noise"):
        c = float(PUBLISHED_TABLES[name][severity - 1])  # type: ignore[arg-type]
        values = corrupt(images, name, severity, torch.Generator().manual_seed(severity))
        for level, half in zip(levels, (values[..., :64, :], values[..., 64:, :]), strict=True):
            std = c if name == "gaussian_noise" else level * c
            expected_mean, expected_std = clipped_normal_moments(level, std)
            count = half.numel()
            # Five standard errors of the sample mean and of the sample standard deviation.
            assert abs(float(half.mean()) - expected_mean) < 5 * expected_std / math.sqrt(count)
            assert abs(float(half.std()) - expected_std) < 5 * expected_std / math.sqrt(2 * count)


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_shot_noise_is_poisson_with_published_photons(severity: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    photons = int(PUBLISHED_TABLES["shot_noise"][severity - 1])  # type: ignore[call-overload]
    level = 0.5
    images = torch.full((1, 3, 128, 128), level, dtype=torch.float64)
    values = corrupt(images, "shot_noise", severity, torch.Generator().manual_seed(severity))
    # Values are k / photons for integers k: Poisson(level * photons) counts, clipped at 1.
    counts = values * photons
    np.testing.assert_allclose(counts.numpy(), counts.round().numpy(), atol=1e-9)
    k = np.arange(photons + 1)
    pmf = stats.poisson.pmf(k, level * photons)
    pmf[-1] += stats.poisson.sf(photons, level * photons)  # clipped to 1
    expected = np.bincount(counts.round().long().flatten().numpy(), minlength=photons + 1)
    # Chi-square goodness of fit over the bins with enough mass.
    big = pmf * values.numel() >= 20
    observed = expected[big]
    wanted = pmf[big] * values.numel()
    chi2 = float(((observed - wanted) ** 2 / wanted).sum())
    assert stats.chi2.sf(chi2, max(int(big.sum()) - 1, 1)) > 1e-4, (severity, chi2)
    assert expected[~big].sum() <= 5 * max(pmf[~big].sum() * values.numel(), 1)


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_impulse_noise_matches_skimage_salt_and_pepper(severity: int) -> None:
    amount = float(PUBLISHED_TABLES["impulse_noise"][severity - 1])  # type: ignore[arg-type]
    images = torch.full((1, 3, 128, 128), 0.5, dtype=torch.float64)
    values = corrupt(images, "impulse_noise", severity, torch.Generator().manual_seed(severity))
    count = values.numel()
    tolerance = 5 * math.sqrt(amount / 2 * (1 - amount / 2) / count)
    salt, pepper = float((values == 1).double().mean()), float((values == 0).double().mean())
    assert abs(salt - amount / 2) < tolerance and abs(pepper - amount / 2) < tolerance
    assert bool(((values == 0) | (values == 1) | (values == 0.5)).all())
    # The published code calls skimage's random_noise(mode="s&p", amount=c): same fractions.
    util = pytest.importorskip("skimage.util")
    reference = util.random_noise(images[0].numpy(), mode="s&p", amount=amount, rng=severity)
    assert abs(float((reference == 1).mean()) - amount / 2) < tolerance
    assert abs(float((reference == 0).mean()) - amount / 2) < tolerance


# --------------------------------------------------------------------------- elastic


@pytest.mark.parametrize("severity", SEVERITY_LEVELS)
def test_elastic_matches_opencv_and_map_coordinates(
    severity: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make_imagenet_c.py's elastic_transform, written out with cv2.getAffineTransform,
    cv2.warpAffine, skimage's gaussian and scipy's map_coordinates, fed with predify's draws."""
    cv2 = pytest.importorskip("cv2")
    ndimage = pytest.importorskip("scipy.ndimage")
    filters = pytest.importorskip("skimage.filters")
    draws: list[np.ndarray] = []
    original = digital.uniform

    def recording_uniform(*args: object, **kwargs: object) -> torch.Tensor:
        values = original(*args, **kwargs)  # type: ignore[arg-type]
        draws.append(values[0].double().numpy().copy())
        return values

    monkeypatch.setattr(digital, "uniform", recording_uniform)
    size = 224
    images = natural_like((1, 3, size, size), seed=severity)
    ours = corrupt(images, "elastic_transform", severity, torch.Generator().manual_seed(0))
    alpha, sigma, jitter = PUBLISHED_TABLES["elastic_transform"][severity - 1]  # type: ignore[misc]
    image = images[0].permute(1, 2, 0).numpy().astype(np.float32)
    centre = np.float32((size, size)) // 2
    half = size // 3
    pts1 = np.float32([centre + half, [centre[0] + half, centre[1] - half], centre - half])
    assert np.all(np.abs(draws[0]) <= jitter)
    pts2 = pts1 + draws[0].astype(np.float32)
    matrix = cv2.getAffineTransform(pts1, pts2)
    image = cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REFLECT_101)
    dx = (filters.gaussian(draws[1][0], sigma, mode="reflect", truncate=3) * alpha).astype(
        np.float32
    )
    dy = (filters.gaussian(draws[1][1], sigma, mode="reflect", truncate=3) * alpha).astype(
        np.float32
    )
    x, y, z = np.meshgrid(np.arange(size), np.arange(size), np.arange(3))
    indices = (
        np.reshape(y + dy[..., None], (-1, 1)),
        np.reshape(x + dx[..., None], (-1, 1)),
        np.reshape(z, (-1, 1)),
    )
    expected = ndimage.map_coordinates(image, indices, order=1, mode="reflect").reshape(image.shape)
    difference = np.abs(ours[0].permute(1, 2, 0).numpy() - np.clip(expected, 0, 1))
    # OpenCV interpolates on a 1/32-pixel grid with 15-bit weights; predify does not.
    assert float(difference.mean()) < 2e-3, float(difference.mean())
    assert float(difference.max()) < 0.03, float(difference.max())


# --------------------------------------------------------------------------- glass blur


def published_glass_loop(picture: np.ndarray, delta: int, draws: Iterator[tuple[int, int]]) -> None:
    """make_imagenet_c.py, glass_blur's "locally shuffle pixels" loop, one pass, statement for
    statement on an [H, W, C] array (the published loop hard-codes 224 for H and W). On numpy
    views the tuple assignment copies the neighbour into (h, w); it does not swap."""
    height, width = picture.shape[:2]
    for h in range(height - delta, delta, -1):
        for w in range(width - delta, delta, -1):
            dx, dy = next(draws)
            h_prime, w_prime = h + dy, w + dx
            # swap
            picture[h, w], picture[h_prime, w_prime] = picture[h_prime, w_prime], picture[h, w]


def recorded_glass_draws(
    monkeypatch: pytest.MonkeyPatch,
) -> list[torch.Tensor]:
    """Record the displacements local_shuffle draws: one [2 (dx, dy), N, B] tensor per pass."""
    draws: list[torch.Tensor] = []
    original = blur.randint

    def recording_randint(*args: object, **kwargs: object) -> torch.Tensor:
        values = original(*args, **kwargs)  # type: ignore[arg-type]
        draws.append(values.clone())
        return values

    monkeypatch.setattr(blur, "randint", recording_randint)
    return draws


def in_scan_order(
    offsets: torch.Tensor, height: int, width: int, delta: int, image: int
) -> list[tuple[int, int]]:
    """One pass's (dx, dy) for one image, in the published loop's visiting order."""
    rows, cols, _ = blur._swap_schedule(height, width, delta)
    slot = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(rows, cols, strict=True))}
    return [
        (int(offsets[0, slot[h, w], image]), int(offsets[1, slot[h, w], image]))
        for h in range(height - delta, delta, -1)
        for w in range(width - delta, delta, -1)
    ]


@pytest.mark.parametrize(
    ("height", "width", "delta", "passes"), [(17, 21, 1, 2), (23, 19, 2, 1), (26, 30, 4, 2)]
)
def test_glass_shuffle_equals_published_loop(
    height: int, width: int, delta: int, passes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = recorded_glass_draws(monkeypatch)
    images = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    result = blur.local_shuffle(images, delta, passes, torch.Generator().manual_seed(4))
    assert len(draws) == passes
    for image in range(2):
        picture = images[image].permute(1, 2, 0).numpy().copy()
        for offsets in draws:
            published_glass_loop(
                picture, delta, iter(in_scan_order(offsets, height, width, delta, image))
            )
        np.testing.assert_array_equal(result[image].permute(1, 2, 0).numpy(), picture)
    # Copies, not swaps: some pixels are duplicated, so the result is no permutation.
    flat = result[0].reshape(3, -1).T
    assert len({tuple(pixel.tolist()) for pixel in flat}) < flat.shape[0]


def replay(supply: Iterator[np.ndarray]) -> Callable[..., np.ndarray]:
    """A stand-in for np.random.randint that returns the recorded draws in turn."""
    return lambda *_args, **_kwargs: next(supply)


@pytest.mark.parametrize(("size", "severities"), [(32, SEVERITY_LEVELS), (224, (2,))])
def test_glass_blur_matches_published_code(
    published: types.ModuleType,
    size: int,
    severities: tuple[int, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """imagecorruptions' glass_blur (Hendrycks & Dietterich's, looping over the image's own
    size) fed with predify's displacements. Below 224 px both use the published pixel values."""
    for severity in severities:
        draws = recorded_glass_draws(monkeypatch)
        images = quantised((1, 3, size, size), seed=severity)
        ours = corrupt(images, "glass_blur", severity, torch.Generator().manual_seed(severity))
        delta = int(PUBLISHED_TABLES["glass_blur"][severity - 1][1])  # type: ignore[index]
        supply = iter(
            [
                np.array(pair)
                for offsets in draws
                for pair in in_scan_order(offsets, size, size, delta, 0)
            ]
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(np.random, "randint", replay(supply))
            expected = published.glass_blur(to_uint8_hwc(images[0]), severity) / 255
        assert next(supply, None) is None  # every draw consumed
        # The published code truncates the first blur to uint8 (error < 1/255); predify does not.
        difference = np.abs(ours[0].permute(1, 2, 0).numpy() - expected)
        assert float(difference.max()) < 1 / 255, (severity, float(difference.max()))
        monkeypatch.undo()


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels, per image [B]."""
    return images.diff(dim=-1).abs().mean(dim=(1, 2, 3)) + images.diff(dim=-2).abs().mean(
        dim=(1, 2, 3)
    )


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_glass_blur_severities_ordered_on_small_images(channels: int, size: int) -> None:
    """Each severity blurs more than the one below, on every image. (PSNR is no measure of it:
    the published code at 224 px gives severity 2 a higher PSNR than 1 and 4 than 3.)"""
    images = natural_like((4, channels, size, size), seed=size)
    kept = torch.stack(
        [
            sharpness(corrupt(images, "glass_blur", s, torch.Generator().manual_seed(s)))
            / sharpness(images)
            for s in SEVERITY_LEVELS
        ]
    )  # [severity, image]
    steps = kept[:-1] - kept[1:]
    assert bool((steps > 0.005).all()), kept.T


def test_glass_blur_scale_rule() -> None:
    assert blur.glass_blur_scale(28, 28) == 1.0
    assert blur.glass_blur_scale(224, 300) == 1.0
    assert blur.glass_blur_scale(448, 500) == 2.0


# --------------------------------------------------------------------------- frost
#: (height, width) of the five frost photographs of the published code (frost1.png ...
#: frost5.jpg in hendrycks/robustness ImageNet-C/create_c/ and in imagecorruptions/frost/).
PUBLISHED_FROST_SIZES = ((600, 900), (315, 560), (315, 560), (350, 527), (495, 660))


def find_crop(crop: np.ndarray, layers: list[np.ndarray]) -> tuple[int, int, int] | None:
    """(layer, top, left) of an exact crop [h, w, 3] uint8 in one of the layers, or None."""
    height, width = crop.shape[:2]
    for index, layer in enumerate(layers):
        rows, cols = layer.shape[0] - height + 1, layer.shape[1] - width + 1
        if rows <= 0 or cols <= 0:
            continue
        match = np.ones((rows, cols), dtype=bool)
        for dy, dx in ((0, 0), (0, width - 1), (height - 1, 0), (height // 2, width // 2)):
            match &= (layer[dy : dy + rows, dx : dx + cols] == crop[dy, dx]).all(-1)
        for top, left in zip(*np.nonzero(match), strict=True):
            if np.array_equal(layer[top : top + height, left : left + width], crop):
                return index, int(top), int(left)
    return None


def frost_crops(seed: int) -> np.ndarray:
    """Frost at severity 1 on black 224 px images: 0.4 x the crop, as 8-bit levels [B, h, w, 3]."""
    images = torch.zeros(3, 3, 224, 224, dtype=torch.float64)
    result = corrupt(images, "frost", 1, torch.Generator().manual_seed(seed))
    levels = (result / PUBLISHED_TABLES["frost"][0][1] * 255).permute(0, 2, 3, 1)  # type: ignore[index]
    return levels.round().to(torch.uint8).numpy()


def test_frost_uses_published_photographs_when_installed() -> None:
    files = _frost_photos.published_frost_files()
    if files is None:
        pytest.skip("imagecorruptions (in the test extra) is not installed")
    cv2 = pytest.importorskip("cv2")
    assert frost_source() == "imagecorruptions"
    layers, sizes = _frost_photos.frost_layers()
    assert [tuple(size) for size in sizes.tolist()] == list(PUBLISHED_FROST_SIZES)
    photographs = []
    for path, layer, (height, width) in zip(files, layers, PUBLISHED_FROST_SIZES, strict=True):
        # The published code: frost = cv2.imread(filename)[..., [2, 1, 0]] (alpha dropped).
        expected = cv2.imread(str(path))[..., [2, 1, 0]]
        ours = (layer[:, :height, :width].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        difference = np.abs(ours.astype(int) - expected.astype(int))
        # PNGs decode identically; JPEG decoders may differ by a level on a few pixels.
        assert difference.max() <= (0 if path.suffix == ".png" else 2), path.name
        assert difference.mean() < 0.05, path.name
        photographs.append(ours)
    found = [find_crop(crop, photographs) for crop in frost_crops(seed=5)]
    assert all(place is not None for place in found), found
    for index, top, left in found:  # type: ignore[misc]
        # x_start = randint(0, frost.shape[0] - 224), y_start likewise: the last start excluded.
        height, width = PUBLISHED_FROST_SIZES[index]
        assert 0 <= top < height - 224 and 0 <= left < width - 224


def test_frost_falls_back_to_generated_textures(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = _frost_photos.published_frost_files() is not None
    with_photos = frost_crops(seed=5)
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)  # as if not installed
    assert _frost_photos.published_frost_files() is None
    assert frost_source() == "generated"
    layers, sizes = _frost_photos.frost_layers()
    assert sizes.tolist() == [[512, 512]] * 5
    textures = [generate_frost_texture(i) for i in range(5)]
    torch.testing.assert_close(layers, torch.stack(textures), rtol=0, atol=0)
    generated = frost_crops(seed=5)
    levels = [
        (t.double().permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for t in textures
    ]
    assert all(find_crop(crop, levels) is not None for crop in generated)
    monkeypatch.undo()
    if installed:  # back to the photographs once the package is visible again
        assert not np.array_equal(generated, with_photos)
        assert frost_source() == "imagecorruptions"
        assert np.array_equal(frost_crops(seed=5), with_photos)
