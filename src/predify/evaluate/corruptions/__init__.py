"""ImageNet-C corruptions (Hendrycks & Dietterich, ICLR 2019) on torch image batches.

The 15 ImageNet-C corruptions and the 4 extra ones of the published ``imagenet_c`` code, at
severities 1-5 with the published parameters, applied to float tensors [B, C, H, W] in [0, 1]
(C = 1 or 3, any size) on their own device, with randomness drawn only from an explicit
`torch.Generator`:

>>> import torch
>>> from predify.evaluate.corruptions import corrupt, resolve_corruptions, parse_severities
>>> images = torch.rand(2, 3, 32, 32)
>>> noisy = corrupt(images, "gaussian_noise", 3, torch.Generator().manual_seed(0))
>>> noisy.shape
torch.Size([2, 3, 32, 32])
>>> resolve_corruptions("extra")
['speckle_noise', 'gaussian_blur', 'spatter', 'saturate']
>>> parse_severities("1-3,5")
[1, 2, 3, 5]

Pixel-valued parameters were tuned for 224 x 224 images. Filters applied to the image (blurs)
scale them by ``s = min(H, W) / 224`` (glass blur by ``max(1, s)``: its whole-pixel
displacements keep their published values on smaller images); random layers (snow, frost,
fog, spatter, the elastic displacement field) are drawn on the reference grid whose shorter
side is 224 and resized to the image. At 224 x 224 both give the published values. Frost uses
the published photographs when the ``imagecorruptions`` package is installed and generated
textures otherwise; [`frost_source()`][predify.evaluate.corruptions.frost_source] says which, for
results to record. Where the
implementation departs from the published code (ImageMagick's motion blur, OpenCV's spatter
steps...), the family modules and ``README.md`` say how.

Pre-generated benchmarks are read by
[`ImageNetCFolder`][predify.evaluate.corruptions.ImageNetCFolder] and
[`CifarCArrays`][predify.evaluate.corruptions.CifarCArrays].
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import torch
from torch import Tensor

from ...errors import DataError
from ._common import SEVERITIES, CorruptionFn, check_severity
from .blur import defocus_blur, gaussian_blur, glass_blur, motion_blur, zoom_blur
from .datasets import CifarCArrays, ImageNetCFolder
from .digital import (
    brightness,
    contrast,
    elastic_transform,
    jpeg_compression,
    pixelate,
    saturate,
)
from .noise import gaussian_noise, impulse_noise, shot_noise, speckle_noise
from .weather import fog, frost, frost_source, snow, spatter

__all__ = [
    "ALL_CORRUPTIONS",
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "IMAGENET_C_CORRUPTIONS",
    "SEVERITIES",
    "CifarCArrays",
    "CorruptionFn",
    "ImageNetCFolder",
    "check_corruption_name",
    "corrupt",
    "frost_source",
    "parse_severities",
    "resolve_corruptions",
]

#: Every corruption by name, in ImageNet-C order: the 15 benchmark corruptions, then the 4
#: extra ones. Each is called as ``fn(images, severity, generator=None)``.
CORRUPTIONS: dict[str, CorruptionFn] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "spatter": spatter,
    "saturate": saturate,
}
#: The 19 names, in registry order.
ALL_CORRUPTIONS: tuple[str, ...] = tuple(CORRUPTIONS)
#: The 15 corruptions of the ImageNet-C benchmark.
IMAGENET_C_CORRUPTIONS: tuple[str, ...] = ALL_CORRUPTIONS[:15]
#: The 4 extra corruptions released with ImageNet-C (validation corruptions).
EXTRA_CORRUPTIONS: tuple[str, ...] = ALL_CORRUPTIONS[15:]

_GROUPS: dict[str, tuple[str, ...]] = {
    "all": ALL_CORRUPTIONS,
    "imagenet-c": IMAGENET_C_CORRUPTIONS,
    "extra": EXTRA_CORRUPTIONS,
}


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def check_corruption_name(name: object) -> str:
    """Return the registry name for ``name`` (case, '-' and ' ' forgiven) or raise DataError."""
    if not isinstance(name, str):
        raise DataError(f"corruption name must be a string, got {type(name).__name__}")
    key = _normalise(name)
    if key in CORRUPTIONS:
        return key
    close = difflib.get_close_matches(key, ALL_CORRUPTIONS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise DataError(
        f"unknown corruption {name!r}{hint}; expected one of: {', '.join(ALL_CORRUPTIONS)}"
    )


def corrupt(
    images: Tensor, name: str, severity: int, generator: torch.Generator | None = None
) -> Tensor:
    """Apply corruption ``name`` at ``severity`` (1-5) to ``images`` [B, C, H, W] in [0, 1].

    Returns a new tensor of the same shape, dtype and device, in [0, 1]. Random corruptions
    draw only from ``generator`` (a fresh, OS-seeded one if None; the global RNG is never
    used). Raises [`predify.errors.DataError`][predify.errors.DataError] for an unknown name, a
    severity outside
    1..5, or images that are not a float tensor [B, 1 or 3, H, W] in [0, 1].
    """
    return CORRUPTIONS[check_corruption_name(name)](images, severity, generator)


def resolve_corruptions(spec: str | Sequence[str]) -> list[str]:
    """Names selected by ``spec``: "all" (19), "imagenet-c" (15), "extra" (4), or names,
    comma-separated in a string or as a sequence (groups may be mixed in). Order is kept,
    duplicates dropped. Raises DataError for an unknown or empty selection."""
    if isinstance(spec, str):
        parts = spec.split(",")
    elif isinstance(spec, Sequence) and all(isinstance(item, str) for item in spec):
        parts = [part for item in spec for part in item.split(",")]
    else:
        raise DataError(
            f"corruptions must be a string or a list of names, got {type(spec).__name__}"
        )
    names: list[str] = []
    for part in parts:
        key = part.strip().lower().replace("_", "-")
        if not key:
            continue
        selected = _GROUPS.get(key) or (check_corruption_name(part),)
        names.extend(name for name in selected if name not in names)
    if not names:
        raise DataError(
            f"no corruption selected by {spec!r}: expected 'all', 'imagenet-c', 'extra' "
            f"or comma-separated names"
        )
    return names


def _parse_severity_token(token: str, spec: object) -> list[int]:
    low_text, dash, high_text = token.partition("-")
    try:
        low = int(low_text)
        high = int(high_text) if dash else low
    except ValueError:
        raise DataError(
            f"cannot parse severities {spec!r}: expected e.g. '1-5', '3' or '1,3,5'"
        ) from None
    if low > high:
        raise DataError(f"severity range {token!r} in {spec!r} is reversed; expected e.g. '1-5'")
    return [check_severity(value) for value in range(low, high + 1)]


def parse_severities(spec: str | int | Sequence[int]) -> list[int]:
    """Severities selected by ``spec``: an int, "3", "1-5", "1,3,5" (ranges may be mixed in,
    "1-3,5"), or a sequence of ints. Order is kept, duplicates dropped. Raises DataError for
    anything outside 1..5 or unparsable."""
    values: list[int]
    if isinstance(spec, str):
        tokens = [token.strip() for token in spec.split(",") if token.strip()]
        values = [value for token in tokens for value in _parse_severity_token(token, spec)]
    elif isinstance(spec, Sequence):
        values = [check_severity(value) for value in spec]
    else:
        values = [check_severity(spec)]
    unique = list(dict.fromkeys(values))
    if not unique:
        raise DataError(f"no severity selected by {spec!r}: expected e.g. '1-5', '3' or '1,3,5'")
    return unique
