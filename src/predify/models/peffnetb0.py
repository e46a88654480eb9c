"""PEfficientNetB0: torchvision's EfficientNet-B0 with a pcoder after the stem and each stage."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import torchvision

from ..builder import PAPER_HYPERPARAMETERS
from ..config import Hyperparameters
from ..network import PredictiveNet
from ._common import build_zoo_model, torchvision_backbone
from ._registry import IMAGENET_NORMALIZATION, register_model

__all__ = ["PEFFNETB0_MODULES", "peffnetb0"]

#: features[0] is the stem, features[1..7] the seven MBConv stages.
PEFFNETB0_MODULES = tuple(f"features[{index}]" for index in range(8))


@register_model(
    backbone="torchvision:efficientnet_b0",
    build_backbone=partial(torchvision_backbone, "efficientnet_b0"),
    modules=PEFFNETB0_MODULES,
    input_size=(3, 224, 224),
    normalization=IMAGENET_NORMALIZATION,
)
def peffnetb0(
    *,
    weights: Any = None,
    feedback_weights: str | os.PathLike[str] | None = None,
    hyperparameters: Hyperparameters = PAPER_HYPERPARAMETERS,
    gradient_scaling: bool = True,
    timesteps: int = 10,
    image_size: int = 224,
    num_classes: int = 1000,
) -> PredictiveNet:
    """PEfficientNetB0 with automatic decoders (upsample + 3x3 transposed convolution).

    Args: as :func:`predify.models.pvgg16`; ``weights`` as for
    ``torchvision.models.efficientnet_b0``.
    """
    model = torchvision.models.efficientnet_b0(weights=weights, num_classes=num_classes)
    size = (3, image_size, image_size)
    return build_zoo_model(
        "peffnetb0", "PEfficientNetB0", model, input_size=size, pretrained=weights is not None,
        hyperparameters=hyperparameters, gradient_scaling=gradient_scaling, timesteps=timesteps,
        feedback_weights=feedback_weights,
    )  # fmt: skip
