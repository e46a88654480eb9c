"""Pixel-space noise, the one kernel that tuning, evaluation and the demo share: parse
``gaussian:SIGMA``, ``saltpepper:P``, ``uniform:W`` and apply them.

Noise acts in pixel space, on images [B, C, H, W] in [0, 1], before any mean/std normalisation
the backbone expects. It is left unclipped by default, as in the follow-up paper (Alamia et al.),
whose Gaussian noise pushes pixels outside [0, 1]; ``clip=True`` clamps the result to [0, 1].
Random numbers come only from the `torch.Generator` the
caller passes, so the same seed
gives the same noisy images on any device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["NOISE_FORMS", "NoiseSpec", "add_gaussian_noise", "add_noise", "parse_noise"]

#: The accepted forms, as every parse error lists them.
NOISE_FORMS = "gaussian:SIGMA (SIGMA >= 0), saltpepper:P (0 <= P <= 1) or uniform:W (W >= 0)"

# kind -> (name of the level in messages, largest valid level)
_KINDS: dict[str, tuple[str, float]] = {
    "gaussian": ("SIGMA", math.inf),
    "saltpepper": ("P", 1.0),
    "uniform": ("W", math.inf),
}


@dataclass(frozen=True)
class NoiseSpec:
    """One kind of pixel noise at one level.

    Attributes:
        kind: ``"gaussian"`` (add N(0, level^2)), ``"saltpepper"`` (each value becomes 0 or 1,
            equally likely, with probability level) or ``"uniform"`` (add U(-level, level)).
        level: sigma, probability or half-width.
        clip: clamp the noisy images to [0, 1].
    """

    kind: str
    level: float
    clip: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(f"noise kind {self.kind!r} is unknown; expected {NOISE_FORMS}")
        name, high = _KINDS[self.kind]
        level = self.level
        if (
            not isinstance(level, (int, float))
            or isinstance(level, bool)
            or not math.isfinite(level)
            or not 0.0 <= level <= high
        ):
            raise ConfigError(
                f"noise {self.kind}:{level!r}: {name} out of range; expected {NOISE_FORMS}"
            )
        object.__setattr__(self, "level", float(level))

    def __str__(self) -> str:
        return f"{self.kind}:{self.level:g}"

    @property
    def label(self) -> str:
        """A name safe in file names, ``gaussian-0.5``."""
        return f"{self.kind}-{self.level:g}"

    def apply(self, images: Tensor, generator: torch.Generator) -> Tensor:
        """The noisy images; see [`add_noise()`][predify.data.noise.add_noise]."""
        return add_noise(images, self, generator)


def parse_noise(text: str, *, clip: bool = False) -> NoiseSpec:
    """A [`NoiseSpec`][predify.data.noise.NoiseSpec] from ``gaussian:0.5``, ``saltpepper:0.1`` or
    ``uniform:0.3``.

    Raises:
        ConfigError: one line naming the bad spec and listing the accepted forms.
    """
    if not isinstance(text, str):
        raise ConfigError(f"noise {text!r}: expected a string such as gaussian:0.5")
    kind, separator, value = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in _KINDS or not separator:
        raise ConfigError(f"noise {text!r} is not understood; expected {NOISE_FORMS}")
    try:
        level = float(value)
    except ValueError:
        raise ConfigError(
            f"noise {text!r}: {value.strip()!r} is not a number; expected {NOISE_FORMS}"
        ) from None
    return NoiseSpec(kind, level, clip=clip)


def _draw(
    sample: str, images: Tensor, generator: torch.Generator, shape: tuple[int, ...]
) -> Tensor:
    # Drawn on the generator's device, then moved: the same seed gives the same noise on a GPU.
    if sample == "normal":
        values = torch.randn(
            shape, generator=generator, device=generator.device, dtype=images.dtype
        )
    else:
        values = torch.rand(shape, generator=generator, device=generator.device, dtype=images.dtype)
    return values.to(images.device)


def add_gaussian_noise(
    images: Tensor, sigma: float, generator: torch.Generator, clip: bool = False
) -> Tensor:
    """``images + N(0, sigma^2)`` per value, drawn on the generator's device; [B, C, H, W].

    The same as [`add_noise()`][predify.data.noise.add_noise] with ``NoiseSpec("gaussian", sigma,
    clip)``.
    """
    return add_noise(images, NoiseSpec("gaussian", float(sigma), clip=clip), generator)


def add_noise(images: Tensor, noise: NoiseSpec, generator: torch.Generator) -> Tensor:
    """``images`` with ``noise`` added, independently per pixel and channel.

    Args:
        images: float [B, C, H, W] (any shape works) in pixel space, [0, 1].
        noise: what to add.
        generator: the only source of randomness.

    Returns:
        A new tensor of the same shape, dtype and device; ``images`` is left unchanged.
    """
    if not images.is_floating_point():
        raise ConfigError(f"noise needs floating-point images, got {images.dtype}")
    shape = tuple(images.shape)
    if noise.level == 0.0:
        noisy = images.clone()
    elif noise.kind == "gaussian":
        noisy = images + noise.level * _draw("normal", images, generator, shape)
    elif noise.kind == "uniform":
        noisy = images + noise.level * (2.0 * _draw("uniform", images, generator, shape) - 1.0)
    else:  # saltpepper
        draws = _draw("uniform", images, generator, (2, *shape))
        salt = (draws[1] < 0.5).to(images.dtype)
        noisy = torch.where(draws[0] < noise.level, salt, images)
    return noisy.clamp_(0.0, 1.0) if noise.clip else noisy
