"""3D inputs, which the original implementation could not run (its 5-entry input_size check)."""

from __future__ import annotations

import math

import torch
from torch import nn

import predify


def volume_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
        nn.Conv3d(4, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8, 3),
    )  # fmt: skip


def test_volumes_get_trilinear_decoders_and_run_differentiably() -> None:
    net = volume_net()
    config = predify.auto_config(net, (1, 8, 16, 16), ["2", "4"])
    assert "ConvTranspose3d(4, 1" in (config.pcoders[0].predictor or "")
    assert "trilinear" in (config.pcoders[0].predictor or "")
    pnet = predify.predify(net, predify.PNetConfig.from_toml_string(config.to_toml()))
    # Fan-out of trilinear x2 (4 per axis) followed by a 3x3x3 transposed convolution: 6^3.
    assert math.isclose(pnet.pcoders[0].c_sqrt, math.sqrt(6**3))
    x = torch.rand(2, 1, 8, 16, 16, requires_grad=True)
    out = pnet(x, timesteps=3, record=True)
    assert out.logits.shape == (4, 2, 3)
    assert out.preds is not None and out.preds[0].shape == (4, 2, 1, 8, 16, 16)
    out.logits[-1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with torch.no_grad():
        plain = net(x)
    torch.testing.assert_close(out.logits[0], plain)
