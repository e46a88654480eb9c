"""Noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

All four act on each pixel and channel independently, exactly as the published code, with the
published parameters; they have no size-dependent parameter. Images are [B, C, H, W] in [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import corruption, normal, poisson, uniform

__all__ = [
    "GAUSSIAN_NOISE_STD",
    "IMPULSE_NOISE_AMOUNT",
    "SHOT_NOISE_PHOTONS",
    "SPECKLE_NOISE_STD",
    "gaussian_noise",
    "impulse_noise",
    "shot_noise",
    "speckle_noise",
]

#: Standard deviation of the additive Gaussian noise, severities 1-5.
GAUSSIAN_NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)
#: Photon count at intensity 1 of the Poisson noise (lower is noisier), severities 1-5.
SHOT_NOISE_PHOTONS = (60, 25, 12, 5, 3)
#: Fraction of values replaced by 0 or 1, severities 1-5.
IMPULSE_NOISE_AMOUNT = (0.03, 0.06, 0.09, 0.17, 0.27)
#: Standard deviation of the multiplicative Gaussian noise, severities 1-5.
SPECKLE_NOISE_STD = (0.15, 0.2, 0.35, 0.45, 0.6)


@corruption
def gaussian_noise(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """``x + N(0, std^2)`` per value, std from
    [`GAUSSIAN_NOISE_STD`][predify.evaluate.corruptions.noise.GAUSSIAN_NOISE_STD]. [B, C, H, W] ->
    same."""
    std = GAUSSIAN_NOISE_STD[severity - 1]
    return images + normal(generator, images.shape, images, std=std)


@corruption
def shot_noise(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """``Poisson(x * n) / n`` per value, n from
    [`SHOT_NOISE_PHOTONS`][predify.evaluate.corruptions.noise.SHOT_NOISE_PHOTONS]. [B, C, H, W]."""
    photons = SHOT_NOISE_PHOTONS[severity - 1]
    return poisson(generator, images * photons) / photons


@corruption
def impulse_noise(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """Salt and pepper: each value independently becomes 0 or 1 (equally likely) with
    probability from
    [`IMPULSE_NOISE_AMOUNT`][predify.evaluate.corruptions.noise.IMPULSE_NOISE_AMOUNT], as
    ``skimage.util.random_noise(mode="s&p")``.
    [B, C, H, W] -> same."""
    amount = IMPULSE_NOISE_AMOUNT[severity - 1]
    draws = uniform(generator, (2, *images.shape), images)
    flipped = draws[0] < amount
    salt = (draws[1] < 0.5).to(images.dtype)
    return torch.where(flipped, salt, images)


@corruption
def speckle_noise(images: Tensor, severity: int, generator: torch.Generator) -> Tensor:
    """``x + x * N(0, std^2)`` per value, std from
    [`SPECKLE_NOISE_STD`][predify.evaluate.corruptions.noise.SPECKLE_NOISE_STD]. [B, C, H, W]."""
    std = SPECKLE_NOISE_STD[severity - 1]
    return images + images * normal(generator, images.shape, images, std=std)
