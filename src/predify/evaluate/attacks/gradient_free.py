"""The gradient-free Square attack (L-inf; Andriushchenko et al., ECCV 2020), a compact version
written here on torch only (``torchattacks`` is not needed): the guard against gradient masking
that needs no gradient."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ..pixel_space import PixelSpaceNet, check_pixel_range
from .objectives import Readout, check_readout
from .white_box import check_budget

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


def square(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    *,
    epsilon: float,
    timesteps: int,
    readout: Readout,
    queries: int = 300,
    p_init: float = 0.8,
    targets: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Square attack (L-inf), gradient-free: random square updates at the corners of the ball.

    A compact version of Andriushchenko et al. (ECCV 2020): vertical-stripe initialisation, then
    per query one random square window (side from the paper's schedule of ``p_init``) set to
    +-epsilon per channel, kept if the margin loss decreases. Only images not yet fooled are
    queried. (The original also resamples windows that would not change the image; skipped.)

    Args:
        images: [B, C, H, W] in [0, 1].
        queries: forward passes per image at most (including the initialisation).
        p_init: initial fraction of the image a window covers; 0.8, the paper's L-inf value
            (0.1 finds far fewer adversarials at small budgets, too weak to reveal masking).

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
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    batch, channels, height, width = images.shape

    def signs(shape: tuple[int, ...]) -> Tensor:
        draws = torch.randint(0, 2, shape, generator=generator, device=generator.device)
        return (draws * 2 - 1).to(images)

    def margins(candidates: Tensor, index: Tensor) -> Tensor:
        with torch.inference_mode():
            logits = model(candidates, timesteps=unrolled).logits
        wanted = None if targets is None else targets[index]
        return _margin(logits, labels[index], readout, wanted)

    everyone = torch.arange(batch, device=images.device)
    adversarial = (images + epsilon * signs((batch, channels, 1, width))).clamp(0.0, 1.0)
    margin = margins(adversarial, everyone)
    rows = torch.arange(height, device=images.device)
    cols = torch.arange(width, device=images.device)
    for iteration in range(queries - 1):
        active = (margin >= 0).nonzero().flatten()
        if active.numel() == 0:
            break
        fraction = _square_fraction(p_init, iteration, queries)
        side = int(min(max(round(math.sqrt(fraction * height * width)), 1), height, width))
        count = active.numel()
        top = torch.randint(0, height - side + 1, (count,), generator=generator).to(rows.device)
        left = torch.randint(0, width - side + 1, (count,), generator=generator).to(cols.device)
        in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)  # [n, H]
        in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)  # [n, W]
        window = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)  # [n, 1, H, W]
        delta = adversarial[active] - images[active]
        delta = torch.where(window, epsilon * signs((count, channels, 1, 1)), delta)
        candidate = (images[active] + delta).clamp(0.0, 1.0)
        candidate_margin = margins(candidate, active)
        better = candidate_margin < margin[active]
        adversarial[active[better]] = candidate[better]
        margin[active[better]] = candidate_margin[better]
    return adversarial
