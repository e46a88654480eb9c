"""Digital corruptions: brightness, contrast, elastic transform, pixelate, JPEG, saturate.

Images are [B, C, H, W] in [0, 1]. Brightness, contrast, saturate, pixelate and JPEG have no
pixel-valued parameter (pixelate's is a fraction of the image size). The elastic transform's
displacement field is drawn on the reference grid (shorter side 224, see `.weather`)
with the published parameters, then resized to the image and its displacements multiplied by
the size ratio, i.e. the image is deformed as if it were 224 pixels wide.

Differences from the published code (also listed in README.md):

* brightness and saturate: the published code converts to HSV (skimage), changes V or S and
  converts back; here the same result is computed from the RGB values directly (hue is kept,
  so each pixel is rescaled towards or away from its maximum channel). Grey pixels gain the
  hue 0 (red) that skimage gives them when saturate raises their saturation (severities 4-5),
  as published. Grayscale (1-channel) images: brightness adds to the value, saturate leaves
  them unchanged (they have no colour).
* elastic_transform: OpenCV's affine warp (reflect-101 border) and scipy's map_coordinates
  (half-sample reflect border) are both done with ``grid_sample`` (bilinear), with the same
  borders; OpenCV's 1/32-pixel fixed-point interpolation is not reproduced.
* pixelate: PIL's BOX down- and up-sampling reproduced with exact PIL weights, in float
  (no 8-bit rounding in between).
* jpeg_compression: goes through PIL per image, as published (images are rounded to 8 bits).
"""

from __future__ import annotations

import functools
import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ._common import corruption, reference_shape, resize_layer, uniform
from ._filters import gaussian_filter

__all__ = [
    "BRIGHTNESS_SHIFT",
    "CONTRAST_FACTOR",
    "ELASTIC_PARAMS",
    "JPEG_QUALITY",
    "PIXELATE_FACTOR",
    "SATURATE_PARAMS",
    "brightness",
    "contrast",
    "elastic_transform",
    "jpeg_compression",
    "pixelate",
    "saturate",
]

#: Amount added to the HSV value, severities 1-5.
BRIGHTNESS_SHIFT = (0.1, 0.2, 0.3, 0.4, 0.5)
#: Factor applied to the deviations from each channel's mean, severities 1-5.
CONTRAST_FACTOR = (0.4, 0.3, 0.2, 0.1, 0.05)
#: (displacement gain alpha, field smoothing sigma, affine jitter) in pixels at 224 px,
#: severities 1-5. The published code writes them as multiples of 244 (a typo for 224 that
#: its authors kept, so the values below are the ones ImageNet-C was made with).
ELASTIC_PARAMS = (
    (244 * 2, 244 * 0.7, 244 * 0.1),
    (244 * 2, 244 * 0.08, 244 * 0.2),
    (244 * 0.05, 244 * 0.01, 244 * 0.02),
    (244 * 0.07, 244 * 0.01, 244 * 0.02),
    (244 * 0.12, 244 * 0.01, 244 * 0.02),
)
#: Side of the intermediate image as a fraction of the image's, severities 1-5.
PIXELATE_FACTOR = (0.6, 0.5, 0.4, 0.3, 0.25)
#: JPEG quality (PIL), severities 1-5.
JPEG_QUALITY = (25, 18, 15, 10, 7)
#: (saturation gain, saturation offset), severities 1-5.
SATURATE_PARAMS = ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))


# --------------------------------------------------------------------------- colour


@corruption
def brightness(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Add [`BRIGHTNESS_SHIFT`][predify.evaluate.corruptions.digital.BRIGHTNESS_SHIFT] to the HSV
    value (clipped at 1), keeping hue and saturation.
    [B, C, H, W] -> same. Deterministic.

    With H and S fixed every RGB channel is proportional to V, so the result is
    ``x * V' / V`` (``V' = min(V + shift, 1)``, ``V`` the channel maximum); black pixels
    become grey ``V'``.
    """
    shift = BRIGHTNESS_SHIFT[severity - 1]
    value = images.amax(dim=1, keepdim=True)
    new_value = (value + shift).clamp(max=1.0)
    ratio = new_value / value.clamp(min=1e-12)
    return torch.where(value > 0, images * ratio, new_value.expand_as(images))


@corruption
def contrast(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Scale each channel's deviations from its spatial mean by
    [`CONTRAST_FACTOR`][predify.evaluate.corruptions.digital.CONTRAST_FACTOR].
    [B, C, H, W] -> same. Deterministic."""
    factor = CONTRAST_FACTOR[severity - 1]
    means = images.mean(dim=(2, 3), keepdim=True)
    return (images - means) * factor + means


@corruption
def saturate(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Set the HSV saturation to ``clip(S * gain + offset, 0, 1)``
    ([`SATURATE_PARAMS`][predify.evaluate.corruptions.digital.SATURATE_PARAMS]),
    keeping hue and value. [B, C, H, W] -> same; 1-channel images are returned unchanged.

    In HSV -> RGB every channel is ``V (1 - S w)`` with a weight ``w`` in [0, 1] set by the hue
    (0 for the largest channel, 1 for the smallest); w is recovered from the RGB values as
    ``(V - x) / (V - min)``. Grey pixels (S = 0) have hue 0 in skimage, i.e. w = (0, 1, 1).
    """
    if images.shape[1] == 1:
        return images.clone()
    gain, offset = SATURATE_PARAMS[severity - 1]
    value = images.amax(dim=1, keepdim=True)
    low = images.amin(dim=1, keepdim=True)
    spread = value - low
    saturation = torch.where(value > 0, spread / value.clamp(min=1e-12), 0.0)
    new_saturation = (saturation * gain + offset).clamp(0.0, 1.0)
    grey_weights = torch.tensor((0.0, 1.0, 1.0), dtype=images.dtype, device=images.device)
    weights = torch.where(
        spread > 0, (value - images) / spread.clamp(min=1e-12), grey_weights.view(1, 3, 1, 1)
    )
    return value * (1 - new_saturation * weights)


# --------------------------------------------------------------------------- elastic


def _affine_to_pixels(matrix: Tensor, size: tuple[int, int], grid: tuple[int, int]) -> Tensor:
    """Re-express affine maps [B, 3, 3] of reference-grid pixels on the image's pixels."""
    (height, width), (grid_h, grid_w) = size, grid
    # Corner-aligned: pixel 0 and the last pixel of both grids coincide. A 1-pixel axis keeps
    # scale 1 (any value would do: reflection maps every position to its only pixel).
    scale_x = (width - 1) / (grid_w - 1) if width > 1 and grid_w > 1 else 1.0
    scale_y = (height - 1) / (grid_h - 1) if height > 1 and grid_h > 1 else 1.0
    to_image = torch.diag(torch.tensor([scale_x, scale_y, 1.0], dtype=matrix.dtype))
    to_grid = torch.diag(torch.tensor([1 / scale_x, 1 / scale_y, 1.0], dtype=matrix.dtype))
    return to_image.to(matrix.device) @ matrix @ to_grid.to(matrix.device)


def _pixel_grid(x: Tensor, y: Tensor, size: tuple[int, int], align_corners: bool) -> Tensor:
    """Pixel coordinates x, y [B, H, W] -> grid_sample grid [B, H, W, 2] in [-1, 1]."""
    height, width = size
    if align_corners:
        gx = 2 * x / max(width - 1, 1) - 1
        gy = 2 * y / max(height - 1, 1) - 1
    else:
        gx = (2 * x + 1) / width - 1
        gy = (2 * y + 1) / height - 1
    return torch.stack((gx, gy), dim=-1)


@corruption
def elastic_transform(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Random affine warp followed by a smooth random displacement field
    ([`ELASTIC_PARAMS`][predify.evaluate.corruptions.digital.ELASTIC_PARAMS]). [B, C, H, W] -> same.

    Affine: three points around the centre (offsets of ``min(side) // 3``) are moved by
    uniform jitter in [-j, j); the image is warped by the affine map taking the points to their
    moved positions (bilinear, reflect-101 border). Elastic: two fields of uniform noise in
    [-1, 1) are smoothed by a Gaussian of sigma ``s`` (half-sample reflect border, truncated
    at 3 sigma), multiplied by ``alpha`` and used as x and y displacements (bilinear,
    half-sample reflect border). Both are drawn on the reference grid.
    """
    alpha, sigma, jitter = ELASTIC_PARAMS[severity - 1]
    batch, _channels, height, width = images.shape
    grid_h, grid_w = reference_shape(height, width)
    dtype, device = images.dtype, images.device
    work = torch.float64  # the affine solve and the huge-sigma smoothing want the precision

    # Affine part, on the reference grid (points in x, y order as OpenCV takes them).
    centre_x, centre_y = float(grid_w // 2), float(grid_h // 2)
    half = float(min(grid_h, grid_w) // 3)
    source = torch.tensor(
        [
            [centre_x + half, centre_y + half],
            [centre_x + half, centre_y - half],
            [centre_x - half, centre_y - half],
        ],
        dtype=work,
    )
    moved = source + uniform(generator, (batch, 3, 2), torch.empty(0, dtype=work), -jitter, jitter)
    homogeneous = torch.cat((source, torch.ones(3, 1, dtype=work)), dim=1)  # [3, 3]
    forward = torch.linalg.solve(homogeneous, moved).transpose(1, 2)  # [B, 2, 3]
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=work).expand(batch, 1, 3)
    forward = torch.cat((forward, bottom), dim=1)
    # The output pixel p shows the input at forward^-1 p.
    inverse = _affine_to_pixels(torch.linalg.inv(forward), (height, width), (grid_h, grid_w))
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=work), torch.arange(width, dtype=work), indexing="ij"
    )
    coefficients = inverse[:, :2].reshape(batch, 2, 3, 1, 1)
    source_x = coefficients[:, 0, 0] * xs + coefficients[:, 0, 1] * ys + coefficients[:, 0, 2]
    source_y = coefficients[:, 1, 0] * xs + coefficients[:, 1, 1] * ys + coefficients[:, 1, 2]
    grid = _pixel_grid(source_x, source_y, (height, width), align_corners=True)
    warped = F.grid_sample(
        images,
        grid.to(device=device, dtype=dtype),
        mode="bilinear",
        padding_mode="reflection",
        align_corners=True,
    )

    # Elastic part: smooth displacement fields on the reference grid, resized to the image.
    noise = uniform(generator, (batch, 2, grid_h, grid_w), torch.empty(0, dtype=work), -1, 1)
    fields = gaussian_filter(noise, sigma, truncate=3.0, mode="reflect") * alpha
    fields = resize_layer(fields, (height, width))
    fields_x = fields[:, 0] * (width / grid_w)
    fields_y = fields[:, 1] * (height / grid_h)
    grid = _pixel_grid(xs + fields_x, ys + fields_y, (height, width), align_corners=False)
    return F.grid_sample(
        warped,
        grid.to(device=device, dtype=dtype),
        mode="bilinear",
        padding_mode="reflection",
        align_corners=False,
    )


# --------------------------------------------------------------------------- pixelate


@functools.lru_cache(maxsize=64)
def _pil_box_matrix(in_size: int, out_size: int) -> Tensor:
    """PIL's BOX resampling weights [out_size, in_size] (float64), rows summing to 1.

    PIL (``ImagingResample``) gives output pixel i the input pixels j whose centres fall in
    its box: ``-0.5 < (j + 0.5 - c) / f <= 0.5`` with ``c = (i + 0.5) * in / out`` and
    ``f = max(in / out, 1)``, within ``[int(c - f / 2 + 0.5), int(c + f / 2 + 0.5))``.
    """
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 0.5 * filter_scale
    centre = (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale
    first = torch.floor(centre - support + 0.5).clamp(min=0)
    last = torch.floor(centre + support + 0.5).clamp(max=in_size)
    inputs = torch.arange(in_size, dtype=torch.float64).view(1, -1)
    position = (inputs - centre.view(-1, 1) + 0.5) / filter_scale
    inside = (position > -0.5) & (position <= 0.5)
    inside &= (inputs >= first.view(-1, 1)) & (inputs < last.view(-1, 1))
    weights = inside.to(torch.float64)
    return weights / weights.sum(dim=1, keepdim=True).clamp(min=1.0)


@corruption
def pixelate(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Downsample to ``int(side * factor)``
    ([`PIXELATE_FACTOR`][predify.evaluate.corruptions.digital.PIXELATE_FACTOR]) and back up, both
    with
    PIL's BOX filter. [B, C, H, W] -> same. Deterministic."""
    factor = PIXELATE_FACTOR[severity - 1]
    height, width = images.shape[-2:]
    small_h, small_w = max(1, int(height * factor)), max(1, int(width * factor))
    down_h = _pil_box_matrix(height, small_h).to(images.device, images.dtype)
    down_w = _pil_box_matrix(width, small_w).to(images.device, images.dtype)
    up_h = _pil_box_matrix(small_h, height).to(images.device, images.dtype)
    up_w = _pil_box_matrix(small_w, width).to(images.device, images.dtype)
    small = torch.matmul(torch.matmul(down_h, images), down_w.T)
    return torch.matmul(torch.matmul(up_h, small), up_w.T)


# --------------------------------------------------------------------------- JPEG


@corruption
def jpeg_compression(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Encode and decode each image with PIL's JPEG codec at
    [`JPEG_QUALITY`][predify.evaluate.corruptions.digital.JPEG_QUALITY] (PIL's
    default 4:2:0 chroma subsampling). [B, C, H, W] -> same, values multiples of 1/255."""
    quality = JPEG_QUALITY[severity - 1]
    channels = images.shape[1]
    levels = (images * 255).round().clamp(0, 255).to(torch.uint8)
    pixels = levels.permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for picture in pixels:  # one codec call per image: PIL has no batch API
        frame = Image.fromarray(picture[..., 0] if channels == 1 else picture)
        buffer = io.BytesIO()
        frame.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as reopened:
            array = np.asarray(reopened.convert("L" if channels == 1 else "RGB"))
        decoded.append(array.reshape(*array.shape[:2], channels))
    result = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2)
    return result.to(device=images.device, dtype=images.dtype) / 255
