"""PResNet18: torchvision's ResNet-18 with pcoders at the stem's max-pool and each stage."""

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

__all__ = ["PRESNET18_MODULES", "presnet18"]

PRESNET18_MODULES = ("maxpool", "layer1", "layer2", "layer3", "layer4")


@register_model(
    backbone="torchvision:resnet18",
    build_backbone=partial(torchvision_backbone, "resnet18"),
    modules=PRESNET18_MODULES,
    input_size=(3, 224, 224),
    normalization=IMAGENET_NORMALIZATION,
    # Every torchvision ResNet has the same stage names.
    backbone_prefixes=("torchvision:resnet", "torchvision:resnext", "torchvision:wide_resnet"),
)
def presnet18(
    *,
    weights: Any = None,
    feedback_weights: str | os.PathLike[str] | None = None,
    hyperparameters: Hyperparameters = PAPER_HYPERPARAMETERS,
    gradient_scaling: bool = True,
    timesteps: int = 10,
    image_size: int = 224,
    num_classes: int = 1000,
) -> PredictiveNet:
    """PResNet18 with automatic decoders (upsample + 3x3 transposed convolution).

    Args: as :func:`predify.models.pvgg16`; ``weights`` as for ``torchvision.models.resnet18``.
    """
    backbone = torchvision.models.resnet18(weights=weights, num_classes=num_classes)
    return build_zoo_model(
        "presnet18", "PResNet18", backbone, input_size=(3, image_size, image_size),
        pretrained=weights is not None, hyperparameters=hyperparameters,
        gradient_scaling=gradient_scaling, timesteps=timesteps, feedback_weights=feedback_weights,
    )  # fmt: skip
