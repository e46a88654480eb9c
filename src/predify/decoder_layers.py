"""The layer types a decoder may be built from: one registry entry per type.

An entry ([`DecoderLayer`][predify.decoder_layers.DecoderLayer]) says everything predify needs to
know about a layer type:

- its name in predictor strings, which is the parser's whitelist
  ([`predify.parsing`][predify.parsing]): ``torch.nn`` layers are written ``X``, ``nn.X`` or
  ``torch.nn.X``, predify's own ([`predify.layers`][predify.layers]) by their bare name;
- its adjoint, the transposed Jacobian applied by hand, when it has one: a decoder made only of
  such layers computes its error gradient without autograd
  ([`error_gradient()`][predify.pcoder.error_gradient]);
- whether it acts on each channel alone, which the fan-out probe
  ([`decoder_fan_out()`][predify.fan_out.decoder_fan_out]) reads.

Adding a layer type is adding one entry to ``_ENTRIES``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.grad import conv2d_input

from .layers import Permute, TokensToGrid

__all__ = [
    "DECODER_LAYERS",
    "DecoderLayer",
    "analytic_layers",
    "decode_with_adjoint",
    "is_channelwise",
    "takes_rank",
]

#: ``adjoint(layer, grad, input_shape, kept)``: J^T grad for one layer, given the shape of its
#: input and what ``keep`` took from its output in the forward pass.
Adjoint = Callable[[Any, Tensor, torch.Size, Tensor | None], Tensor]


@dataclass(frozen=True)
class DecoderLayer:
    """One layer type that predictor strings may use.

    Attributes:
        name: the constructor's name in predictor strings.
        constructor: the class the parser calls with the string's literal arguments.
        torch_nn: a ``torch.nn`` layer (``X``, ``nn.X``, ``torch.nn.X``); False for predify's
            own layers, written by their bare name only.
        adjoint: applies the layer's transposed Jacobian by hand; None: decoders with this
            layer go through autograd.
        supports: whether the adjoint holds for this instance (a Conv2d with ``padding="same"``
            or circular padding has none); None: always.
        keep: what the adjoint needs from the layer's output (a ReLU: where it is positive).
        channelwise: acts on each channel alone, so an impulse in channel 0 stays there.
        reads_tokens: a decoder starting with it also takes token maps [B, N, D] or NHWC maps
            (its adjoint handles them); the analytic path needs [B, C, H, W] otherwise.
    """

    name: str
    constructor: type[nn.Module]
    torch_nn: bool = True
    adjoint: Adjoint | None = None
    supports: Callable[[Any], bool] | None = None
    keep: Callable[[Tensor], Tensor] | None = None
    channelwise: bool = False
    reads_tokens: bool = False


# ---------------------------------------------------------------------- adjoints
def _identity_adjoint(layer: nn.Module, grad: Tensor, shape: torch.Size, kept: object) -> Tensor:
    return grad


def _relu_adjoint(layer: nn.ReLU, grad: Tensor, shape: torch.Size, kept: Tensor | None) -> Tensor:
    assert kept is not None
    return grad * kept


def _positive(output: Tensor) -> Tensor:
    return output > 0


def _linear_adjoint(layer: nn.Linear, grad: Tensor, shape: torch.Size, kept: object) -> Tensor:
    return grad @ layer.weight


def _conv_transpose2d_adjoint(
    layer: nn.ConvTranspose2d, grad: Tensor, shape: torch.Size, kept: object
) -> Tensor:
    return F.conv2d(
        grad,
        layer.weight,
        None,
        layer.stride,
        layer.padding,  # type: ignore[arg-type]
        layer.dilation,
        layer.groups,
    )


def _conv2d_adjoint(layer: nn.Conv2d, grad: Tensor, shape: torch.Size, kept: object) -> Tensor:
    return conv2d_input(
        list(shape),
        layer.weight,
        grad,
        stride=layer.stride,
        padding=layer.padding,  # type: ignore[arg-type]
        dilation=layer.dilation,
        groups=layer.groups,
    )


def _tokens_to_grid_adjoint(
    layer: TokensToGrid, grad: Tensor, shape: torch.Size, kept: object
) -> Tensor:
    # [B, D, H, W] -> the patch tokens [B, H*W, D]; the prefix tokens get zero.
    patches = grad.flatten(2).transpose(1, 2)
    return F.pad(patches, (0, 0, layer.prefix_tokens, 0))


def _permute_adjoint(layer: Permute, grad: Tensor, shape: torch.Size, kept: object) -> Tensor:
    return grad.permute(*sorted(range(len(layer.dims)), key=layer.dims.__getitem__))


def _upsample_adjoint(
    layer: nn.Upsample, grad: Tensor, input_shape: torch.Size, kept: object = None
) -> Tensor:
    output_size = list(grad.shape[-2:])
    input_size = list(input_shape)
    scales: Sequence[float | None] = (None, None)
    if layer.scale_factor is not None:
        factor = layer.scale_factor
        scales = tuple(factor) if isinstance(factor, tuple) else (factor, factor)
    if torch.compiler.is_compiling():
        # Under torch.compile with a dynamic batch size, the aten backward ops below receive a
        # size list mixing ints and symbols, which their meta functions reject (torch 2.14).
        # The adjoint as two small matrices (one per spatial axis) compiles at any batch size.
        rows = _interpolation_matrix(
            int(output_size[0]), int(input_size[-2]), layer, scales[0], grad
        )
        columns = _interpolation_matrix(
            int(output_size[1]), int(input_size[-1]), layer, scales[1], grad
        )
        return torch.einsum("oh,bcow,wv->bchv", rows, grad, columns)
    if layer.mode == "bilinear":
        return torch.ops.aten.upsample_bilinear2d_backward(
            grad, output_size, input_size, bool(layer.align_corners), scales[0], scales[1]
        )
    return torch.ops.aten.upsample_nearest2d_backward(
        grad, output_size, input_size, scales[0], scales[1]
    )


def _interpolation_matrix(
    output_size: int, input_size: int, layer: nn.Upsample, scale: float | None, like: Tensor
) -> Tensor:
    """M [output_size, input_size] with upsample(x) = M x along one axis, for ``layer``'s mode;
    the source-index arithmetic is aten's (``area_pixel_compute_source_index``, ``nearest_idx``)."""
    # aten computes source positions in float, or double for double tensors.
    exact = torch.float64 if like.dtype == torch.float64 else torch.float32
    destination = torch.arange(output_size, device=like.device, dtype=exact)
    matrix = torch.zeros(output_size, input_size, device=like.device, dtype=exact)
    rows = torch.arange(output_size, device=like.device)
    if layer.mode == "nearest":
        ratio = 1.0 / scale if scale else input_size / output_size
        source = torch.floor(destination * ratio).long().clamp(max=input_size - 1)
        matrix[rows, source] = 1.0
        return matrix.to(like.dtype)
    if layer.align_corners:
        ratio = (input_size - 1) / (output_size - 1) if output_size > 1 else 0.0
        position = destination * ratio
    else:
        ratio = 1.0 / scale if scale else input_size / output_size
        position = ((destination + 0.5) * ratio - 0.5).clamp(min=0.0)
    lower = position.long().clamp(max=input_size - 1)
    upper = (lower + 1).clamp(max=input_size - 1)
    weight_upper = position - lower
    matrix.index_put_((rows, lower), 1.0 - weight_upper, accumulate=True)
    matrix.index_put_((rows, upper), weight_upper, accumulate=True)
    return matrix.to(like.dtype)


# ---------------------------------------------------------------------- when an adjoint holds
def _zero_padded(layer: nn.ConvTranspose2d) -> bool:
    return layer.padding_mode == "zeros"


def _zero_padded_explicitly(layer: nn.Conv2d) -> bool:
    # padding="same"/"valid" is a string: the adjoint needs the explicit amounts.
    return layer.padding_mode == "zeros" and isinstance(layer.padding, tuple)


def _plain_upsampling(layer: nn.Upsample) -> bool:
    return layer.mode in ("nearest", "bilinear") and not layer.recompute_scale_factor


def _upsampling(name: str, constructor: type[nn.Upsample]) -> DecoderLayer:
    return DecoderLayer(
        name, constructor, adjoint=_upsample_adjoint, supports=_plain_upsampling, channelwise=True
    )


_ENTRIES: tuple[DecoderLayer, ...] = (
    # containers: nn.Sequential is taken apart, never applied as one layer
    DecoderLayer("Sequential", nn.Sequential),
    # convolutions and linear maps
    DecoderLayer("Conv1d", nn.Conv1d),
    DecoderLayer("Conv2d", nn.Conv2d, adjoint=_conv2d_adjoint, supports=_zero_padded_explicitly),
    DecoderLayer("Conv3d", nn.Conv3d),
    DecoderLayer("ConvTranspose1d", nn.ConvTranspose1d),
    DecoderLayer(
        "ConvTranspose2d",
        nn.ConvTranspose2d,
        adjoint=_conv_transpose2d_adjoint,
        supports=_zero_padded,
    ),
    DecoderLayer("ConvTranspose3d", nn.ConvTranspose3d),
    DecoderLayer("Linear", nn.Linear, adjoint=_linear_adjoint, reads_tokens=True),
    DecoderLayer("Bilinear", nn.Bilinear),
    # resampling and reshaping
    _upsampling("Upsample", nn.Upsample),
    _upsampling("UpsamplingBilinear2d", nn.UpsamplingBilinear2d),
    _upsampling("UpsamplingNearest2d", nn.UpsamplingNearest2d),
    DecoderLayer("PixelShuffle", nn.PixelShuffle),
    DecoderLayer("PixelUnshuffle", nn.PixelUnshuffle),
    DecoderLayer("Flatten", nn.Flatten),
    DecoderLayer("Unflatten", nn.Unflatten),
    DecoderLayer("Identity", nn.Identity, adjoint=_identity_adjoint, channelwise=True),
    DecoderLayer("ZeroPad2d", nn.ZeroPad2d),
    DecoderLayer("ReflectionPad2d", nn.ReflectionPad2d),
    DecoderLayer("ReplicationPad2d", nn.ReplicationPad2d),
    DecoderLayer("ConstantPad2d", nn.ConstantPad2d),
    DecoderLayer("MaxPool2d", nn.MaxPool2d),
    DecoderLayer("AvgPool2d", nn.AvgPool2d),
    DecoderLayer("AdaptiveAvgPool2d", nn.AdaptiveAvgPool2d),
    DecoderLayer("AdaptiveMaxPool2d", nn.AdaptiveMaxPool2d),
    # activations
    DecoderLayer("ReLU", nn.ReLU, adjoint=_relu_adjoint, keep=_positive, channelwise=True),
    DecoderLayer("ReLU6", nn.ReLU6),
    DecoderLayer("LeakyReLU", nn.LeakyReLU),
    DecoderLayer("PReLU", nn.PReLU),
    DecoderLayer("ELU", nn.ELU),
    DecoderLayer("SELU", nn.SELU),
    DecoderLayer("CELU", nn.CELU),
    DecoderLayer("GELU", nn.GELU),
    DecoderLayer("SiLU", nn.SiLU),
    DecoderLayer("Mish", nn.Mish),
    DecoderLayer("Sigmoid", nn.Sigmoid),
    DecoderLayer("Tanh", nn.Tanh),
    DecoderLayer("Hardtanh", nn.Hardtanh),
    DecoderLayer("Hardswish", nn.Hardswish),
    DecoderLayer("Hardsigmoid", nn.Hardsigmoid),
    DecoderLayer("Softplus", nn.Softplus),
    # normalisation and regularisation
    DecoderLayer("BatchNorm1d", nn.BatchNorm1d),
    DecoderLayer("BatchNorm2d", nn.BatchNorm2d),
    DecoderLayer("BatchNorm3d", nn.BatchNorm3d),
    DecoderLayer("GroupNorm", nn.GroupNorm),
    DecoderLayer("LayerNorm", nn.LayerNorm),
    DecoderLayer("InstanceNorm1d", nn.InstanceNorm1d),
    DecoderLayer("InstanceNorm2d", nn.InstanceNorm2d),
    DecoderLayer("InstanceNorm3d", nn.InstanceNorm3d),
    DecoderLayer("LocalResponseNorm", nn.LocalResponseNorm),
    DecoderLayer("Dropout", nn.Dropout),
    DecoderLayer("Dropout2d", nn.Dropout2d),
    DecoderLayer("Dropout3d", nn.Dropout3d),
    # predify's own (predify.layers), for token maps and NHWC maps
    DecoderLayer(
        "TokensToGrid",
        TokensToGrid,
        torch_nn=False,
        adjoint=_tokens_to_grid_adjoint,
        reads_tokens=True,
    ),
    DecoderLayer("Permute", Permute, torch_nn=False, adjoint=_permute_adjoint, reads_tokens=True),
)

#: Every layer type a decoder may use, by its name in predictor strings.
DECODER_LAYERS: dict[str, DecoderLayer] = {entry.name: entry for entry in _ENTRIES}
_BY_TYPE: dict[type[nn.Module], DecoderLayer] = {entry.constructor: entry for entry in _ENTRIES}


def _entry(layer: nn.Module) -> DecoderLayer | None:
    return _BY_TYPE.get(type(layer))


def is_channelwise(layer: nn.Module) -> bool:
    """Whether ``layer`` is of a registered type that acts on each channel alone."""
    entry = _entry(layer)
    return entry is not None and entry.channelwise


def _analytic_entry(layer: nn.Module) -> DecoderLayer | None:
    # Subclasses count as their registered base (a user's ReLU subclass still has ReLU's adjoint).
    for cls in type(layer).__mro__:
        entry = _BY_TYPE.get(cls)
        if entry is not None:
            if entry.adjoint is None or (entry.supports is not None and not entry.supports(layer)):
                return None
            return entry
    return None


def analytic_layers(decoder: nn.Module) -> list[nn.Module] | None:
    """The layers of a decoder whose every layer has an adjoint, flattened; else None."""
    if isinstance(decoder, nn.Sequential):
        layers: list[nn.Module] = []
        for child in decoder:
            inner = analytic_layers(child)
            if inner is None:
                return None
            layers.extend(inner)
        return layers
    return [decoder] if _analytic_entry(decoder) is not None else None


def takes_rank(layers: Sequence[nn.Module], rank: int) -> bool:
    """Whether the analytic path applies to a representation of ``rank`` dimensions (batch
    included): [B, C, H, W] always, token maps and NHWC maps when the first layer reads them."""
    if rank == 4:
        return True
    if not layers:
        return False
    entry = _analytic_entry(layers[0])
    return entry is not None and entry.reads_tokens


def decode_with_adjoint(
    layers: Sequence[nn.Module], rep: Tensor
) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Run ``layers`` (from [`analytic_layers()`][predify.decoder_layers.analytic_layers]) on
    ``rep``; returns the output and the function applying the decoders' transposed Jacobian.

    Built from differentiable ops, so it also serves when gradients flow through the dynamics.
    """
    entries: list[DecoderLayer] = []
    shapes: list[torch.Size] = []
    kept: list[Tensor | None] = []
    activation = rep
    for layer in layers:
        entry = _analytic_entry(layer)
        assert entry is not None and entry.adjoint is not None, type(layer).__name__
        entries.append(entry)
        shapes.append(activation.shape)
        activation = layer(activation)
        kept.append(entry.keep(activation) if entry.keep is not None else None)

    def transpose(grad: Tensor) -> Tensor:
        for layer, entry, shape, saved in zip(
            reversed(layers), reversed(entries), reversed(shapes), reversed(kept), strict=True
        ):
            assert entry.adjoint is not None
            grad = entry.adjoint(layer, grad, shape, saved)
        return grad

    return activation, transpose
