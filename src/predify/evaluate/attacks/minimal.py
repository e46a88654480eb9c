"""The minimal-perturbation measure: per image, the smallest L2 and L-inf perturbation that
changes the decision at a readout, by the Fast Minimum-Norm attack (FMN; Pintor et al.,
NeurIPS 2021) of foolbox.

Why FMN rather than a bisection over epsilon with PGD: FMN searches the smallest norm directly,
adapting the radius of each image at each step, so one run of ``steps`` gradient passes gives a
distance per image; a bisection needs about ten full PGD runs per image for a resolution of
1/1000 of the starting interval, and reports only distances on its grid. FMN's result is an
upper bound: an adversarial image at that distance was found (checked again here).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ...errors import ConfigError
from ..pixel_space import PixelSpaceNet, check_pixel_range
from ..readout_classifier import classifier

__all__ = ["FMN_METHOD", "minimal_perturbations"]

#: How the minimal perturbations are searched for, as results.json states it.
FMN_METHOD = "Fast Minimum-Norm attack (Pintor et al., 2021), foolbox L2FMNAttack / LInfFMNAttack"


def minimal_perturbations(
    model: PixelSpaceNet, images: Tensor, labels: Tensor, *, readout: int, steps: int = 100
) -> np.ndarray:
    """The smallest perturbation FMN finds that changes the prediction at ``readout``.

    Args:
        model: network in pixel space.
        images: [B, C, H, W] in [0, 1]; labels: int [B].
        readout: the timestep read out.
        steps: FMN's gradient steps per image and norm (foolbox's default, 100).

    Returns:
        float64 [2, B]: the L2 (row 0) and L-inf (row 1) norm of the perturbation, in pixel
        units; 0 where the clean image is already misclassified, inf where none was found.

    Raises:
        ConfigError: foolbox is not installed.
    """
    try:
        import foolbox as fb
    except ImportError:
        raise ConfigError(
            "--attacks fmn needs the foolbox package: pip install 'predify[attacks]'"
        ) from None
    check_pixel_range(images)
    images = images.detach()
    readout_model = classifier(model, timestep=readout)
    fmodel = fb.PyTorchModel(readout_model, bounds=(0, 1), device=images.device)
    with torch.no_grad():
        wrong = readout_model(images).argmax(dim=-1) != labels
    distances = np.zeros((2, len(images)))
    for row, (attack, order) in enumerate(
        (
            (fb.attacks.L2FMNAttack(steps=steps), 2.0),
            (fb.attacks.LInfFMNAttack(steps=steps), np.inf),
        )
    ):
        adversarial, _, _ = attack(fmodel, images, labels, epsilons=None)
        with torch.no_grad():
            fooled = readout_model(adversarial).argmax(dim=-1) != labels
        norms = (adversarial - images).flatten(1).norm(p=order, dim=1)
        found = torch.where(fooled, norms, torch.full_like(norms, float("inf")))
        distances[row] = torch.where(wrong, torch.zeros_like(found), found).cpu().double().numpy()
    return distances


def median_distance(distances: np.ndarray) -> float | None:
    """The median of per-image distances (inf: none found); None when it is inf."""
    median = float(np.median(distances))
    return median if np.isfinite(median) else None
