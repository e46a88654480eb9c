"""Weather corruptions: snow, frost, fog and spatter.

Images are [B, C, H, W] in [0, 1]. Each of these corruptions draws a random layer (snowflakes,
a frost crop, a fractal fog map, a liquid mask) whose published parameters are in pixels of a
224 x 224 image. The layer is drawn on the *reference grid*, the image size rescaled so that
its shorter side is 224 (224 x 224 for square images, 224 x 314 for 40 x 56), with the
published parameters unchanged, and is then resized to H x W (antialiased bilinear; a no-op
for 224-pixel images). A small image is therefore corrupted as if the corruption had been
applied at 224 pixels and the result downscaled. Grayscale images get the luma of coloured
layers (frost, spatter's water and mud).

Differences from the published code (also listed in README.md):

* snow: ImageMagick's motion blur of the snow layer is re-implemented in torch (see
  `.blur`); the layer is not rounded to 8 bits before and after the blur.
* frost: the published photographs are used when the ``imagecorruptions`` package is
  installed ([`frost_source()`][predify.evaluate.corruptions.weather.frost_source] says so),
  procedural textures (`._frost_textures`)
  otherwise; crops are taken per image with torch's generator.
* fog: same diamond-square fractal (torch port, one map per image); for non-square
  reference grids the map side is the next power of two >= the longer side (>= 256).
* spatter: OpenCV's Canny, distance transform, histogram equalisation and filters are
  re-implemented in torch; the distance transform is exact Euclidean instead of OpenCV's
  5 x 5 chamfer approximation. A liquid layer with no pixel above the threshold adds
  nothing (the published code would divide by zero).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import (
    color_for_channels,
    corruption,
    normal,
    randint,
    reference_shape,
    resize_layer,
    rgb_to_gray,
    uniform,
)
from ._edges import box_blur3, canny, distance_to_edges, equalize_hist, filter3x3
from ._filters import clipped_zoom, gaussian_filter
from ._frost_photos import frost_layers, frost_source
from .blur import apply_motion_blur

__all__ = [
    "FOG_PARAMS",
    "FROST_PARAMS",
    "SNOW_PARAMS",
    "SPATTER_PARAMS",
    "fog",
    "frost",
    "frost_source",
    "plasma_fractal",
    "snow",
    "spatter",
]

#: (mean, std of the flake noise, zoom factor, threshold, motion-blur radius, motion-blur
#: sigma, weight of the original image against the brightened one), severities 1-5.
SNOW_PARAMS = (
    (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)
#: (weight of the image, weight of the frost texture), severities 1-5.
FROST_PARAMS = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
#: (fog strength, fractal roughness decay), severities 1-5.
FOG_PARAMS = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))
#: (mean, std of the liquid noise, its blur sigma, threshold, mask gain or blur sigma, mode
#: 0 = water / 1 = mud), severities 1-5.
SPATTER_PARAMS = (
    (0.65, 0.3, 4, 0.69, 0.6, 0),
    (0.65, 0.3, 3, 0.68, 0.6, 0),
    (0.65, 0.3, 2, 0.68, 0.5, 0),
    (0.65, 0.3, 1, 0.65, 1.5, 1),
    (0.67, 0.4, 1, 0.65, 1.5, 1),
)
#: Range (degrees) of the uniformly drawn snowfall direction.
SNOW_ANGLE_RANGE = (-135.0, -45.0)
_PLASMA_MIN_SIZE = 256
_PLASMA_START_WIBBLE = 100.0
_WATER_RGB = (175 / 255, 238 / 255, 238 / 255)  # pale turquoise
_MUD_RGB = (63 / 255, 42 / 255, 20 / 255)  # mud brown
_EMBOSS = ((-2.0, -1.0, 0.0), (-1.0, 1.0, 1.0), (0.0, 1.0, 2.0))


# --------------------------------------------------------------------------- snow


@corruption
def snow(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Snow ([`SNOW_PARAMS`][predify.evaluate.corruptions.weather.SNOW_PARAMS]): brighten the image
    towards its luma, add a layer of
    motion-blurred flakes and its 180-degree rotation. [B, C, H, W] -> same.

    The flake layer, drawn on the reference grid: Gaussian noise per pixel, its centre
    enlarged by the zoom factor (bigger flakes), values below the threshold set to 0, motion
    blur along a direction drawn per image in [-135, -45) degrees.
    """
    mean, std, zoom, threshold, radius, sigma, keep = SNOW_PARAMS[severity - 1]
    batch, _channels, height, width = images.shape
    grid = reference_shape(height, width)
    flakes = normal(generator, (batch, 1, *grid), images, mean=mean, std=std)
    flakes = clipped_zoom(flakes, zoom)
    flakes = torch.where(flakes < threshold, 0.0, flakes).clamp(0.0, 1.0)
    angles = uniform(generator, (batch,), images, *SNOW_ANGLE_RANGE)
    flakes = apply_motion_blur(flakes, radius, sigma, angles)
    flakes = flakes + torch.flip(flakes, dims=(-2, -1))
    flakes = resize_layer(flakes, (height, width))
    brightened = torch.maximum(images, rgb_to_gray(images) * 1.5 + 0.5)
    return keep * images + (1 - keep) * brightened + flakes


# --------------------------------------------------------------------------- frost


def _reflect(indices: Tensor, sizes: Tensor) -> Tensor:
    """Fold ``indices`` into ``[0, sizes)`` by half-sample reflection (sizes broadcast)."""
    period = 2 * sizes
    folded = torch.remainder(indices, period)
    return torch.where(folded < sizes, folded, period - 1 - folded)


@corruption
def frost(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Frost ([`FROST_PARAMS`][predify.evaluate.corruptions.weather.FROST_PARAMS]): ``a x + b t``
    with ``t`` a random crop, per image, of one
    of the five frost layers
    ([`frost_source()`][predify.evaluate.corruptions.weather.frost_source]: the published
    photographs, or generated
    textures), taken on the reference grid. [B, C, H, W] -> same."""
    image_weight, frost_weight = FROST_PARAMS[severity - 1]
    batch, channels, height, width = images.shape
    grid_h, grid_w = reference_shape(height, width)
    device = images.device
    layers, sizes = frost_layers(device, images.dtype)  # [5, 3, h, w], [5, 2]
    # As published: one of the five layers, then a crop start uniform in [0, side - 224).
    choice = randint(generator, 0, layers.shape[0], (batch,), device)
    heights, widths = sizes[choice, 0], sizes[choice, 1]
    starts = uniform(generator, (2, batch), torch.empty(0, dtype=torch.float64))
    starts = starts.to(device)
    top = (starts[0] * (heights - grid_h).clamp(min=1)).floor().long()
    left = (starts[1] * (widths - grid_w).clamp(min=1)).floor().long()
    # Crops larger than the layer (very elongated images) continue it by reflection.
    rows = _reflect(top.view(-1, 1) + torch.arange(grid_h, device=device), heights.view(-1, 1))
    cols = _reflect(left.view(-1, 1) + torch.arange(grid_w, device=device), widths.view(-1, 1))
    crops = layers[choice.view(-1, 1, 1), :, rows.view(batch, -1, 1), cols.view(batch, 1, -1)]
    crops = resize_layer(crops.permute(0, 3, 1, 2), (height, width))  # [B, 3, H, W]
    if channels == 1:
        crops = rgb_to_gray(crops)
    return image_weight * images + frost_weight * crops


# --------------------------------------------------------------------------- fog


def plasma_fractal(
    batch: int, size: int, decay: float, generator: torch.Generator, like: Tensor
) -> Tensor:
    """Diamond-square fractal maps [batch, size, size] in [0, 1] (size a power of two).

    The published ``plasma_fractal``: starting from a 0 corner, each level fills square
    centres and then diamond centres with the mean of their 4 neighbours (wrapping around)
    plus uniform noise of amplitude ``wibble^2``, with ``wibble`` divided by ``decay`` per
    level (starting at 100); the map is finally rescaled to [0, 1].
    """
    maps = torch.zeros(batch, size, size, dtype=like.dtype, device=like.device)
    step = size
    wibble = _PLASMA_START_WIBBLE

    def jittered_mean(total: Tensor) -> Tensor:
        noise = uniform(generator, total.shape, total, -wibble, wibble)
        return total / 4 + wibble * noise

    while step >= 2:
        half = step // 2
        corners = maps[:, 0::step, 0::step]
        square_sum = corners + torch.roll(corners, shifts=-1, dims=1)
        square_sum = square_sum + torch.roll(square_sum, shifts=-1, dims=2)
        maps[:, half::step, half::step] = jittered_mean(square_sum)
        centres = maps[:, half::step, half::step]
        corners = maps[:, 0::step, 0::step]
        left_sum = centres + torch.roll(centres, shifts=1, dims=1)
        left_sum = left_sum + corners + torch.roll(corners, shifts=-1, dims=2)
        maps[:, 0::step, half::step] = jittered_mean(left_sum)
        top_sum = centres + torch.roll(centres, shifts=1, dims=2)
        top_sum = top_sum + corners + torch.roll(corners, shifts=-1, dims=1)
        maps[:, half::step, 0::step] = jittered_mean(top_sum)
        step //= 2
        wibble /= decay
    low = maps.amin(dim=(1, 2), keepdim=True)
    maps = maps - low
    return maps / maps.amax(dim=(1, 2), keepdim=True).clamp(min=1e-12)


@corruption
def fog(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Fog ([`FOG_PARAMS`][predify.evaluate.corruptions.weather.FOG_PARAMS]): ``(x + a f) * m / (m
    + a)`` with ``f`` a fractal map per image
    (drawn on the reference grid) and ``m`` the image's maximum. [B, C, H, W] -> same."""
    strength, decay = FOG_PARAMS[severity - 1]
    batch, _channels, height, width = images.shape
    grid_h, grid_w = reference_shape(height, width)
    size = _PLASMA_MIN_SIZE
    while size < max(grid_h, grid_w):
        size *= 2
    maps = plasma_fractal(batch, size, decay, generator, images)[:, :grid_h, :grid_w]
    maps = resize_layer(maps.unsqueeze(1), (height, width))
    peak = images.amax(dim=(1, 2, 3), keepdim=True)
    return (images + strength * maps) * peak / (peak + strength)


# --------------------------------------------------------------------------- spatter


def _water_mask(liquid: Tensor, gain: float) -> Tensor:
    """Mask [N, 1, h, w] of water drops with shaded rims from the thresholded liquid layer.

    As published: Canny edges of the 8-bit layer, distance to the nearest edge (capped at 20),
    3 x 3 mean, histogram equalisation, an emboss filter, another 3 x 3 mean, multiplied by
    the layer and normalised to a maximum of ``gain``.
    """
    levels = torch.floor(liquid * 255)  # astype(uint8) truncates
    edges = canny(levels, 50, 150)
    distance = distance_to_edges(edges, 20).to(liquid.dtype)
    distance = torch.floor(box_blur3(distance))
    distance = equalize_hist(distance)
    emboss = torch.tensor(_EMBOSS, dtype=liquid.dtype)
    distance = torch.round(filter3x3(distance, emboss, "reflect101")).clamp(0, 255)
    distance = torch.round(box_blur3(distance))
    mask = levels * distance
    peak = mask.amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(peak > 0, mask / peak.clamp(min=1e-12), 0.0) * gain


@corruption
def spatter(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Spatter ([`SPATTER_PARAMS`][predify.evaluate.corruptions.weather.SPATTER_PARAMS]): pale
    turquoise water drops (severities 1-3, added) or
    mud-brown blobs (severities 4-5, painted over), from a thresholded blurred noise layer
    drawn on the reference grid. [B, C, H, W] -> same."""
    mean, std, sigma, threshold, mask_param, mode = SPATTER_PARAMS[severity - 1]
    batch, channels, height, width = images.shape
    grid = reference_shape(height, width)
    liquid = normal(generator, (batch, 1, *grid), images, mean=mean, std=std)
    liquid = gaussian_filter(liquid, sigma, mode="replicate")
    liquid = torch.where(liquid < threshold, 0.0, liquid)
    if mode == 0:
        mask = resize_layer(_water_mask(liquid, mask_param), (height, width))
        return images + mask * color_for_channels(_WATER_RGB, channels, images)
    blobs = (liquid > threshold).to(images.dtype)
    blobs = gaussian_filter(blobs, mask_param, mode="replicate")
    blobs = torch.where(blobs < 0.8, 0.0, blobs)
    blobs = resize_layer(blobs, (height, width))
    return images * (1 - blobs) + color_for_channels(_MUD_RGB, channels, images) * blobs
