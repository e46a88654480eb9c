"""A small three-layer CNN for 28x28 or 32x32 images, and its predictive version."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..builder import PAPER_HYPERPARAMETERS
from ..config import Hyperparameters
from ..network import PredictiveNet
from ._common import build_unpublished_zoo_model, three_conv_stages
from ._registry import register_model

__all__ = ["SHALLOW_MODULES", "ShallowCNN", "pshallow"]

#: After each of the three convolution stages.
SHALLOW_MODULES = ("features[2]", "features[5]", "features[7]")


class ShallowCNN(nn.Module):
    """conv-ReLU-pool, conv-ReLU-pool, conv-ReLU, global average pool, linear.

    Input [B, in_channels, H, W] (H, W divisible by 4: 28 or 32), output [B, num_classes].
    """

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64)
    ) -> None:
        super().__init__()
        self.features = three_conv_stages(in_channels, widths)
        third = widths[2]
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(third, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model(
    backbone="shallow_cnn",
    build_backbone=ShallowCNN,
    modules=SHALLOW_MODULES,
    input_size=(3, 32, 32),
)
def pshallow(
    backbone: ShallowCNN | None = None,
    *,
    weights: None = None,
    feedback_weights: str | os.PathLike[str] | None = None,
    in_channels: int = 3,
    num_classes: int = 10,
    image_size: int = 32,
    widths: Sequence[int] = (16, 32, 64),
    hyperparameters: Hyperparameters = PAPER_HYPERPARAMETERS,
    gradient_scaling: bool = True,
    timesteps: int = 10,
) -> PredictiveNet:
    """A predictive [`ShallowCNN`][predify.models.shallow.ShallowCNN] with automatic decoders.

    Args:
        backbone: a (trained) ShallowCNN; a new one is built from ``in_channels``,
            ``num_classes`` and ``widths`` when None.
        weights: only None: there are no published weights of this network (the argument exists
            so that every zoo builder takes it).
        image_size: H = W of the inputs (28 for MNIST, 32 for CIFAR).
        others: as `predify.models.pvgg16()`.
    """
    if backbone is None:
        backbone = ShallowCNN(in_channels, num_classes, widths)
    return build_unpublished_zoo_model(
        "pshallow", "PShallowCNN", backbone, weights=weights, image_size=image_size,
        hyperparameters=hyperparameters, gradient_scaling=gradient_scaling, timesteps=timesteps,
        feedback_weights=feedback_weights,
    )  # fmt: skip
