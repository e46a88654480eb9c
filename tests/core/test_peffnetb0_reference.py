"""PEfficientNetB0 on timm against the paper's network, computed here from its equations.

The reference below is written from the paper (Choksi et al. 2021, eq. 1-3) and the module
layout of its network class (predify2021/model_factory/peffficientnetb0_shared.py at e968414):
pcoders after the stem activation (timm's ``act1`` then, the ``BatchNormAct2d`` at ``bn1`` now)
and after each of ``blocks[0..6]``; decoders ``Sequential(Upsample(scale_factor=2, bilinear),
ConvTranspose2d(c_in, c_out, 3, 1, 1))`` where the map doubles, ``Sequential(ConvTranspose2d(...))``
where it does not. At t = 0 every e_n is the feed-forward activation; at t >= 1, bottom-up,

    e_n(t) = b_n ff_n(t) + l_n d_{n+1}(t-1) + (1 - b_n - l_n) e_n(t-1) - a_n s_n g_n(t-1)

(the top pcoder: b ff + (1 - b) e - a s g), ff_n(t) computed from e_{n-1}(t), g_n the gradient
of MSE(d_n(e_n), e_{n-1}) (the image for n = 1) with respect to e_n, taken here with autograd,
s_n = 1, or numel(d_n) / sqrt(C_n) with gradient scaling (the ``PCoderN`` of the original
TOML). Nothing here comes from predify's own implementation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import predify
from paper_layouts import PEFF_DECODERS, paper_peff_decoder
from predify import Hyperparameters, PNetConfig
from predify.models import create_model

timm = pytest.importorskip("timm")

ORIGINAL = Path(__file__).resolve().parents[1] / "data" / "original" / "predify2021"

#: Distinct values per pcoder, so that a mix-up of pcoders shows.
HYPERPARAMETERS = [
    Hyperparameters(0.5 + 0.04 * n, 0.3 - 0.03 * n, 0.01 + 0.005 * n) for n in range(8)
]


def timm_b0() -> nn.Module:
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_b0", pretrained=False)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model.double().eval()


def stages(model: nn.Module) -> list[nn.Module]:
    """The eight modules whose outputs the pcoders update, in the order the network runs them."""
    stem = nn.Sequential(model.conv_stem, model.bn1)
    return [stem, *[model.blocks[i] for i in range(7)]]


def head(model: nn.Module, x: Tensor) -> Tensor:
    return model.classifier(model.global_pool(model.bn2(model.conv_head(x))))


def reference_dynamics(
    model: nn.Module,
    decoders: list[nn.Module],
    values: list[Hyperparameters],
    c_sqrt: list[float] | None,
    image: Tensor,
    timesteps: int,
) -> tuple[list[Tensor], list[list[Tensor]]]:
    """Logits per t, and per t the eight representations, from the equations above."""
    blocks = stages(model)

    def predictions_and_gradients(reps: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        preds, grads = [], []
        for n, decoder in enumerate(decoders):
            target = image if n == 0 else reps[n - 1]
            rep = reps[n].detach().requires_grad_()
            with torch.enable_grad():
                prediction = decoder(rep)
                error = F.mse_loss(prediction, target)
                (gradient,) = torch.autograd.grad(error, rep)
            scale = prediction.numel() / c_sqrt[n] if c_sqrt is not None else 1.0
            preds.append(prediction.detach())
            grads.append(scale * gradient)
        return preds, grads

    with torch.no_grad():
        h, reps = image, []
        for block in blocks:
            h = block(h)
            reps.append(h)
        all_logits, all_reps = [head(model, h)], [list(reps)]
        preds, grads = predictions_and_gradients(reps)
        for _ in range(timesteps):
            h = image
            for n, block in enumerate(blocks):
                ff = block(h)
                b, lam, a = values[n].feedforward, values[n].feedback, values[n].pc
                if n < len(blocks) - 1:
                    e = b * ff + lam * preds[n + 1] + (1 - b - lam) * reps[n] - a * grads[n]
                else:
                    e = b * ff + (1 - b) * reps[n] - a * grads[n]
                reps[n] = e
                h = e
            all_logits.append(head(model, h))
            all_reps.append(list(reps))
            preds, grads = predictions_and_gradients(reps)
    return all_logits, all_reps


@pytest.mark.parametrize(
    ("source", "gradient_scaling"),
    [("zoo", False), ("original-toml", False), ("original-toml", True)],
    ids=["zoo", "original-toml", "original-toml-pcodern"],
)
def test_peffnetb0_on_timm_matches_the_papers_equations(
    source: str, gradient_scaling: bool
) -> None:
    backbone = timm_b0()
    image = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    # The reference network: timm's forward is the stages then the head.
    with torch.no_grad():
        h = image
        for block in stages(backbone):
            h = block(h)
        torch.testing.assert_close(head(backbone, h), backbone(image), rtol=0, atol=1e-12)

    c_sqrt = [3.0 + n for n in range(8)] if gradient_scaling else None
    values = [*HYPERPARAMETERS[:-1], replace(HYPERPARAMETERS[-1], feedback=0.0)]
    if source == "zoo":
        pnet = create_model("peffnetb0", image_size=64).double()
        pnet.backbone.load_state_dict(backbone.state_dict())
        backbone = pnet.backbone.eval()
        pnet.set_hyperparameters(values)
    else:
        config = PNetConfig.from_toml(ORIGINAL / "config_PEfficientNetB0.toml")
        config = replace(
            config,
            input_size=(3, 64, 64),
            gradient_scaling=gradient_scaling,
            pcoders=tuple(
                replace(p, hyperparameters=values[n], c_sqrt=c_sqrt[n] if c_sqrt else None)
                for n, p in enumerate(config.pcoders)
            ),
        )
        with pytest.warns(predify.ConfigWarning, match="'act1'.*'bn1'"):
            pnet = predify.predify(backbone, config)
    assert pnet.updated_modules[0] is backbone.bn1

    torch.manual_seed(1)
    decoders = [paper_peff_decoder(*layout).double() for layout in PEFF_DECODERS]
    for pcoder, decoder in zip(pnet.pcoders, decoders, strict=True):
        pcoder.decoder.load_state_dict(decoder.state_dict())  # strict: the same layout
    assert pnet.hyperparameter_values() == values

    timesteps = 3
    logits, reps = reference_dynamics(backbone, decoders, values, c_sqrt, image, timesteps)
    pnet.eval()
    with torch.no_grad():
        out = pnet(image, timesteps=timesteps, record=True)
    assert out.reps is not None
    for t in range(timesteps + 1):
        torch.testing.assert_close(out.logits[t], logits[t], rtol=0, atol=1e-6, msg=f"t={t}")
        for n in range(8):
            torch.testing.assert_close(
                out.reps[n][t], reps[t][n], rtol=0, atol=1e-6, msg=f"pcoder {n + 1}, t={t}"
            )
    # The dynamics moved the representations: the comparison is not of t = 0 alone.
    assert (out.logits[timesteps] - out.logits[0]).abs().max() > 1e-3
