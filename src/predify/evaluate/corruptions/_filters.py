"""Linear filters and resampling on image batches, with the border rules of the published code.

The published corruptions mix three libraries whose filters treat image borders differently;
each filter here takes the rule by name so the corruption can pick the one its original used:

* ``"replicate"``: edge pixels repeat (``aaa|abcd|ddd``), scipy/skimage ``mode="nearest"``,
  OpenCV ``BORDER_REPLICATE``, ImageMagick's default edge virtual pixels;
* ``"reflect"``: half-sample symmetric (``cba|abcd|dcb``), scipy/skimage ``mode="reflect"``;
* ``"reflect101"``: whole-sample symmetric (``dcb|abcd|cba``), OpenCV's default border.

Borders are handled by index arithmetic, so a kernel may be wider than the image (elastic
transform smooths a 224-pixel field with a 1025-tap Gaussian).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "BorderMode",
    "border_indices",
    "clipped_zoom",
    "correlate2d_fft",
    "gaussian_filter",
    "gaussian_kernel1d",
    "motion_blur_kernels",
    "pad2d",
    "resample_linear",
    "separable_filter",
]

BorderMode = Literal["replicate", "reflect", "reflect101"]


def border_indices(indices: Tensor, size: int, mode: BorderMode) -> Tensor:
    """Map integer ``indices`` (any values) into ``[0, size)`` by the border rule ``mode``."""
    if mode == "replicate" or size == 1:
        return indices.clamp(0, size - 1)
    if mode == "reflect":
        period = 2 * size
        folded = torch.remainder(indices, period)
        return torch.where(folded < size, folded, period - 1 - folded)
    if mode == "reflect101":
        period = 2 * size - 2
        folded = torch.remainder(indices, period)
        return torch.where(folded < size, folded, period - folded)
    raise ValueError(f"unknown border mode {mode!r}")


def pad2d(images: Tensor, pad_h: int, pad_w: int, mode: BorderMode) -> Tensor:
    """Pad the last two dims of ``images`` [..., H, W] by ``pad_h`` rows and ``pad_w`` columns
    on each side -> [..., H + 2 pad_h, W + 2 pad_w]."""
    height, width = images.shape[-2:]
    device = images.device
    rows = border_indices(torch.arange(-pad_h, height + pad_h, device=device), height, mode)
    cols = border_indices(torch.arange(-pad_w, width + pad_w, device=device), width, mode)
    return images.index_select(-2, rows).index_select(-1, cols)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> Tensor:
    """Normalised 1-D Gaussian (float64) of radius ``int(truncate * sigma + 0.5)``, as scipy's."""
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


@functools.lru_cache(maxsize=32)
def _filter_matrix_cpu(kernel: tuple[float, ...], size: int, mode: BorderMode) -> Tensor:
    """Matrix A [size, size] with (A @ x)[i] = sum_t kernel[t] * x[border(i + t - r)]."""
    taps = torch.tensor(kernel, dtype=torch.float64)
    radius = (len(kernel) - 1) // 2
    rows = torch.arange(size).unsqueeze(1)  # [size, 1]
    sources = border_indices(rows + torch.arange(-radius, radius + 1), size, mode)  # [size, k]
    matrix = torch.zeros(size, size, dtype=torch.float64)
    matrix.scatter_add_(1, sources, taps.expand(size, -1).clone())
    return matrix


def separable_filter(
    images: Tensor, kernel_h: Tensor, kernel_w: Tensor, mode: BorderMode
) -> Tensor:
    """Correlate [..., H, W] with ``kernel_h`` along H and ``kernel_w`` along W (odd lengths).

    Each 1-D pass is a matrix product with a banded matrix that folds the border rule in, which
    is exact for any kernel length and fast on CPU and GPU for images of a few hundred pixels.
    """
    height, width = images.shape[-2:]
    matrix_h = _filter_matrix_cpu(tuple(kernel_h.tolist()), height, mode)
    matrix_w = _filter_matrix_cpu(tuple(kernel_w.tolist()), width, mode)
    matrix_h = matrix_h.to(device=images.device, dtype=images.dtype)
    matrix_w = matrix_w.to(device=images.device, dtype=images.dtype)
    return torch.matmul(torch.matmul(matrix_h, images), matrix_w.T)


def gaussian_filter(
    images: Tensor, sigma: float, *, truncate: float = 4.0, mode: BorderMode = "replicate"
) -> Tensor:
    """Gaussian blur of [..., H, W] over the last two dims (scipy ``gaussian_filter`` semantics)."""
    if sigma <= 0:
        return images
    kernel = gaussian_kernel1d(sigma, truncate)
    if kernel.numel() == 1:
        return images
    return separable_filter(images, kernel, kernel, mode)


def correlate2d_fft(images: Tensor, kernels: Tensor, mode: BorderMode) -> Tensor:
    """Correlate images [B, C, H, W] with kernels [K, kh, kw] (K = 1 or B; odd sizes) via FFT.

    ``out[b, c, y, x] = sum_{u, v} k[u, v] * img[b, c, y + u - kh // 2, x + v - kw // 2]``, the
    border filled by ``mode``. The image is padded by the kernel radius first, so the circular
    wrap of the FFT only touches the padding that is cropped away: the result equals the direct
    correlation up to float rounding.
    """
    radius_h, radius_w = kernels.shape[-2] // 2, kernels.shape[-1] // 2
    height, width = images.shape[-2:]
    padded = pad2d(images, radius_h, radius_w, mode)
    size = padded.shape[-2:]
    placed = torch.zeros((kernels.shape[0], *size), dtype=images.dtype, device=images.device)
    placed[:, : kernels.shape[-2], : kernels.shape[-1]] = kernels.to(images.dtype)
    # Put the kernel centre at index (0, 0): offsets -r..r then sit at r mod N.
    placed = torch.roll(placed, shifts=(-radius_h, -radius_w), dims=(-2, -1))
    spectrum = torch.fft.rfft2(padded) * torch.conj(torch.fft.rfft2(placed)).unsqueeze(1)
    result = torch.fft.irfft2(spectrum, s=tuple(size))
    return result[..., radius_h : radius_h + height, radius_w : radius_w + width]


def motion_blur_kernels(radius: float, sigma: float, angles_deg: Tensor) -> Tensor:
    """ImageMagick ``MotionBlurImage`` kernels, one per angle -> [B, 2P + 1, 2P + 1] (float64).

    ImageMagick averages ``2 * ceil(radius) + 1`` pixels along the motion direction with the
    one-sided Gaussian weights ``exp(-i^2 / (2 sigma^2))``, i = 0, 1, ..., the i-th pixel taken
    at offset ``(ceil(i cos(a) - 0.5), ceil(i sin(a) - 0.5))`` (x right, y down). The kernel
    here places those weights on a square grid, to be applied by correlation.
    """
    taps = 2 * math.ceil(radius) + 1
    steps = torch.arange(taps, dtype=torch.float64)
    weights = torch.exp(-(steps**2) / (2.0 * sigma * sigma))
    weights = weights / weights.sum()
    angles = torch.deg2rad(angles_deg.detach().cpu().to(torch.float64)).unsqueeze(1)  # [B, 1]
    offset_x = torch.ceil(steps * torch.cos(angles) - 0.5).long()  # [B, taps]
    offset_y = torch.ceil(steps * torch.sin(angles) - 0.5).long()
    half = taps - 1
    batch = angles_deg.shape[0]
    kernels = torch.zeros(batch, 2 * half + 1, 2 * half + 1, dtype=torch.float64)
    image_index = torch.arange(batch).unsqueeze(1).expand(-1, taps)
    # Rounded offsets of neighbouring taps can coincide (e.g. at 45 degrees); ImageMagick then
    # reads that pixel twice, which accumulation reproduces.
    kernels.index_put_(
        (image_index, offset_y + half, offset_x + half),
        weights.expand(batch, -1).clone(),
        accumulate=True,
    )
    return kernels


def resample_linear(images: Tensor, coords: Tensor, dim: int) -> Tensor:
    """Linear interpolation of ``images`` along ``dim`` at positions ``coords`` [n_out] (float).

    Positions outside [0, n_in - 1] use the edge pixel.
    """
    size = images.shape[dim]
    coords = coords.to(device=images.device, dtype=images.dtype).clamp(0, size - 1)
    lower = coords.floor().long()
    upper = (lower + 1).clamp(max=size - 1)
    shape = [1] * images.ndim
    shape[dim] = -1
    frac = (coords - lower.to(coords.dtype)).view(shape)
    low_values = images.index_select(dim, lower)
    return low_values + (images.index_select(dim, upper) - low_values) * frac


def _clipped_zoom_coords(size: int, zoom: float) -> Tensor:
    """Source positions (float64) [size] of the published ``clipped_zoom`` along one axis.

    The published helper crops the central ``ceil(size / zoom)`` pixels, enlarges them with
    ``scipy.ndimage.zoom(order=1)`` (corner-aligned: output o samples input
    o * (crop - 1) / (out - 1)) to ``round(crop * zoom)`` pixels and keeps the central ``size``.
    """
    crop = math.ceil(size / zoom)
    top = (size - crop) // 2
    zoomed = round(crop * zoom)
    trim = (zoomed - size) // 2
    outputs = torch.arange(size, dtype=torch.float64) + trim
    step = (crop - 1) / (zoomed - 1) if zoomed > 1 else 0.0
    return top + outputs * step


def clipped_zoom(images: Tensor, zoom: float) -> Tensor:
    """Enlarge the centre of [..., H, W] by ``zoom`` >= 1 and crop back to H x W (bilinear)."""
    height, width = images.shape[-2:]
    rows = _clipped_zoom_coords(height, zoom)
    cols = _clipped_zoom_coords(width, zoom)
    return resample_linear(resample_linear(images, rows, images.ndim - 2), cols, images.ndim - 1)
