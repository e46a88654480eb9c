"""Per-channel input normalisation as a model layer, and the usual mean/std constants.

The data pipeline keeps images in pixel space ([0, 1]) because corruptions, noise and attacks are
defined there. The normalisation a pretrained backbone expects is therefore part of the model::

    model = nn.Sequential(InputNormalization(IMAGENET_MEAN, IMAGENET_STD), backbone)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from predify.errors import ConfigError, DataError

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "FASHIONMNIST_MEAN",
    "FASHIONMNIST_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MNIST_MEAN",
    "MNIST_STD",
    "InputNormalization",
    "pretrained_normalization",
]

# torchvision's ImageNet-pretrained weights expect these (RGB, images in [0, 1]).
IMAGENET_MEAN: tuple[float, ...] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, ...] = (0.229, 0.224, 0.225)

MNIST_MEAN: tuple[float, ...] = (0.1307,)
MNIST_STD: tuple[float, ...] = (0.3081,)

FASHIONMNIST_MEAN: tuple[float, ...] = (0.2860,)
FASHIONMNIST_STD: tuple[float, ...] = (0.3530,)

# Per-channel statistics of the CIFAR-10 training images. Some code uses
# (0.2023, 0.1994, 0.2010) as std, which is the std of per-image means, not of pixels; use whatever
# the backbone was trained with if it differs.
CIFAR10_MEAN: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, ...] = (0.2470, 0.2435, 0.2616)

CIFAR100_MEAN: tuple[float, ...] = (0.5071, 0.4865, 0.4409)
CIFAR100_STD: tuple[float, ...] = (0.2673, 0.2564, 0.2762)


def pretrained_normalization(backbone: nn.Module) -> dict[str, list[float]] | None:
    """The mean/std a timm model's pretrained weights expect, from its pretrained config.

    Read with timm's ``resolve_model_data_config`` from the model's ``pretrained_cfg``, which
    ``timm.create_model`` fills in whether or not weights are loaded: nothing is downloaded.

    Returns:
        ``{"mean": [...], "std": [...]}`` for images in [0, 1], or None for a model without a
        timm pretrained config (or when timm is not installed).
    """
    if getattr(backbone, "pretrained_cfg", None) is None:
        return None
    try:
        from timm.data import resolve_model_data_config
    except ImportError:
        return None
    data_config = resolve_model_data_config(backbone)
    mean, std = data_config.get("mean"), data_config.get("std")
    if mean is None or std is None:
        return None
    return {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}


class InputNormalization(nn.Module):
    """``(x - mean) / std`` per channel, like ``torchvision.transforms.Normalize`` but a layer.

    Being a module, it moves with the model (``.to(device)``), works on batches and is
    differentiable, so gradients (e.g. for attacks) flow back to pixel space.

    Args:
        mean: per-channel mean, length C.
        std: per-channel standard deviation, length C, all > 0.

    Shapes:
        input: [..., C, H, W] (usually [B, C, H, W]), pixel values in [0, 1].
        output: same shape as the input, float.

    ``mean`` and ``std`` are non-persistent buffers: they follow ``.to()`` but are not written to
    the state dict, so wrapping a backbone does not add keys to its checkpoint.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_values = [float(m) for m in mean]
        std_values = [float(s) for s in std]
        if not mean_values or len(mean_values) != len(std_values):
            raise ConfigError(
                f"InputNormalization got {len(mean_values)} means and {len(std_values)} stds; "
                "expected one mean and one std per channel (at least one channel)"
            )
        if not all(math.isfinite(s) and s > 0 for s in std_values):
            raise ConfigError(f"InputNormalization std = {std_values}; expected all stds > 0")
        if not all(math.isfinite(m) for m in mean_values):
            raise ConfigError(f"InputNormalization mean = {mean_values}; expected finite means")
        # [C, 1, 1] broadcasts over the spatial dimensions and any leading batch dimensions.
        self.register_buffer("mean", torch.tensor(mean_values).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std_values).view(-1, 1, 1), persistent=False)

    @property
    def num_channels(self) -> int:
        return int(self.mean.shape[0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() < 3 or images.shape[-3] != self.num_channels:
            raise DataError(
                f"InputNormalization input has shape {tuple(images.shape)}; expected "
                f"[..., {self.num_channels}, H, W]"
            )
        return (images - self.mean) / self.std

    def extra_repr(self) -> str:
        mean = ", ".join(f"{m:.4g}" for m in self.mean.flatten().tolist())
        std = ", ".join(f"{s:.4g}" for s in self.std.flatten().tolist())
        return f"mean=({mean}), std=({std})"
