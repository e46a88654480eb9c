"""3D inputs, which the original implementation could not run (its 5-entry input_size check)."""

from __future__ import annotations

import dataclasses
import math

import pytest
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


# The predictive-coding update, written here from the paper (Choksi et al. 2021, eq. 2; the
# semantics pinned in tests/data/golden/README.md) without the package's code:
#   e_n(t) = beta ff_n(t) + lambda d_{n+1}(t-1) + (1 - beta - lambda) e_n(t-1) - alpha s g_n(t-1)
# with g_n the gradient of MSE(d_n(e_n), e_{n-1}) w.r.t. e_n and s = numel(d_n) / sqrt(C_n) under
# gradient scaling, else 1. The top pcoder has no lambda term.
VOLUME_VALUES = [
    predify.Hyperparameters(feedforward=0.5, feedback=0.3, pc=0.2),
    predify.Hyperparameters(feedforward=0.6, feedback=0.0, pc=0.3),
]
# Fan-outs C_n of the automatic decoders (prediction elements one rep element reaches): trilinear
# x2 then a 3x3x3 transposed convolution to 1 channel, 6^3; a 3x3x3 one to 4 channels, 3^3 * 4.
VOLUME_C_SQRT = [math.sqrt(6**3), math.sqrt(3**3 * 4)]


def reference_volume_dynamics(
    net: nn.Module, decoders: list[nn.Module], x: torch.Tensor, timesteps: int, scaled: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(logits [T+1, B, 3], [e_1, e_2] each [T+1, B, C, D, H, W]) of the update rule above on
    ``volume_net``, pcoders after its modules 2 and 4."""
    below = [lambda v: net[2](net[1](net[0](v))), lambda v: net[4](net[3](v))]
    head = lambda v: net[7](net[6](net[5](v)))  # noqa: E731

    def error_gradients(reps: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        targets = [x, reps[0]]
        predictions, gradients = [], []
        for n, decoder in enumerate(decoders):
            rep = reps[n].detach().requires_grad_()
            with torch.enable_grad():
                prediction = decoder(rep)
                loss = (prediction - targets[n].detach()).pow(2).mean()
                (gradient,) = torch.autograd.grad(loss, rep)
            scale = prediction.numel() / VOLUME_C_SQRT[n] if scaled else 1.0
            predictions.append(prediction.detach())
            gradients.append(VOLUME_VALUES[n].pc * scale * gradient)
        return predictions, gradients

    reps = [below[0](x)]
    reps.append(below[1](reps[0]))
    logits, history = [head(reps[1])], [[reps[0]], [reps[1]]]
    predictions, gradients = error_gradients(reps)
    for _ in range(timesteps):
        new: list[torch.Tensor] = []
        for n in range(2):
            feedforward = below[n](x if n == 0 else new[0])
            beta, lam = VOLUME_VALUES[n].feedforward, VOLUME_VALUES[n].feedback
            top_down = predictions[n + 1] if n + 1 < len(decoders) else 0.0
            new.append(
                beta * feedforward + lam * top_down + (1 - beta - lam) * reps[n] - gradients[n]
            )
        reps = new
        logits.append(head(reps[1]))
        for n in range(2):
            history[n].append(reps[n])
        predictions, gradients = error_gradients(reps)
    return torch.stack(logits), [torch.stack(h) for h in history]


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
@pytest.mark.parametrize("scaled", [True, False], ids=["scaled", "unscaled"])
def test_volume_dynamics_follow_the_update_rule_over_several_timesteps(
    grad: bool, scaled: bool
) -> None:
    net = volume_net()
    config = predify.auto_config(net, (1, 8, 16, 16), ["2", "4"])
    config = predify.PNetConfig.from_toml_string(config.to_toml())
    config = dataclasses.replace(config, gradient_scaling=scaled)
    torch.manual_seed(1)
    pnet = predify.predify(net, config)
    pnet.set_hyperparameters(VOLUME_VALUES)
    assert [p.gradient_scaling for p in pnet.pcoders] == [scaled, scaled]
    if scaled:
        assert [p.c_sqrt for p in pnet.pcoders] == pytest.approx(VOLUME_C_SQRT)
    x = torch.rand(2, 1, 8, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.set_grad_enabled(grad):
        out = pnet(x, timesteps=4, record=True)
    with torch.no_grad():
        logits, reps = reference_volume_dynamics(
            net, [p.decoder for p in pnet.pcoders], x, 4, scaled
        )
    assert out.reps is not None
    # The feedback moved the dynamics: later timesteps differ from the feed-forward pass.
    assert (logits[4] - logits[0]).abs().max() > 1e-3
    assert (reps[0][4] - reps[0][0]).abs().max() > 1e-2
    torch.testing.assert_close(out.logits.detach(), logits, rtol=1e-5, atol=1e-5)
    for actual, expected in zip(out.reps, reps, strict=True):
        torch.testing.assert_close(actual.detach(), expected, rtol=1e-5, atol=1e-5)
