"""PVGG16: torchvision's VGG16 with the Predify paper's five pcoders."""

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


@register_model(
    backbone="torchvision:vgg16",
    build_backbone=partial(torchvision_backbone, "vgg16"),
    modules=PVGG16_MODULES,
    predictors=PVGG16_PREDICTORS,
    input_size=(3, 224, 224),
    normalization=IMAGENET_NORMALIZATION,
)
def pvgg16(
    *,
    weights: Any = None,
    feedback_weights: str | os.PathLike[str] | None = None,
    hyperparameters: Hyperparameters = PAPER_HYPERPARAMETERS,
    gradient_scaling: bool = False,
    timesteps: int = 10,
    image_size: int = 224,
    num_classes: int = 1000,
) -> PredictiveNet:
    """PVGG16 (Choksi et al., 2021).

    Every zoo builder takes these keyword arguments (others are refused with a ConfigError):

    Args:
        weights: backbone weights, as for ``torchvision.models.vgg16`` (``None``, ``"DEFAULT"``
            or a ``VGG16_Weights``). Inputs are then expected normalised with ImageNet statistics
            (``pnet.normalization``).
        feedback_weights: a local feedback checkpoint (:func:`predify.checkpoint.save_feedback`).
        hyperparameters: beta, lambda, alpha of every pcoder (lambda is 0 on the top one).
        gradient_scaling: scale the error gradient by numel/sqrt(C) (the paper's PVGG16: off).
        timesteps: the default T of a forward call.
        image_size: H = W of the inputs, 224 for ImageNet.
        num_classes: outputs of the backbone's classifier.
    """
    return build_zoo_model(
        "pvgg16", "PVGG16",
        torchvision.models.vgg16(weights=weights, num_classes=num_classes),
        input_size=(3, image_size, image_size), pretrained=weights is not None,
        hyperparameters=hyperparameters, gradient_scaling=gradient_scaling,
        timesteps=timesteps, feedback_weights=feedback_weights,
    )  # fmt: skip
