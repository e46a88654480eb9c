"""The registry of decoder layer types: the parser's whitelist, the analytic path and the
fan-out probe all read it, and every hand-written adjoint equals autograd's VJP."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from predify.decoder_layers import (
    DECODER_LAYERS,
    analytic_layers,
    decode_with_adjoint,
    is_channelwise,
)
from predify.layers import Permute, TokensToGrid
from predify.parsing import ALLOWED_LAYERS, PREDIFY_LAYERS, parse_predictor

# One instance of every type with an adjoint, and an input it takes (float64 for a tight check).
SAMPLES: dict[str, tuple[nn.Module, tuple[int, ...]]] = {
    "Conv2d": (nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=1), (2, 3, 9, 8)),
    "ConvTranspose2d": (nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1), (2, 4, 5, 6)),
    "Linear": (nn.Linear(6, 5), (2, 7, 6)),
    "Upsample": (nn.Upsample(scale_factor=2.0, mode="bilinear"), (2, 3, 4, 5)),
    "UpsamplingBilinear2d": (nn.UpsamplingBilinear2d(scale_factor=2), (2, 3, 4, 5)),
    "UpsamplingNearest2d": (nn.UpsamplingNearest2d(size=(7, 9)), (2, 3, 4, 5)),
    "Identity": (nn.Identity(), (2, 3, 4, 5)),
    "ReLU": (nn.ReLU(), (2, 3, 4, 5)),
    "TokensToGrid": (TokensToGrid(prefix_tokens=1, grid_size=(2, 3)), (2, 7, 4)),
    "Permute": (Permute(0, 3, 1, 2), (2, 4, 5, 3)),
}


def test_the_parser_whitelist_is_the_registry() -> None:
    assert {name: entry.constructor for name, entry in DECODER_LAYERS.items()} == {
        **ALLOWED_LAYERS,
        **PREDIFY_LAYERS,
    }
    assert set(PREDIFY_LAYERS) == {"Permute", "TokensToGrid"}
    parse_predictor("Sequential(Permute(0, 3, 1, 2), ReLU())")
    for name, entry in DECODER_LAYERS.items():
        assert entry.constructor.__name__ == name


def test_every_adjoint_has_a_sample() -> None:
    with_adjoint = {name for name, entry in DECODER_LAYERS.items() if entry.adjoint is not None}
    assert with_adjoint == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_adjoint_equals_autograd(name: str) -> None:
    layer, shape = SAMPLES[name]
    layer = layer.double()
    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    layers = analytic_layers(nn.Sequential(layer))
    assert layers == [layer]
    output, transpose = decode_with_adjoint(layers, x)
    grad = torch.randn_like(output)
    (expected,) = torch.autograd.grad(layer(x), x, grad)
    torch.testing.assert_close(transpose(grad), expected, rtol=1e-10, atol=1e-12)


def test_instances_the_adjoint_does_not_cover_go_through_autograd() -> None:
    assert analytic_layers(nn.Conv2d(3, 3, 3, padding="same")) is None
    assert analytic_layers(nn.Conv2d(3, 3, 3, padding=1, padding_mode="circular")) is None
    assert analytic_layers(nn.Upsample(scale_factor=2.0, mode="bicubic")) is None
    assert analytic_layers(nn.Sequential(nn.ReLU(), nn.Tanh())) is None


class _CountingReLU(nn.ReLU):
    """A subclass: takes ReLU's adjoint, but the fan-out probe does not assume it channel-wise."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)


def test_channelwise_flag() -> None:
    assert is_channelwise(nn.ReLU()) and is_channelwise(nn.Upsample(scale_factor=2.0))
    assert not is_channelwise(nn.ConvTranspose2d(2, 2, 3))
    assert not is_channelwise(_CountingReLU())
    assert analytic_layers(_CountingReLU()) is not None
