"""Blur corruptions: defocus, glass, motion, zoom and Gaussian blur.

Images are [B, C, H, W] in [0, 1]. Pixel-valued parameters of the published code (blur sigmas,
disk radii, motion-blur radius and sigma) were set for 224 x 224 images; here they are
multiplied by ``s = min(H, W) / 224`` (so a 224-pixel image gets exactly the published values,
and a 28-pixel one an eighth of them). Defocus's anti-aliasing sigma stays in pixels, as it
describes the pixel grid rather than the scene. Glass blur scales by ``max(1, s)``: its
displacement is a whole number of pixels, and below 224 px it keeps the published values (see
[`glass_blur_scale()`][predify.evaluate.corruptions.blur.glass_blur_scale]). Zoom factors have no
unit and are not scaled.

Differences from the published code (also listed in README.md):

* defocus_blur: same disk kernel and OpenCV border; applied by FFT (float rounding only).
* glass_blur: same algorithm, vectorised; the local pixel copies reproduce the published loop
  exactly, including its copy-instead-of-swap (see
  [`local_shuffle()`][predify.evaluate.corruptions.blur.local_shuffle]); random draws come
  from torch, not numpy; the uint8 rounding of the intermediate image is not reproduced.
* motion_blur: ImageMagick's ``MotionBlurImage`` kernel re-implemented in torch (one-sided
  Gaussian along a random angle, nearest-pixel taps, edge-replicated border); the output is not
  rounded to 8 bits.
* zoom_blur and gaussian_blur: same operations (scipy's corner-aligned linear zoom; skimage's
  Gaussian with ``mode="nearest"``, ``truncate=4``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from ._common import corruption, randint, spatial_scale, uniform
from ._filters import (
    clipped_zoom,
    correlate2d_fft,
    gaussian_filter,
    motion_blur_kernels,
    separable_filter,
)

__all__ = [
    "DEFOCUS_BLUR_PARAMS",
    "GAUSSIAN_BLUR_SIGMA",
    "GLASS_BLUR_PARAMS",
    "MOTION_BLUR_PARAMS",
    "ZOOM_BLUR_RANGES",
    "defocus_blur",
    "disk_kernel",
    "gaussian_blur",
    "glass_blur",
    "glass_blur_scale",
    "local_shuffle",
    "motion_blur",
    "zoom_blur",
    "zoom_factors",
]

#: (disk radius in pixels at 224 px, anti-aliasing Gaussian sigma in pixels), severities 1-5.
DEFOCUS_BLUR_PARAMS = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
#: (Gaussian sigma at 224 px, maximum displacement at 224 px, passes), severities 1-5.
GLASS_BLUR_PARAMS = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
#: ImageMagick motion blur (radius, sigma) in pixels at 224 px, severities 1-5.
MOTION_BLUR_PARAMS = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
#: Zoom factors as ``numpy.arange(start, stop, step)``, severities 1-5. The float arithmetic
#: of arange is kept: severity 1 yields 12 factors (1.00 to 1.11), not 11.
ZOOM_BLUR_RANGES = (
    (1.0, 1.11, 0.01),
    (1.0, 1.16, 0.01),
    (1.0, 1.21, 0.02),
    (1.0, 1.26, 0.02),
    (1.0, 1.31, 0.03),
)
#: Gaussian sigma in pixels at 224 px, severities 1-5.
GAUSSIAN_BLUR_SIGMA = (1, 2, 3, 4, 6)
#: Range (degrees) of the uniformly drawn motion-blur direction.
MOTION_BLUR_ANGLE_RANGE = (-45.0, 45.0)


# --------------------------------------------------------------------------- defocus


def _opencv_gaussian1d(size: int, sigma: float) -> Tensor:
    """``cv2.getGaussianKernel(size, sigma)`` for sigma > 0 (float64)."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * sigma * sigma))
    return weights / weights.sum()


def disk_kernel(radius: float, alias_sigma: float) -> Tensor:
    """The published anti-aliased disk kernel [k, k] (float64) of the given radius in pixels.

    A 0/1 disk ``x^2 + y^2 <= r^2`` on the grid -8..8 (-ceil(r)..ceil(r) when r > 8),
    normalised to sum 1, then smoothed with a 3 x 3 (5 x 5 when r > 8) Gaussian of sigma
    ``alias_sigma`` with OpenCV's reflect-101 border, and not renormalised, as published.
    """
    if radius <= 8:
        half, smoothing_size = 8, 3
    else:
        half, smoothing_size = math.ceil(radius), 5
    grid = torch.arange(-half, half + 1, dtype=torch.float64)
    inside = (grid.view(-1, 1) ** 2 + grid.view(1, -1) ** 2) <= radius**2
    disk = inside.to(torch.float64)
    disk /= disk.sum()
    smoothing = _opencv_gaussian1d(smoothing_size, alias_sigma)
    return separable_filter(disk, smoothing, smoothing, "reflect101")


@corruption
def defocus_blur(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Convolve with the anti-aliased disk of
    [`DEFOCUS_BLUR_PARAMS`][predify.evaluate.corruptions.blur.DEFOCUS_BLUR_PARAMS] (radius scaled by
    ``s``), OpenCV reflect-101 border. [B, C, H, W] -> same. Deterministic."""
    radius, alias_sigma = DEFOCUS_BLUR_PARAMS[severity - 1]
    scale = spatial_scale(*images.shape[-2:])
    kernel = disk_kernel(radius * scale, alias_sigma)
    return correlate2d_fft(images, kernel.unsqueeze(0), "reflect101")


# --------------------------------------------------------------------------- glass


@functools.lru_cache(maxsize=32)
def _swap_schedule(height: int, width: int, delta: int) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """Rows, columns (int64, [N]) of the visited pixels grouped into wavefronts, and the sizes
    of the wavefronts, for the published scan ``for h in range(H - d, d, -1): for w in
    range(W - d, d, -1)``. See
    [`local_shuffle()`][predify.evaluate.corruptions.blur.local_shuffle]."""
    if height <= 2 * delta or width <= 2 * delta:  # the published ranges are empty
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, ()
    rows = torch.arange(height - delta, delta, -1)
    cols = torch.arange(width - delta, delta, -1)
    grid_rows, grid_cols = torch.meshgrid(rows, cols, indexing="ij")
    wavefront = 2 * delta * (height - delta - grid_rows) + (width - delta - grid_cols)
    order = torch.argsort(wavefront.flatten(), stable=True)
    counts = torch.unique_consecutive(wavefront.flatten()[order], return_counts=True)[1]
    return grid_rows.flatten()[order], grid_cols.flatten()[order], tuple(counts.tolist())


def local_shuffle(images: Tensor, delta: int, passes: int, generator: torch.Generator) -> Tensor:
    """Glass blur's local pixel copies, vectorised. [B, C, H, W] -> same.

    The published code visits the pixels (h, w), h from H - d down to d + 1 and, in each row, w
    from W - d down to d + 1, and runs ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with
    (h', w') = (h + dy, w + dx), dx, dy drawn uniformly from {-d, ..., d - 1}; it repeats this
    ``passes`` times. On an [H, W, 3] numpy array ``x[h, w]`` is a *view*: the right-hand side
    holds two views, the first assignment copies the neighbour's pixel into (h, w), and the
    second writes (h, w)'s new value, the neighbour's, back onto the neighbour. The statement
    therefore copies the neighbour; it does not swap (the published images are made this way).
    A copy reads the window rows h - d..h + d - 1, columns w - d..w + d - 1, so two copies can
    interact only if their pixels are less than 2d apart in both directions.

    Here every pixel gets its displacement at once, and the copies are applied in wavefronts:
    pixel (h, w) goes in wavefront ``2d (H - d - h) + (W - d - w)``. Copies within a wavefront
    are at least 2d apart in a row or 2d rows apart, so none reads a pixel another one writes,
    and they are applied together; any two copies that could interact are applied in the order
    of the published scan. The result is therefore the very image the sequential loop produces
    for the same displacements (the only difference is the random stream: torch's generator
    instead of numpy's). The pixel map is composed on an index map (on the CPU), one gather
    and one scatter per wavefront (about (2d + 1) x W wavefronts per pass, each holding every
    image of the batch), and applied to all channels with one gather on the images' device.
    """
    batch, channels, height, width = images.shape
    rows, cols, counts = _swap_schedule(height, width, delta)
    if not counts:
        return images
    pixels = height * width
    # The permutation is composed on the CPU with numpy: thousands of small fancy-index
    # operations, for which numpy's per-call overhead is a fraction of torch's (and immune to
    # thread-pool contention). Flat indices address source_of, which holds, for every position
    # of every image, the position its current pixel came from.
    row_index, col_index = rows.numpy().reshape(-1, 1), cols.numpy().reshape(-1, 1)
    image_base = np.arange(batch, dtype=np.int64).reshape(1, batch) * pixels
    own = row_index * width + col_index + image_base  # [N, B]
    source_of = np.arange(batch * pixels, dtype=np.int64)
    bounds = np.cumsum(counts)[:-1]
    for _ in range(passes):
        offsets = randint(generator, -delta, delta, (2, rows.numel(), batch), torch.device("cpu"))
        offset_x, offset_y = offsets.numpy()
        partner = (row_index + offset_y) * width + col_index + offset_x + image_base  # [N, B]
        # Each wavefront is one contiguous slice of the schedule: own <- partner.
        for write, read in zip(np.split(own, bounds), np.split(partner, bounds), strict=True):
            source_of[write] = source_of[read]
    index = torch.from_numpy(source_of.reshape(batch, 1, pixels) - image_base.reshape(batch, 1, 1))
    index = index.to(images.device).expand(batch, channels, pixels)
    flat = images.reshape(batch, channels, pixels)
    return flat.gather(2, index).reshape(images.shape)


def glass_blur_scale(height: int, width: int) -> float:
    """Factor applied to glass blur's sigma and displacement: ``max(1, min(H, W) / 224)``.

    Larger images scale the published values up like the other blurs; smaller ones keep them
    as published. The displacement is a whole number of pixels (1-4 at 224 px), so scaling it
    down makes it 1 pixel at every severity below 84 px and, with the sigma scaled to 0.09-0.19
    px at 28 px, makes severities 1, 4 and 5 the same corruption. Unscaled, the severities stay
    ordered (measured in README.md) and small images get what the published ``imagecorruptions``
    package gives them (it applies the 224-pixel values at every size).
    """
    return max(1.0, spatial_scale(height, width))


@corruption
def glass_blur(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Gaussian blur, local pixel copies
    ([`local_shuffle()`][predify.evaluate.corruptions.blur.local_shuffle]), Gaussian blur again,
    with
    [`GLASS_BLUR_PARAMS`][predify.evaluate.corruptions.blur.GLASS_BLUR_PARAMS] (sigma times
    [`glass_blur_scale()`][predify.evaluate.corruptions.blur.glass_blur_scale], displacement
    ``round(d
    scale)``). [B, C, H, W] -> same."""
    sigma, max_delta, passes = GLASS_BLUR_PARAMS[severity - 1]
    scale = glass_blur_scale(*images.shape[-2:])
    sigma_px = sigma * scale
    delta_px = round(max_delta * scale)
    blurred = gaussian_filter(images, sigma_px, mode="replicate")
    shuffled = local_shuffle(blurred, delta_px, passes, generator)
    return gaussian_filter(shuffled, sigma_px, mode="replicate")


# --------------------------------------------------------------------------- motion


def apply_motion_blur(images: Tensor, radius: float, sigma: float, angles_deg: Tensor) -> Tensor:
    """ImageMagick-style motion blur of [B, C, H, W], one direction per image (``angles_deg``
    [B]), radius and sigma in pixels, edge-replicated border."""
    kernels = motion_blur_kernels(radius, sigma, angles_deg)
    return correlate2d_fft(images, kernels, "replicate")


@corruption
def motion_blur(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Motion blur of [`MOTION_BLUR_PARAMS`][predify.evaluate.corruptions.blur.MOTION_BLUR_PARAMS]
    (radius and sigma scaled by ``s``) along a
    direction drawn per image uniformly in [-45, 45) degrees. [B, C, H, W] -> same."""
    radius, sigma = MOTION_BLUR_PARAMS[severity - 1]
    scale = spatial_scale(*images.shape[-2:])
    angles = uniform(generator, (images.shape[0],), images, *MOTION_BLUR_ANGLE_RANGE)
    return apply_motion_blur(images, radius * scale, sigma * scale, angles)


# --------------------------------------------------------------------------- zoom


def zoom_factors(severity: int) -> tuple[float, ...]:
    """The zoom factors averaged by [`zoom_blur()`][predify.evaluate.corruptions.blur.zoom_blur] at
    this severity."""
    start, stop, step = ZOOM_BLUR_RANGES[severity - 1]
    return tuple(float(value) for value in np.arange(start, stop, step))


@corruption
def zoom_blur(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Average of the image and its centre enlarged by each of
    [`zoom_factors()`][predify.evaluate.corruptions.blur.zoom_factors] (bilinear,
    cropped back to H x W). [B, C, H, W] -> same. Deterministic."""
    factors = zoom_factors(severity)
    total = images.clone()
    for factor in factors:
        total += clipped_zoom(images, factor)
    return total / (len(factors) + 1)


# --------------------------------------------------------------------------- Gaussian


@corruption
def gaussian_blur(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Gaussian blur, sigma
    [`GAUSSIAN_BLUR_SIGMA`][predify.evaluate.corruptions.blur.GAUSSIAN_BLUR_SIGMA] scaled by ``s``,
    edge-replicated border,
    truncated at 4 sigma. [B, C, H, W] -> same. Deterministic."""
    sigma = GAUSSIAN_BLUR_SIGMA[severity - 1] * spatial_scale(*images.shape[-2:])
    return gaussian_filter(images, sigma, mode="replicate")
