"""PEfficientNetB0: torchvision's EfficientNet-B0 with a pcoder after the stem and each stage."""

from __future__ import annotations

import os
from typing import Any

import torchvision

from ..builder import PAPER_HYPERPARAMETERS
from ..config import Hyperparameters
from ..network import PredictiveNet
from ._common import build_zoo_model
from ._registry import register_model

__all__ = ["PEFFNETB0_MODULES", "peffnetb0"]

#: features[0] is the stem, features[1..7] the seven MBConv stages.
PEFFNETB0_MODULES = tuple(f"features[{index}]" for index in range(8))


@register_model
def peffnetb0(
    weights: Any = None,
    feedback_weights: str | os.PathLike[str] | None = None,
    *,
    hyperparameters: Hyperparameters = PAPER_HYPERPARAMETERS,
    gradient_scaling: bool = True,
    timesteps: int = 10,
    image_size: int = 224,
    **backbone_kwargs: Any,
) -> PredictiveNet:
    """PEfficientNetB0 with automatic decoders (upsample + 3x3 transposed convolution).

    Args: as :func:`predify.models.pvgg16`; ``weights`` as for
    ``torchvision.models.efficientnet_b0``.
    """
    backbone = torchvision.models.efficientnet_b0(weights=weights, **backbone_kwargs)
    return build_zoo_model(
        backbone,
        "PEfficientNetB0",
        (3, image_size, image_size),
        PEFFNETB0_MODULES,
        [None] * len(PEFFNETB0_MODULES),
        hyperparameters=hyperparameters,
        gradient_scaling=gradient_scaling,
        timesteps=timesteps,
        feedback_weights=feedback_weights,
    )
