"""A conventional small CNN for 28x28 or 32x32 images, and its predictive version.

Unlike [`ShallowCNN`][predify.models.ShallowCNN] it keeps the spatial layout up to the classifier
(flatten, hidden layer, linear) instead of averaging each feature map. That is what keeps it
usable under additive noise: noise raises the mean of every ReLU map, and a global average pool
turns that into one shift common to all images, larger than the distance between classes, so
the pooled network predicts one class for every noisy image (``benchmarks/noise_collapse.py``
measures both, on the validation split).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from torch import Tensor, nn

from ..builder import PAPER_HYPERPARAMETERS
from ..config import Hyperparameters
from ..errors import ConfigError
from ..network import PredictiveNet
from ._common import build_unpublished_zoo_model, three_conv_stages
from ._registry import register_model

__all__ = ["SMALL_CNN_MODULES", "SmallCNN", "psmallcnn"]

#: After each of the three convolution stages (the pools, then the third ReLU).
SMALL_CNN_MODULES = ("features[2]", "features[5]", "features[7]")


class SmallCNN(nn.Module):
    """conv-ReLU-pool, conv-ReLU-pool, conv-ReLU, flatten, linear-ReLU, linear.

    Input [B, in_channels, H, W] with H = W = ``image_size`` (divisible by 4: 28 or 32),
    output [B, num_classes]. The features after the third convolution are
    [B, widths[2], H/4, W/4].
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: int = 32,
        widths: Sequence[int] = (16, 32, 32),
        hidden: int = 64,
    ) -> None:
        super().__init__()
        if image_size < 4 or image_size % 4:
            raise ConfigError(f"SmallCNN: image_size must be a multiple of 4, got {image_size}")
        self.features = three_conv_stages(in_channels, widths)
        third = widths[2]
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(third * side * side, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@register_model(
    backbone="small_cnn",
    build_backbone=SmallCNN,
    modules=SMALL_CNN_MODULES,
    input_size=(3, 32, 32),
)
def psmallcnn(
    backbone: SmallCNN | None = None,
    *,
    weights: None = None,
    feedback_weights: str | os.PathLike[str] | None = None,
    in_channels: int = 3,
    num_classes: int = 10,
    image_size: int = 32,
    widths: Sequence[int] = (16, 32, 32),
    hidden: int = 64,
    hyperparameters: Hyperparameters = PAPER_HYPERPARAMETERS,
    gradient_scaling: bool = True,
    timesteps: int = 10,
) -> PredictiveNet:
    """A predictive [`SmallCNN`][predify.models.small_cnn.SmallCNN] with automatic decoders (three
    pcoders).

    Args:
        backbone: a (trained) SmallCNN; a new one is built from ``in_channels``, ``num_classes``,
            ``image_size``, ``widths`` and ``hidden`` when None.
        weights: only None: there are no published weights of this network (the argument exists
            so that every zoo builder takes it).
        image_size: H = W of the inputs (28 for MNIST, 32 for CIFAR).
        others: as `predify.models.pvgg16()`.
    """
    if backbone is None:
        backbone = SmallCNN(in_channels, num_classes, image_size, widths, hidden)
    return build_unpublished_zoo_model(
        "psmallcnn", "PSmallCNN", backbone, weights=weights, image_size=image_size,
        hyperparameters=hyperparameters, gradient_scaling=gradient_scaling, timesteps=timesteps,
        feedback_weights=feedback_weights,
    )  # fmt: skip
