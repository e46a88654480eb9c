"""PResNet18: torchvision's ResNet-18 with pcoders at the stem's max-pool and each stage."""

from __future__ import annotations

from typing import Any

import torchvision

from ..network import PredictiveNet
from ._common import build_torchvision_zoo_model, torchvision_entry
from ._registry import register_model

__all__ = ["PRESNET18_MODULES", "presnet18"]

PRESNET18_MODULES = ("maxpool", "layer1", "layer2", "layer3", "layer4")


@register_model(
    **torchvision_entry(
        "resnet18",
        PRESNET18_MODULES,
        # Every torchvision ResNet has the same stage names.
        backbone_prefixes=("torchvision:resnet", "torchvision:resnext", "torchvision:wide_resnet"),
    )
)
def presnet18(*, weights: Any = None, **options: Any) -> PredictiveNet:
    """PResNet18 with automatic decoders (upsample + 3x3 transposed convolution).

    Args: as `predify.models.pvgg16()`; ``weights`` as for ``torchvision.models.resnet18``.
    """
    return build_torchvision_zoo_model(
        "presnet18",
        "PResNet18",
        torchvision.models.resnet18,
        weights,
        options,
        gradient_scaling=True,
    )
