"""The minimal-perturbation measure: per image, the smallest L2 and L-inf perturbation that
changes the decision at a readout, by a bisection over each image's budget with predify's own
iterative attack through the unrolled dynamics.

Why a bisection rather than foolbox's Fast Minimum-Norm attack (FMN): on a linear classifier,
whose minimal distance is known exactly (|w.x + b| / ||w||), foolbox 3.3.4's ``L2FMNAttack``
returned its first step's norm (1.0, 15-30 times the true distance) whatever the number of
steps; the bisection finds it to its resolution. It also needs no other package, aims at the
same readout with the same success test as the other attacks, and its answer is an upper bound
with a known resolution: an adversarial image at that distance was found.

Per image and norm: the attack at the largest budget (the whole [0, 1] cube) first; if it
fails, the distance is inf. Then ``bisections`` halvings of [0, largest]: the distance is the
norm of the adversarial found at the smallest budget that succeeded, within
largest / 2**bisections of the smallest budget at which the attack succeeds.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..pixel_space import PixelSpaceNet, check_pixel_range
from .objectives import Norm, success_mask
from .white_box import descend_per_image

__all__ = ["MINIMAL_METHOD", "median_distance", "minimal_perturbations"]

#: How the minimal perturbations are searched for, as results.json states it.
MINIMAL_METHOD = (
    "bisection over each image's budget (from the whole [0, 1] cube) with BIM from the clean "
    "image, step 2.5 * eps / steps"
)


def _largest(images: Tensor, norm: Norm) -> float:
    """The largest distance within [0, 1]: 1 in L-inf, sqrt(pixels) in L2."""
    return 1.0 if norm == "linf" else math.sqrt(images[0].numel())


def _distances(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    norm: Norm,
    readout: int,
    steps: int,
    bisections: int,
) -> Tensor:
    """float64 [B] smallest distance found in ``norm`` (inf: none)."""
    order = 2.0 if norm == "l2" else math.inf
    low = torch.zeros(len(images), dtype=torch.float64)
    high = torch.full((len(images),), _largest(images, norm), dtype=torch.float64)
    found = torch.full((len(images),), math.inf, dtype=torch.float64)
    alive = torch.arange(len(images))
    budget = high
    for _ in range(bisections + 1):
        if alive.numel() == 0:
            break
        index = alive.to(images.device)
        adversarial, fooled = descend_per_image(
            model, images[index], labels[index], budget.float(), timesteps=readout,
            readout=readout, norm=norm, steps=steps,
        )  # fmt: skip
        fooled = fooled.cpu()
        sizes = (adversarial - images[index]).flatten(1).norm(p=order, dim=1).double().cpu()
        found[alive[fooled]] = torch.minimum(found[alive[fooled]], sizes[fooled])
        high[alive[fooled]] = budget[fooled]
        low[alive[~fooled]] = budget[~fooled]
        # Images not fooled with the whole cube are given up: their distance stays inf.
        alive = alive[torch.isfinite(found[alive])]
        budget = (low[alive] + high[alive]) / 2
    return found


def minimal_perturbations(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    *,
    readout: int,
    steps: int = 20,
    bisections: int = 10,
) -> np.ndarray:
    """The smallest perturbation found that changes the prediction at ``readout``.

    Args:
        model: network in pixel space.
        images: [B, C, H, W] in [0, 1]; labels: int [B].
        readout: the timestep read out.
        steps: attack steps per budget tried.
        bisections: halvings of the budget interval (resolution 1/1024 of it with 10).

    Returns:
        float64 [2, B]: the L2 (row 0) and L-inf (row 1) norm of the smallest perturbation
        found, in pixel units; 0 where the clean image is already misclassified, inf where the
        attack fails even with the whole cube.
    """
    check_pixel_range(images)
    images = images.detach()
    with torch.inference_mode():
        logits = model(images, timesteps=readout).logits
    wrong = success_mask(logits[readout], labels).cpu()
    distances = np.zeros((2, len(images)))
    attacked = (~wrong).nonzero().flatten()
    if attacked.numel() > 0:
        index = attacked.to(images.device)
        norms: tuple[Norm, Norm] = ("l2", "linf")
        for row, norm in enumerate(norms):
            found = _distances(
                model, images[index], labels[index], norm, readout, steps, bisections
            )
            distances[row, attacked.numpy()] = found.numpy()
    return distances


def median_distance(distances: np.ndarray) -> float | None:
    """The median of per-image distances (inf: none found); None when it is inf."""
    median = float(np.median(distances))
    return median if np.isfinite(median) else None
