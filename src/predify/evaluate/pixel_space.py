"""A predictive network fed with images in pixel space ([0, 1]), normalisation inside.

Corruptions, noise and attack budgets are defined on pixels, while a backbone may expect
mean/std-normalised inputs. [`PixelSpaceNet`][predify.evaluate.pixel_space.PixelSpaceNet] puts the
normalisation between the two, so
every evaluation works on [0, 1] images and gradients (for attacks) reach pixel space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from ..data.normalization import InputNormalization
from ..errors import ConfigError, DataError
from ..network import PNetOutput, PredictiveNet

__all__ = ["PixelSpaceNet", "check_pixel_range"]

# Slack below 0 and above 1 (float rounding of image decoders and resizes).
_RANGE_SLACK = 1e-6


def check_pixel_range(images: Tensor, where: str = "images") -> None:
    """Raise [`DataError`][predify.evaluate.pixel_space.DataError] unless ``images`` is a finite
    float tensor with values in [0, 1].

    Args:
        images: [B, C, H, W] (any shape is accepted).
        where: what to call the tensor in the message (e.g. the data set spec).
    """
    if not isinstance(images, Tensor) or not images.is_floating_point():
        kind = images.dtype if isinstance(images, Tensor) else type(images).__name__
        raise DataError(f"{where}: expected float images in [0, 1], got {kind}")
    if images.numel() == 0:
        raise DataError(f"{where}: no images")
    low, high = (float(value) for value in torch.aminmax(images.detach()))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise DataError(f"{where}: images hold NaN or infinite values; expected values in [0, 1]")
    if low < -_RANGE_SLACK or high > 1 + _RANGE_SLACK:
        raise DataError(
            f"{where}: images have values in [{low:.4g}, {high:.4g}]; expected pixel values in "
            "[0, 1] (mean/std normalisation is applied by predify, after corruptions and noise)"
        )


class PixelSpaceNet(nn.Module):
    """``pnet(normalize(images))`` for images in [0, 1].

    Args:
        pnet: the predictive network (its input is whatever the backbone expects).
        normalization: ``{"mean": [...], "std": [...]}``, an
            [`InputNormalization`][predify.evaluate.pixel_space.InputNormalization], or
            None when the backbone takes [0, 1] images as they are; by default the one the
            network carries (``pnet.normalization``, set by the zoo and by ``load_run``).
    """

    def __init__(
        self,
        pnet: PredictiveNet,
        normalization: Mapping[str, Sequence[float]] | InputNormalization | str | None = "network",
    ) -> None:
        super().__init__()
        self.pnet = pnet
        if isinstance(normalization, str):
            if normalization != "network":
                raise ConfigError(f"normalization: unknown {normalization!r}")
            normalization = getattr(pnet, "normalization", None)
        if isinstance(normalization, Mapping):
            missing = {"mean", "std"} - set(normalization)
            if missing:
                raise ConfigError(
                    f"normalization: expected keys mean and std, missing {sorted(missing)}"
                )
            normalization = InputNormalization(normalization["mean"], normalization["std"])
        self.normalization: InputNormalization | None = normalization
        if normalization is not None and normalization.num_channels != pnet.input_size[0]:
            raise ConfigError(
                f"normalization has {normalization.num_channels} channels but the network takes "
                f"{pnet.input_size[0]}"
            )
        parameter = next(pnet.parameters(), None)
        if normalization is not None and parameter is not None:
            normalization.to(parameter.device)

    @property
    def input_size(self) -> tuple[int, ...]:
        """Shape of one image, (C, H, W)."""
        return tuple(self.pnet.input_size)

    @property
    def num_pcoders(self) -> int:
        return self.pnet.num_pcoders

    @property
    def pcoder_names(self) -> list[str]:
        """The backbone module each pcoder updates, bottom first."""
        return [pcoder.module_path for pcoder in self.pnet.pcoders]

    @property
    def device(self) -> torch.device:
        parameter = next(self.pnet.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def normalize(self, images: Tensor) -> Tensor:
        """What the backbone takes: [B, C, H, W] pixel images -> normalised images."""
        return images if self.normalization is None else self.normalization(images)

    def to_pixels(self, inputs: Tensor) -> Tensor:
        """Inverse of `normalize()` (e.g. for the first decoder's prediction of the input)."""
        if self.normalization is None:
            return inputs
        return inputs * self.normalization.std + self.normalization.mean

    def forward(self, images: Tensor, timesteps: int, record: bool = False) -> PNetOutput:
        """One unrolled pass: ``logits`` [T+1, B, K] (and, with ``record``, reps/preds/errors).

        Differentiable with respect to ``images`` when gradients are enabled.
        """
        return self.pnet(self.normalize(images), timesteps=timesteps, record=record)

    def num_classes(self) -> int:
        """K, read from one feed-forward pass on a blank image."""
        probe = torch.zeros(1, *self.input_size, device=self.device)
        with torch.inference_mode():
            logits = self.forward(probe, timesteps=0).logits
        if logits.dim() != 3:
            raise ConfigError(
                f"the network outputs logits of shape {list(logits.shape[1:])} per timestep; "
                "expected [B, classes] (a classifier)"
            )
        return int(logits.shape[-1])

    def extra_repr(self) -> str:
        return f"normalized={self.normalization is not None}"
