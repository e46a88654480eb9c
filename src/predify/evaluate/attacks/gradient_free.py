"""The gradient-free Square attack (L-inf; Andriushchenko et al., ECCV 2020), a compact version
written here on torch only (``torchattacks`` is not needed): the guard against gradient masking
that needs no gradient."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ...errors import ConfigError
from ..pixel_space import PixelSpaceNet, check_pixel_range
from .objectives import Readout, check_readout
from .white_box import check_budget, image_generators

__all__ = ["square"]


def _square_fraction(p_init: float, iteration: int, queries: int) -> float:
    """The Square attack's schedule of the window area (fraction of the image), rescaled from
    the paper's 10000 queries to ``queries``."""
    scaled = int(iteration / queries * 10000)
    for bound, divisor in (
        (10, 1), (50, 2), (200, 4), (500, 8), (1000, 16),
        (2000, 32), (4000, 64), (6000, 128), (8000, 256), (10000, 512),
    ):  # fmt: skip
        if scaled <= bound:
            return p_init / divisor
    return p_init / 512


def _margin(logits: Tensor, labels: Tensor, readout: Readout, targets: Tensor | None) -> Tensor:
    """float [B], < 0 exactly when the attack succeeds at the readout.

    Untargeted: z_label - max_{j != label} z_j. Targeted: max_{j != target} z_j - z_target.
    For ``"sum"``: the largest margin over timesteps (success needs every timestep).
    """
    selected = logits if readout == "sum" else logits[readout].unsqueeze(0)
    wanted = labels if targets is None else targets
    picked = selected.gather(-1, wanted.view(1, -1, 1).expand(selected.shape[0], -1, 1))
    others = selected.scatter(-1, wanted.view(1, -1, 1).expand_as(picked), -math.inf)
    best_other = others.max(dim=-1).values
    margin = picked.squeeze(-1) - best_other if targets is None else best_other - picked.squeeze(-1)
    return margin.max(dim=0).values


@dataclass(frozen=True)
class _Draws:
    """Every random draw of a Square run, per image from its own generator (so an image's
    attack does not depend on its batch): the initial stripes' signs [B, C, 1, W], and per
    query the window's corner as fractions in [0, 1) [B, Q] and its signs [B, Q, C]."""

    stripes: Tensor
    top: Tensor
    left: Tensor
    signs: Tensor

    @classmethod
    def draw(cls, generators: list[torch.Generator], shape: torch.Size, queries: int) -> _Draws:
        _, channels, _, width = shape

        def signs(generator: torch.Generator, *size: int) -> Tensor:
            return torch.randint(0, 2, size, generator=generator).float() * 2 - 1

        per_image = [
            (
                signs(g, channels, 1, width),
                torch.rand(queries, generator=g),
                torch.rand(queries, generator=g),
                signs(g, queries, channels),
            )
            for g in generators
        ]
        return cls(*(torch.stack(parts) for parts in zip(*per_image, strict=True)))


def square(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    *,
    epsilon: float,
    timesteps: int,
    readout: Readout,
    queries: int = 5000,
    p_init: float = 0.8,
    targets: Tensor | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
) -> Tensor:
    """Square attack (L-inf), gradient-free: random square updates at the corners of the ball.

    A compact version of Andriushchenko et al. (ECCV 2020): vertical-stripe initialisation, then
    per query one random square window (side from the paper's schedule of ``p_init``) set to
    +-epsilon per channel, kept if the margin loss decreases. Only images not yet fooled are
    queried. (The original also resamples windows that would not change the image; skipped.)

    Args:
        images: [B, C, H, W] in [0, 1].
        queries: forward passes per image at most (including the initialisation); 5000, the
            budget of the paper's ImageNet experiments and of AutoAttack's standard version.
        p_init: initial fraction of the image a window covers; 0.8, the paper's L-inf value
            (0.1 finds far fewer adversarials at small budgets, too weak to reveal masking).
        generator: one generator per image, or one for the batch (see
            [`pgd()`][predify.evaluate.attacks.pgd]).

    The other arguments are those of [`pgd()`][predify.evaluate.attacks.pgd].

    Returns:
        Adversarial images [B, C, H, W] in [0, 1] with L-inf distance <= epsilon.
    """
    check_budget(epsilon, "linf", max(queries, 1))
    check_pixel_range(images)
    unrolled = check_readout(readout, timesteps)
    if not 0 < p_init <= 1:
        raise ConfigError(f"p_init: expected a fraction in (0, 1], got {p_init!r}")
    images = images.detach()
    if epsilon == 0:
        return images.clone()
    draws = _Draws.draw(image_generators(generator, len(images)), images.shape, queries)
    batch, _, height, width = images.shape

    def margins(candidates: Tensor, index: Tensor) -> Tensor:
        with torch.inference_mode():
            logits = model(candidates, timesteps=unrolled).logits
        wanted = None if targets is None else targets[index]
        return _margin(logits, labels[index], readout, wanted)

    everyone = torch.arange(batch, device=images.device)
    adversarial = (images + epsilon * draws.stripes.to(images)).clamp(0.0, 1.0)
    margin = margins(adversarial, everyone)
    rows = torch.arange(height, device=images.device)
    cols = torch.arange(width, device=images.device)
    for iteration in range(queries - 1):
        active = (margin >= 0).nonzero().flatten()
        if active.numel() == 0:
            break
        fraction = _square_fraction(p_init, iteration, queries)
        side = int(min(max(round(math.sqrt(fraction * height * width)), 1), height, width))
        chosen = active.cpu()
        top = _corner(draws.top[chosen, iteration], height - side).to(rows.device)
        left = _corner(draws.left[chosen, iteration], width - side).to(cols.device)
        in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)  # [n, H]
        in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)  # [n, W]
        window = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)  # [n, 1, H, W]
        delta = adversarial[active] - images[active]
        window_signs = draws.signs[chosen, iteration].to(images)[:, :, None, None]
        delta = torch.where(window, epsilon * window_signs, delta)
        candidate = (images[active] + delta).clamp(0.0, 1.0)
        candidate_margin = margins(candidate, active)
        better = candidate_margin < margin[active]
        adversarial[active[better]] = candidate[better]
        margin[active[better]] = candidate_margin[better]
    return adversarial


def _corner(fractions: Tensor, last: int) -> Tensor:
    """Window corners 0..last (inclusive) from uniform draws in [0, 1)."""
    return (fractions * (last + 1)).long().clamp(max=last)
