"""PEfficientNetB0: torchvision's EfficientNet-B0 with a pcoder after the stem and each stage."""

from __future__ import annotations

from functools import partial
from typing import Any

import torchvision

from ..network import PredictiveNet
from ._common import ZOO_OPTIONS, build_torchvision_zoo_model, torchvision_backbone
from ._registry import IMAGENET_NORMALIZATION, register_model

__all__ = ["PEFFNETB0_MODULES", "peffnetb0"]

#: features[0] is the stem, features[1..7] the seven MBConv stages.
PEFFNETB0_MODULES = tuple(f"features[{index}]" for index in range(8))


@register_model(
    backbone="torchvision:efficientnet_b0",
    build_backbone=partial(torchvision_backbone, "efficientnet_b0"),
    modules=PEFFNETB0_MODULES,
    input_size=(3, 224, 224),
    options=ZOO_OPTIONS,
    normalization=IMAGENET_NORMALIZATION,
)
def peffnetb0(*, weights: Any = None, **options: Any) -> PredictiveNet:
    """PEfficientNetB0 with automatic decoders (upsample + 3x3 transposed convolution).

    Args: as :func:`predify.models.pvgg16`; ``weights`` as for
    ``torchvision.models.efficientnet_b0``.
    """
    return build_torchvision_zoo_model(
        "peffnetb0",
        "PEfficientNetB0",
        torchvision.models.efficientnet_b0,
        weights,
        options,
        gradient_scaling=True,
    )
