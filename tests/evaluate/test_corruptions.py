"""Tests of predify.evaluate.corruptions: contract, fidelity to the published code, readers."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator
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
    blur,
    corrupt,
    digital,
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


@pytest.fixture(autouse=True, scope="module")
def single_thread() -> Iterator[None]:
    """Run this module on one intra-op thread: the corruptions here work on tiny tensors, where
    a second thread gains nothing, while on a loaded 2-core machine every parallel op can wait a
    scheduler time slice for it (measured: 3.5 s instead of 0.1 s for one frost texture)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def sequential_glass_swap(images: torch.Tensor, delta: int, offsets: torch.Tensor) -> np.ndarray:
    """The published pixel loop, given each pixel's (dx, dy) in schedule order."""
    _, _, height, width = images.shape
    rows, cols, _ = blur._swap_schedule(height, width, delta)
    where = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(rows, cols, strict=True))}
    out = images.clone().numpy()
    for b in range(images.shape[0]):
        picture = out[b]
        for h in range(height - delta, delta, -1):
            for w in range(width - delta, delta, -1):
                i = where[(h, w)]
                hp, wp = h + int(offsets[1, i, b]), w + int(offsets[0, i, b])
                saved = picture[:, h, w].copy()
                picture[:, h, w] = picture[:, hp, wp]
                picture[:, hp, wp] = saved
    return out


@pytest.mark.parametrize(("height", "width", "delta"), [(17, 21, 1), (23, 19, 2), (26, 30, 4)])
def test_glass_shuffle_equals_sequential_swap(height: int, width: int, delta: int) -> None:
    images = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    result = blur.local_shuffle(images, delta, 1, torch.Generator().manual_seed(4))
    rows, _, _ = blur._swap_schedule(height, width, delta)
    offsets = torch.randint(
        -delta, delta, (2, rows.numel(), 2), generator=torch.Generator().manual_seed(4)
    )
    np.testing.assert_array_equal(result.numpy(), sequential_glass_swap(images, delta, offsets))


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
