"""PVGG16: torchvision's VGG16 with the Predify paper's five pcoders."""

from __future__ import annotations

from typing import Any

import torchvision

from ..network import PredictiveNet
from ._common import build_torchvision_zoo_model, torchvision_entry
from ._registry import register_model

__all__ = ["PVGG16_MODULES", "PVGG16_PREDICTORS", "pvgg16"]

#: The ReLU after the last convolution of each of VGG16's five blocks.
PVGG16_MODULES = ("features[3]", "features[8]", "features[15]", "features[22]", "features[29]")

#: The paper's decoders: each predicts the block below (the image for the first).
PVGG16_PREDICTORS = (
    "ConvTranspose2d(64, 3, kernel_size=5, stride=1, padding=2)",
    "Sequential(ConvTranspose2d(128, 64, kernel_size=10, stride=2, padding=4), ReLU())",
    "Sequential(ConvTranspose2d(256, 128, kernel_size=14, stride=2, padding=6), ReLU())",
    "Sequential(ConvTranspose2d(512, 256, kernel_size=14, stride=2, padding=6), ReLU())",
    "Sequential(ConvTranspose2d(512, 512, kernel_size=14, stride=2, padding=6), ReLU())",
)


@register_model(**torchvision_entry("vgg16", PVGG16_MODULES, predictors=PVGG16_PREDICTORS))
def pvgg16(*, weights: Any = None, **options: Any) -> PredictiveNet:
    """PVGG16 (Choksi et al., 2021).

    Args:
        weights: backbone weights, as for ``torchvision.models.vgg16`` (``None``, ``"DEFAULT"``
            or a ``VGG16_Weights``). Inputs are then expected normalised with ImageNet statistics
            (``pnet.normalization``).
        options: those of [`predify.models.ZooOptions`][predify.models.ZooOptions]
            (``feedback_weights``,
            ``hyperparameters``, ``gradient_scaling`` (off in the paper's PVGG16), ``timesteps``,
            ``image_size``, ``num_classes``); any other name is refused with a ConfigError.
    """
    return build_torchvision_zoo_model(
        "pvgg16", "PVGG16", torchvision.models.vgg16, weights, options, gradient_scaling=False
    )
