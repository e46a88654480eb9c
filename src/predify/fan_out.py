"""The fan-out C of a decoder: how many prediction elements one representation element reaches.

The gradient scaling of the Predify papers multiplies a pcoder's error gradient by
numel(prediction) / sqrt(C) ([`PCoder`][predify.pcoder.PCoder]).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from .decoder_layers import is_channelwise
from .errors import ConfigError

__all__ = ["decoder_fan_out"]

_CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d, nn.Conv3d, nn.ConvTranspose3d)


def _one_input_channel(layer: nn.Module) -> nn.Module | None:
    """A fresh copy of a plain convolution that reads input channel 0 only, or None."""
    if type(layer) not in _CONVOLUTIONS or layer.groups != 1:  # type: ignore[attr-defined]
        return None
    conv = cast(nn.modules.conv._ConvNd, layer)
    common: dict[str, object] = {
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "bias": conv.bias is not None,
        "padding_mode": conv.padding_mode,
    }
    if conv.transposed:
        common["output_padding"] = conv.output_padding
    # Built on the meta device, then given (uninitialised) storage: the probe's weights are all
    # set to 1 anyway, and a real initialisation would draw from the global RNG.
    build: Any = type(conv)  # one of _CONVOLUTIONS, which all take these keywords
    sliced = build(1, conv.out_channels, conv.kernel_size, device="meta", **common)
    return sliced.to_empty(device="cpu")


def _fan_out_probe(decoder: nn.Module, channels: int) -> tuple[nn.Module, int]:
    """A copy of ``decoder`` to measure the fan-out of channel 0 on, and its input channels.

    Only channel 0 of the impulse is non-zero, so the first convolution (after channel-wise
    layers) may read that channel alone: the count is the same, and the probe of a
    ConvTranspose2d(512, 512, 14) costs a 512th of a full one.
    """
    layers = list(decoder) if isinstance(decoder, nn.Sequential) else [decoder]
    for index, layer in enumerate(layers):
        sliced = _one_input_channel(layer)
        if sliced is not None:
            head = [copy.deepcopy(m) for m in layers[:index]]
            tail = [copy.deepcopy(m) for m in layers[index + 1 :]]
            return nn.Sequential(*head, sliced, *tail), 1
        if not is_channelwise(layer):
            break
    return copy.deepcopy(decoder), channels


def decoder_fan_out(decoder: nn.Module, rep_shape: Sequence[int]) -> int:
    """C: how many prediction elements of one sample depend on one element of the representation.

    Measured for the element at the centre of every dimension (for token maps: of the middle
    token, a patch token), on a copy of the decoder whose weights are all ones and biases
    zero, in float64 and eval mode. With non-negative weights nothing cancels and every ReLU
    passes its (non-negative) input, so the count is the structural fan-out with ReLUs counted as
    active: exact and deterministic, unlike the reference, which estimated it by random
    perturbation for decoders ending in a ReLU. A token-wise ``Linear(dim, dim_below)`` gives
    dim_below; a transposed patch embedding with p x q patches and C channels gives C * p * q.

    Args:
        decoder: the decoder module (left unchanged).
        rep_shape: shape of one representation sample, (C, H, W), (C, D, H, W), (H, W, C) or
            (tokens, dim).
    """
    probe, channels = _fan_out_probe(decoder, rep_shape[0])
    rep_shape = (channels, *rep_shape[1:])
    probe = probe.to(device="cpu", dtype=torch.float64).eval()
    with torch.no_grad():
        for name, parameter in probe.named_parameters():
            parameter.fill_(0.0 if name.endswith("bias") else 1.0)
        for name, buffer in probe.named_buffers():
            if name.endswith("running_mean"):
                buffer.zero_()
            elif name.endswith("running_var"):
                buffer.fill_(1.0)
        impulse = torch.zeros(1, *rep_shape, dtype=torch.float64)
        # The centre of every dimension: spatially away from the borders whatever the layout
        # (channels first or last), and for token maps a patch token, not a leading prefix token
        # that a decoder of the image ignores. With all-ones weights every channel counts alike.
        centre = (0, *(size // 2 for size in rep_shape))
        impulse[centre] = 1.0
        response = probe(impulse) - probe(torch.zeros_like(impulse))
    count = int((response != 0).sum())
    if count == 0:
        raise ConfigError(
            "cannot compute the gradient-scaling constant: the decoder's output does not depend "
            "on its input; set c_sqrt explicitly"
        )
    return count
