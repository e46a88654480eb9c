"""Shared plumbing of the corruption functions: input checks, random numbers, image-size scaling.

Every public corruption is a function ``fn(images, severity, generator=None) -> Tensor`` built
by [`corruption()`][predify.evaluate.corruptions._common.corruption], which validates the
arguments, works in float32 (float64 stays float64),
clamps the result to [0, 1] and casts it back to the input dtype.

Random numbers are drawn only from an explicit
`torch.Generator`. When the caller passes
none, a fresh generator seeded from the operating system's entropy is made for the call, so the
global RNG state (``torch.get_rng_state()``) is never read or advanced.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import DataError

__all__ = [
    "REFERENCE_SIZE",
    "SEVERITIES",
    "CorruptionFn",
    "check_images",
    "check_severity",
    "corruption",
    "normal",
    "poisson",
    "randint",
    "reference_shape",
    "resize_layer",
    "rgb_to_gray",
    "spatial_scale",
    "uniform",
]

#: Image side (pixels) the published parameters were tuned for (ImageNet-C: 224x224 crops).
REFERENCE_SIZE = 224
#: The valid severities.
SEVERITIES = (1, 2, 3, 4, 5)
#: Slack allowed below 0 and above 1 in the input images (float rounding of normalisations).
RANGE_SLACK = 1e-6
#: ITU-R BT.601 luma weights, as OpenCV's ``COLOR_RGB2GRAY`` used by the published code.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


class CorruptionFn(Protocol):
    """Signature of every corruption: ``fn(images [B, C, H, W], severity, generator) -> images``."""

    __name__: str

    def __call__(
        self, images: Tensor, severity: int, generator: torch.Generator | None = None
    ) -> Tensor: ...


def check_severity(severity: object) -> int:
    """Return ``severity`` as an int, or raise
    [`DataError`][predify.evaluate.corruptions._common.DataError] if it is not one of 1..5."""
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral):
        raise DataError(f"severity must be an integer from 1 to 5, got {severity!r}")
    value = int(severity)
    if value not in SEVERITIES:
        raise DataError(f"severity must be an integer from 1 to 5, got {value}")
    return value


def check_images(images: object) -> None:
    """Raise [`DataError`][predify.evaluate.corruptions._common.DataError] unless ``images`` is a
    float tensor [B, C, H, W] in [0, 1]
    with C = 1 or 3 (values may exceed the range by ``RANGE_SLACK``)."""
    if not isinstance(images, Tensor):
        raise DataError(
            f"images must be a torch.Tensor of shape [B, C, H, W], got {type(images).__name__}"
        )
    if images.ndim != 4:
        raise DataError(
            f"images must have 4 dimensions [B, C, H, W], got {images.ndim} "
            f"with shape {tuple(images.shape)}"
        )
    if not images.is_floating_point():
        raise DataError(
            f"images must be a floating-point tensor with values in [0, 1], got dtype "
            f"{images.dtype} (convert uint8 images with images.float() / 255)"
        )
    channels = images.shape[1]
    if channels not in (1, 3):
        raise DataError(
            f"images must have 1 (grayscale) or 3 (RGB) channels, got {channels} "
            f"in shape {tuple(images.shape)}"
        )
    if images.numel() == 0:
        return
    low, high = torch.aminmax(images.detach())
    low_value, high_value = float(low), float(high)
    if not (math.isfinite(low_value) and math.isfinite(high_value)):
        raise DataError("images must lie in [0, 1], got NaN or infinite values")
    if low_value < -RANGE_SLACK or high_value > 1 + RANGE_SLACK:
        raise DataError(
            f"images must lie in [0, 1], got values in [{low_value:.6g}, {high_value:.6g}]"
        )


def _fresh_generator(device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.seed()  # OS entropy; leaves the global generator untouched
    return generator


def corruption(
    function: Callable[[Tensor, int, torch.Generator], Tensor],
) -> CorruptionFn:
    """Wrap a corruption kernel with the checks and dtype handling shared by all corruptions.

    The kernel receives validated images [B, C, H, W] in a float dtype of at least float32
    precision, the severity as an int in 1..5, and a generator that is never None. Its result
    is clamped to [0, 1] and cast back to the input dtype.
    """

    @functools.wraps(function)
    def wrapper(images: Tensor, severity: int, generator: torch.Generator | None = None) -> Tensor:
        check_images(images)
        level = check_severity(severity)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise DataError(
                f"generator must be a torch.Generator or None, got {type(generator).__name__}"
            )
        if images.numel() == 0:
            return images.clone()
        rng = generator if generator is not None else _fresh_generator(images.device)
        work_dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        with torch.no_grad():
            work = images.detach().to(work_dtype).clamp(0.0, 1.0)
            result = function(work, level, rng)
            return result.clamp_(0.0, 1.0).to(images.dtype)

    return wrapper


# --------------------------------------------------------------------------- random numbers
# Values are drawn on the generator's device (torch requires it) and then moved to the images'
# device, so a CPU generator works for CUDA images and vice versa.


def uniform(
    generator: torch.Generator,
    shape: Sequence[int],
    like: Tensor,
    low: float = 0.0,
    high: float = 1.0,
) -> Tensor:
    """Uniform samples in [low, high) with ``like``'s device and dtype."""
    values = torch.rand(
        tuple(shape), generator=generator, device=generator.device, dtype=like.dtype
    )
    return (values * (high - low) + low).to(like.device)


def normal(
    generator: torch.Generator,
    shape: Sequence[int],
    like: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
) -> Tensor:
    """Normal samples N(mean, std^2) with ``like``'s device and dtype."""
    values = torch.randn(
        tuple(shape), generator=generator, device=generator.device, dtype=like.dtype
    )
    return (values * std + mean).to(like.device)


def randint(
    generator: torch.Generator,
    low: int,
    high: int,
    shape: Sequence[int],
    device: torch.device,
) -> Tensor:
    """Integers in [low, high) (int64) on ``device``."""
    values = torch.randint(low, high, tuple(shape), generator=generator, device=generator.device)
    return values.to(device)


def poisson(generator: torch.Generator, rates: Tensor) -> Tensor:
    """Poisson samples with the given (non-negative) rates, same shape, dtype and device."""
    samples = torch.poisson(rates.to(generator.device), generator=generator)
    return samples.to(rates.device)


# --------------------------------------------------------------------------- image-size scaling


def spatial_scale(height: int, width: int) -> float:
    """Factor s = min(H, W) / 224 that converts the published pixel parameters to this size."""
    return min(height, width) / REFERENCE_SIZE


def reference_shape(height: int, width: int) -> tuple[int, int]:
    """(H, W) rescaled so that the shorter side is 224: the grid random layers are drawn on."""
    scale = spatial_scale(height, width)
    return max(1, round(height / scale)), max(1, round(width / scale))


def resize_layer(layer: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize ``layer`` [N, C, h, w] to ``size`` (antialiased bilinear); no-op when equal."""
    if tuple(layer.shape[-2:]) == tuple(size):
        return layer
    return F.interpolate(layer, size=size, mode="bilinear", align_corners=False, antialias=True)


def rgb_to_gray(images: Tensor) -> Tensor:
    """Luma [B, 1, H, W] of [B, 3, H, W] images (BT.601 weights); 1-channel images unchanged."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor(LUMA_WEIGHTS, dtype=images.dtype, device=images.device)
    return torch.einsum("bchw,c->bhw", images, weights).unsqueeze(1)


def color_for_channels(rgb: Sequence[float], channels: int, like: Tensor) -> Tensor:
    """An RGB colour as a [1, C, 1, 1] tensor; its luma when C is 1."""
    if channels == 1:
        value = sum(w * c for w, c in zip(LUMA_WEIGHTS, rgb, strict=True))
        return torch.full((1, 1, 1, 1), value, dtype=like.dtype, device=like.device)
    return torch.tensor(rgb, dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
