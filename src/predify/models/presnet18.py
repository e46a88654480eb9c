"""PResNet18: torchvision's ResNet-18 with pcoders at the stem's max-pool and each stage."""

from __future__ import annotations

import os
from typing import Any

import torchvision

from ..builder import PAPER_HYPERPARAMETERS
from ..config import Hyperparameters
from ..network import PredictiveNet
from ._common import build_zoo_model
from ._registry import register_model

__all__ = ["PRESNET18_MODULES", "presnet18"]

PRESNET18_MODULES = ("maxpool", "layer1", "layer2", "layer3", "layer4")


@register_model
def presnet18(
    weights: Any = None,
    feedback_weights: str | os.PathLike[str] | None = None,
    *,
    hyperparameters: Hyperparameters = PAPER_HYPERPARAMETERS,
    gradient_scaling: bool = True,
    timesteps: int = 10,
    image_size: int = 224,
    **backbone_kwargs: Any,
) -> PredictiveNet:
    """PResNet18 with automatic decoders (upsample + 3x3 transposed convolution).

    Args: as :func:`predify.models.pvgg16`; ``weights`` as for ``torchvision.models.resnet18``.
    """
    backbone = torchvision.models.resnet18(weights=weights, **backbone_kwargs)
    return build_zoo_model(
        backbone,
        "PResNet18",
        (3, image_size, image_size),
        PRESNET18_MODULES,
        [None] * len(PRESNET18_MODULES),
        hyperparameters=hyperparameters,
        gradient_scaling=gradient_scaling,
        timesteps=timesteps,
        feedback_weights=feedback_weights,
    )
