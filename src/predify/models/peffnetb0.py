"""PEfficientNetB0: torchvision's EfficientNet-B0 with a pcoder after the stem and each stage."""

from __future__ import annotations

from typing import Any

import torchvision

from ..network import PredictiveNet
from ._common import build_torchvision_zoo_model, torchvision_entry
from ._registry import register_model

__all__ = ["PEFFNETB0_MODULES", "peffnetb0"]

#: features[0] is the stem, features[1..7] the seven MBConv stages.
PEFFNETB0_MODULES = tuple(f"features[{index}]" for index in range(8))


@register_model(**torchvision_entry("efficientnet_b0", PEFFNETB0_MODULES))
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
