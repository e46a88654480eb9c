"""Procedural frost textures: the stand-in for the frost photographs of the published code.

The published ``frost`` corruption adds a random 224 x 224 crop of one of five photographs of
frost on glass, which cannot be redistributed here. Instead five frost-like textures are
generated on first use, deterministically (fixed seeds, CPU generator), and cached in memory:

1. a faint, low-frequency haze (frosted glass), made of upsampled uniform noise at two scales;
2. ice "ferns": straight trunks in random directions, side branches every few pixels at +-60
   degrees (the hexagonal habit of ice), and a second generation of branches on those;
3. the crystals are drawn by splatting points every half pixel along each segment (bilinear
   weights), compressed with ``1 - exp(-k d)`` so crossings saturate to white, sharpened by
   a light blur and given a soft glow by a wider one;
4. the grey texture is tinted blue-white, like frost photographed against a window.

The textures are 512 x 512 RGB in [0, 1] with mean levels between about 0.44 and 0.62 (the
five differ in crystal density, size and haze), and are meant to be cropped at the 224-pixel
reference scale. Their brightness statistics are not fitted to the published photographs.
To look at them::

    python -c "from predify.evaluate.corruptions._frost_textures import write_pngs; \
        write_pngs('frost_pngs')"

"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ._filters import gaussian_filter

__all__ = [
    "TEXTURE_COUNT",
    "TEXTURE_SIZE",
    "frost_textures",
    "generate_frost_texture",
    "write_pngs",
]

TEXTURE_COUNT = 5
TEXTURE_SIZE = 512
_BRANCH_ANGLE = math.pi / 3  # ice branches at 60 degrees
#: RGB tint of the grey texture: blue-white.
_TINT_GAIN = (0.84, 0.92, 1.0)
_TINT_OFFSET = (0.02, 0.04, 0.08)


@dataclass(frozen=True)
class _Style:
    seed: int
    trunks: int  # number of level-0 crystals
    trunk_length: tuple[float, float]  # uniform range, pixels
    branch_spacing: float  # pixels between side branches
    branch_ratio: tuple[float, float]  # side-branch length / parent length
    haze: float  # amplitude of the low-frequency haze
    density_gain: float  # k of 1 - exp(-k d)


_STYLES = (
    _Style(101, 110, (60.0, 220.0), 5.0, (0.12, 0.35), 0.30, 1.6),
    _Style(202, 160, (40.0, 150.0), 4.0, (0.15, 0.40), 0.26, 1.4),
    _Style(303, 70, (100.0, 300.0), 6.0, (0.10, 0.30), 0.32, 1.8),
    _Style(404, 120, (50.0, 180.0), 3.5, (0.10, 0.45), 0.24, 1.2),
    _Style(505, 90, (80.0, 240.0), 5.0, (0.20, 0.40), 0.28, 1.5),
)


def _uniform(generator: torch.Generator, count: int, low: float, high: float) -> Tensor:
    return torch.rand(count, generator=generator, dtype=torch.float64) * (high - low) + low


def _branches(
    generator: torch.Generator,
    start: Tensor,
    angle: Tensor,
    length: Tensor,
    brightness: Tensor,
    spacing: float,
    ratio: tuple[float, float],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Side branches of the segments (start [N, 2], angle [N], length [N], brightness [N]).

    Branch points every ``spacing`` pixels (jittered) along each parent, alternating sides, at
    +-60 degrees; a branch's length shrinks towards the parent's tip.
    """
    counts = torch.floor(length / spacing).long().clamp(min=0)
    parent = torch.repeat_interleave(torch.arange(length.numel()), counts)
    if parent.numel() == 0:
        empty = torch.zeros(0, dtype=torch.float64)
        return empty.view(0, 2), empty, empty, empty
    # Position of each branch point along its parent: k-th point at (k + 1 - jitter) * spacing.
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(parent.numel()) - first[parent]
    jitter = _uniform(generator, parent.numel(), 0.0, 0.6)
    along = ((rank + 1).to(torch.float64) - jitter) * spacing
    along = torch.minimum(along, length[parent])
    direction = torch.stack((torch.cos(angle[parent]), torch.sin(angle[parent])), dim=1)
    origin = start[parent] + direction * along.unsqueeze(1)
    side = torch.where(rank % 2 == 0, 1.0, -1.0).to(torch.float64)
    side = side * torch.where(_uniform(generator, parent.numel(), 0, 1) < 0.5, 1.0, -1.0)
    branch_angle = (
        angle[parent] + side * _BRANCH_ANGLE + _uniform(generator, parent.numel(), -0.15, 0.15)
    )
    remaining = (1.0 - along / length[parent]).clamp(min=0.0)
    branch_length = length[parent] * _uniform(generator, parent.numel(), *ratio) * remaining.sqrt()
    branch_brightness = brightness[parent] * _uniform(generator, parent.numel(), 0.6, 0.9)
    return origin, branch_angle, branch_length, branch_brightness


def _splat_segments(
    size: int, start: Tensor, angle: Tensor, length: Tensor, brightness: Tensor
) -> Tensor:
    """Draw segments into a [size, size] density map by bilinear splatting every 0.5 px."""
    step = 0.5
    samples = torch.ceil(length / step).long().clamp(min=1)
    segment = torch.repeat_interleave(torch.arange(length.numel()), samples)
    first = torch.cumsum(samples, 0) - samples
    position = (torch.arange(segment.numel()) - first[segment]).to(torch.float64) * step
    x = start[segment, 0] + torch.cos(angle[segment]) * position
    y = start[segment, 1] + torch.sin(angle[segment]) * position
    weight = brightness[segment] * step
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    density = torch.zeros(size * size, dtype=torch.float64)
    for dx, dy, corner_weight in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        cx, cy = x0.long() + dx, y0.long() + dy
        inside = (cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)
        density.index_add_(0, (cy * size + cx)[inside], (weight * corner_weight)[inside])
    return density.view(size, size)


def _haze(generator: torch.Generator, size: int, amplitude: float) -> Tensor:
    """Low-frequency haze [size, size] in [0, amplitude]: upsampled noise at two scales."""
    layers = []
    for cells, share in ((6, 0.65), (24, 0.35)):
        noise = torch.rand(1, 1, cells, cells, generator=generator, dtype=torch.float64)
        smooth = F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
        layers.append(share * smooth[0, 0])
    return amplitude * torch.stack(layers).sum(0).clamp(0.0, 1.0)


def generate_frost_texture(index: int, size: int = TEXTURE_SIZE) -> Tensor:
    """The ``index``-th procedural frost texture (0..4) -> float32 [3, size, size] in [0, 1]."""
    style = _STYLES[index]
    generator = torch.Generator().manual_seed(style.seed)
    count = style.trunks
    margin = 0.1 * size
    start = _uniform(generator, 2 * count, -margin, size + margin).view(count, 2)
    angle = _uniform(generator, count, 0.0, 2 * math.pi)
    length = _uniform(generator, count, *style.trunk_length)
    brightness = _uniform(generator, count, 0.6, 1.0)
    segments = [(start, angle, length, brightness)]
    for _generation in range(2):
        segments.append(
            _branches(generator, *segments[-1], style.branch_spacing, style.branch_ratio)
        )
    density = sum(
        (_splat_segments(size, *parts) for parts in segments),
        torch.zeros(size, size, dtype=torch.float64),
    )
    crystals = 1.0 - torch.exp(-style.density_gain * density)
    sharp = gaussian_filter(crystals, 0.6, mode="reflect")
    glow = gaussian_filter(crystals, 3.0, mode="reflect")
    grey = (_haze(generator, size, style.haze) + sharp + 0.6 * glow).clamp(0.0, 1.0)
    gain = torch.tensor(_TINT_GAIN, dtype=torch.float64).view(3, 1, 1)
    offset = torch.tensor(_TINT_OFFSET, dtype=torch.float64).view(3, 1, 1)
    return (grey.unsqueeze(0) * gain + offset).clamp(0.0, 1.0).to(torch.float32)


@functools.lru_cache(maxsize=1)
def _cpu_textures() -> Tensor:
    return torch.stack([generate_frost_texture(i) for i in range(TEXTURE_COUNT)])


@functools.lru_cache(maxsize=8)
def _textures_on(device: torch.device, dtype: torch.dtype) -> Tensor:
    return _cpu_textures().to(device=device, dtype=dtype)


def frost_textures(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Tensor:
    """The five frost textures [5, 3, 512, 512] in [0, 1] on ``device`` (generated once)."""
    return _textures_on(torch.device(device), dtype)


def write_pngs(directory: str | Path) -> None:
    """Write the five textures as ``frost1.png`` ... ``frost5.png`` into ``directory``."""
    from PIL import Image

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for i, texture in enumerate(_cpu_textures()):
        pixels = (texture.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        Image.fromarray(pixels).save(out / f"frost{i + 1}.png")
        print(f"frost{i + 1}.png: mean {float(texture.mean()):.3f}")
