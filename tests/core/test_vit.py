"""Vision transformers: pcoders on transformer blocks, token maps [B, tokens, dim] with prefix
tokens, automatic token decoders, exact gradient scaling, and the update rule checked against an
independent computation over several timesteps.

The ViT is timm's VisionTransformer at a tiny size (32x32 images, 8x8 patches, 4 blocks of width
32, a class token and 2 register tokens: 3 prefix + 16 patch tokens), in float64 so that the
comparison can be tight.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import predify
from predify import ConfigError
from predify.layers import TokensToGrid
from predify.parsing import parse_predictor
from testkit import OpaqueDecoder

timm = pytest.importorskip("timm")

DIM, PATCH, IMAGE, DEPTH, PREFIX = 32, 8, 32, 4, 3
GRID = IMAGE // PATCH
HYPERPARAMETERS = predify.Hyperparameters(feedforward=0.6, feedback=0.25, pc=0.05)


def tiny_vit(seed: int = 0) -> torch.nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    return VisionTransformer(
        img_size=IMAGE,
        patch_size=PATCH,
        embed_dim=DIM,
        depth=DEPTH,
        num_heads=2,
        mlp_ratio=2.0,
        num_classes=10,
        reg_tokens=PREFIX - 1,
    ).eval()


def vit_pnet(seed: int = 0, gradient_scaling: bool = True) -> predify.PredictiveNet:
    backbone = tiny_vit(seed).double()
    config = predify.auto_config(
        backbone,
        (3, IMAGE, IMAGE),
        gradient_scaling=gradient_scaling,
        hyperparameters=HYPERPARAMETERS,
    )
    pnet = predify.predify(backbone, config).eval()
    # Decoders start at default init; give the biases values so that they are tested too.
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for pcoder in pnet.pcoders:
            for name, parameter in pcoder.decoder.named_parameters():
                if name.endswith("bias"):
                    parameter.normal_(0, 0.1)
    return pnet


def test_default_modules_and_decoders_of_a_vit() -> None:
    config = predify.auto_config(tiny_vit(), (3, IMAGE, IMAGE))
    # Every few blocks ending at the last: ceil(4 / 4) = 1 apart for 4 blocks.
    assert [p.module for p in config.pcoders] == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    # The first pcoder predicts the image: drop 3 prefix tokens, 4x4 patch grid, transposed patch
    # embedding (kernel = stride = patch size); the others map each token to the block below.
    assert config.pcoders[0].predictor == (
        "Sequential(TokensToGrid(prefix_tokens=3, grid_size=(4, 4)), "
        "ConvTranspose2d(32, 3, kernel_size=(8, 8), stride=(8, 8)))"
    )
    assert [p.predictor for p in config.pcoders[1:]] == ["Linear(32, 32)"] * 3
    toml = config.to_toml()
    assert 'module = "blocks.0"' in toml and "TokensToGrid(prefix_tokens=3" in toml


def test_every_few_blocks_of_a_deeper_vit() -> None:
    backbone = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=16, depth=12,
        embed_dim=16, num_heads=1,
    )  # fmt: skip
    config = predify.auto_config(backbone, (3, 32, 32))
    # ceil(12 / 4) = 3 blocks apart, ending at the last one.
    assert [p.module for p in config.pcoders] == ["blocks.2", "blocks.5", "blocks.8", "blocks.11"]
    # 1 class token + (32 / 16)^2 = 4 patches.
    assert config.pcoders[0].predictor.startswith(
        "Sequential(TokensToGrid(prefix_tokens=1, grid_size=(2, 2))"
    )


def test_gradient_scaling_constant_is_exact_for_token_decoders() -> None:
    pnet = vit_pnet()
    # C = the number of prediction elements that one representation element reaches: a patch
    # token's feature reaches its own 8x8 patch in all 3 image channels; a token-wise Linear(32,
    # 32) reaches the 32 features of the same token below.
    assert pnet.pcoders[0].c_sqrt == pytest.approx(math.sqrt(3 * PATCH * PATCH), rel=1e-12)
    for pcoder in pnet.pcoders[1:]:
        assert pcoder.c_sqrt == pytest.approx(math.sqrt(DIM), rel=1e-12)


# ---------------------------------------------------------------------- independent dynamics
def _image_decoder(weight: Tensor, bias: Tensor, tokens: Tensor) -> Tensor:
    """ConvTranspose2d with kernel = stride = p on the patch grid, written as a product."""
    batch = tokens.shape[0]
    grid = tokens[:, PREFIX:].reshape(batch, GRID, GRID, DIM)  # row-major patches
    # out[b, c, i*p + u, j*p + v] = sum_d grid[b, i, j, d] * weight[d, c, u, v] + bias[c]
    patches = torch.einsum("bijd,dcuv->bciujv", grid, weight)
    return patches.reshape(batch, 3, IMAGE, IMAGE) + bias.view(1, 3, 1, 1)


def _image_decoder_adjoint(weight: Tensor, residual: Tensor) -> Tensor:
    """J^T residual for the image decoder: zero on prefix tokens."""
    batch = residual.shape[0]
    blocks = residual.reshape(batch, 3, GRID, PATCH, GRID, PATCH)
    grid = torch.einsum("bciujv,dcuv->bijd", blocks, weight).reshape(batch, GRID * GRID, DIM)
    return torch.cat([torch.zeros(batch, PREFIX, DIM, dtype=grid.dtype), grid], dim=1)


def independent_dynamics(
    pnet: predify.PredictiveNet, images: Tensor, timesteps: int, scaling: bool
) -> tuple[list[Tensor], list[list[Tensor]], list[list[Tensor]]]:
    """Logits, representations and predictions at t = 0..T, from the paper's equations alone.

    Runs the ViT's stages by hand (patch embedding, position embedding with prefix tokens, the
    blocks, the head) and applies e_n(t) = beta ff_n(t) + lambda d_{n+1}(t-1) + (1 - beta -
    lambda) e_n(t-1) - alpha s_n grad_n(t-1), with grad_n the gradient of MSE(d_n(e_n),
    e_{n-1}) written out in closed form and s_n = numel / sqrt(C_n) (or 1).
    """
    vit = pnet.backbone
    decoders = [pcoder.decoder for pcoder in pnet.pcoders]
    image_weight, image_bias = decoders[0][1].weight, decoders[0][1].bias
    linears = [(d.weight, d.bias) for d in decoders[1:]]
    beta, lam, alpha = HYPERPARAMETERS.feedforward, HYPERPARAMETERS.feedback, HYPERPARAMETERS.pc
    fan_out = [3 * PATCH * PATCH] + [DIM] * (DEPTH - 1)

    def predict(reps: list[Tensor]) -> list[Tensor]:
        preds = [_image_decoder(image_weight, image_bias, reps[0])]
        preds += [reps[n] @ w.T + b for n, (w, b) in enumerate(linears, start=1)]
        return preds

    def error_gradients(reps: list[Tensor], preds: list[Tensor]) -> list[Tensor]:
        grads = []
        for n in range(DEPTH):
            target = images if n == 0 else reps[n - 1]
            residual = preds[n] - target
            if n == 0:
                adjoint = _image_decoder_adjoint(image_weight, residual)
            else:
                adjoint = residual @ linears[n - 1][0]
            mse_gradient = 2.0 / residual.numel() * adjoint
            scale = residual.numel() / math.sqrt(fan_out[n]) if scaling else 1.0
            grads.append(alpha * scale * mse_gradient)
        return grads

    def run(previous: tuple[list[Tensor], list[Tensor], list[Tensor]] | None) -> tuple:
        tokens = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(images))))
        reps = []
        for n, block in enumerate(vit.blocks):
            tokens = block(tokens)
            if previous is not None:
                old_reps, old_preds, old_grads = previous
                if n < DEPTH - 1:
                    tokens = (
                        beta * tokens
                        + lam * old_preds[n + 1]
                        + (1 - beta - lam) * old_reps[n]
                        - old_grads[n]
                    )
                else:  # the top pcoder has no feedback: lambda = 0
                    tokens = beta * tokens + (1 - beta) * old_reps[n] - old_grads[n]
            reps.append(tokens)
        logits = vit.forward_head(vit.norm(tokens))
        preds = predict(reps)
        return logits, reps, preds, error_gradients(reps, preds)

    all_logits, all_reps, all_preds = [], [], []
    state = None
    for _ in range(timesteps + 1):
        logits, reps, preds, grads = run(state)
        all_logits.append(logits)
        all_reps.append(reps)
        all_preds.append(preds)
        state = (reps, preds, grads)
    return all_logits, all_reps, all_preds


@pytest.mark.parametrize("scaling", [True, False])
def test_update_rule_holds_exactly_for_token_maps(scaling: bool) -> None:
    pnet = vit_pnet(gradient_scaling=scaling)
    images = torch.rand(2, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(3)).double()
    timesteps = 4
    with torch.no_grad():
        out = pnet(images, timesteps=timesteps, record=True)
        logits, reps, preds = independent_dynamics(pnet, images, timesteps, scaling)
    assert out.reps is not None and out.preds is not None and out.errors is not None
    assert out.reps[0].shape == (timesteps + 1, 2, PREFIX + GRID * GRID, DIM)
    for t in range(timesteps + 1):
        torch.testing.assert_close(out.logits[t], logits[t], rtol=0, atol=1e-10)
        for n in range(DEPTH):
            torch.testing.assert_close(out.reps[n][t], reps[t][n], rtol=0, atol=1e-10)
            torch.testing.assert_close(out.preds[n][t], preds[t][n], rtol=0, atol=1e-10)
            target = images if n == 0 else reps[t][n - 1]
            expected_error = (preds[t][n] - target).pow(2).mean()
            torch.testing.assert_close(out.errors[t, n], expected_error, rtol=0, atol=1e-10)
    # The dynamics move the prefix tokens too (they get feedback and memory terms).
    assert not torch.allclose(out.reps[1][1, :, :PREFIX], out.reps[1][0, :, :PREFIX])
    assert not torch.allclose(out.logits[timesteps], out.logits[0])


def test_feedback_training_reduces_the_reconstruction_loss() -> None:
    torch.manual_seed(0)
    pnet = predify.predify(tiny_vit(), predify.auto_config(tiny_vit(), (3, IMAGE, IMAGE)))
    images = torch.rand(8, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(5))
    trainer = predify.FeedbackTrainer(pnet, lr=3e-3, weight_decay=0.0)
    backbone_before = {k: v.clone() for k, v in pnet.backbone.state_dict().items()}
    first = trainer.step(images)
    for _ in range(40):
        last = trainer.step(images)
    assert last["total"] < 0.5 * first["total"], (first, last)
    for index in range(DEPTH):
        assert last[f"pcoder{index + 1}"] < first[f"pcoder{index + 1}"]
    for key, value in pnet.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), f"backbone changed: {key}"


def test_tokens_to_grid_layout_and_errors() -> None:
    layer = parse_predictor("TokensToGrid(prefix_tokens=2, grid_size=(2, 3))")
    assert isinstance(layer, TokensToGrid)
    tokens = torch.arange(2 * 8 * 4, dtype=torch.float32).reshape(2, 8, 4)
    grid = layer(tokens)
    assert grid.shape == (2, 4, 2, 3)
    # Patch token k (after the 2 prefix tokens) sits at row k // 3, column k % 3.
    assert torch.equal(grid[1, :, 1, 2], tokens[1, 2 + 5])
    assert torch.equal(grid[1, :, 0, 1], tokens[1, 2 + 1])
    assert torch.equal(grid[0, :, 1, 0], tokens[0, 2 + 3])
    with pytest.raises(ValueError, match=r"expected tokens \[B, 8, D\]"):
        layer(torch.zeros(2, 7, 4))
    with pytest.raises(ConfigError, match="grid_size"):
        parse_predictor("TokensToGrid(prefix_tokens=1, grid_size=(0, 3))")
    with pytest.raises(ConfigError, match="not an allowed layer"):
        parse_predictor("nn.TokensToGrid(1, (2, 2))")


def test_token_decoders_that_cannot_be_automatic_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"49 tokens and the layer below .* 196"):
        predify.auto_predictor((49, 256), (196, 128), "stages.1")
    # 5 tokens with 1 prefix token leave 4 patches, which no square patch of 7x7 gives.
    with pytest.raises(ConfigError, match="cannot lay 5 tokens out as patches"):
        predify.auto_predictor((5, 8), (3, 7, 7), "blocks.0", prefix_tokens=1)
    # The patch size can be inferred from the shapes: 197 = 1 + (224 / 16)^2.
    assert predify.auto_predictor((197, 192), (3, 224, 224)).startswith(
        "Sequential(TokensToGrid(prefix_tokens=1, grid_size=(14, 14))"
    )


def test_a_config_without_predictors_gets_the_same_decoders() -> None:
    # A hand-written config naming only the modules: predify() infers the token layout from the
    # shapes alone (3 prefix tokens + a 4x4 grid of 8x8 patches) and builds the same decoders.
    backbone = tiny_vit()
    written = predify.auto_config(backbone, (3, IMAGE, IMAGE))
    bare = predify.PNetConfig.from_json(
        {
            "input_size": [3, IMAGE, IMAGE],
            "gradient_scaling": True,
            "pcoders": [{"module": f"blocks.{index}"} for index in range(DEPTH)],
        }
    )
    built = predify.predify(backbone, bare)
    reference = predify.predify(tiny_vit(), written)
    for ours, theirs in zip(built.pcoders, reference.pcoders, strict=True):
        assert repr(ours.decoder) == repr(theirs.decoder)
        assert ours.c_sqrt == theirs.c_sqrt


def test_analytic_token_and_channels_last_adjoints_equal_autograd() -> None:
    from predify.decoder_layers import analytic_layers
    from predify.pcoder import error_gradient

    torch.manual_seed(0)
    decoders = [
        (vit_pnet().pcoders[0].decoder, (2, PREFIX + GRID * GRID, DIM), (2, 3, IMAGE, IMAGE)),
        (vit_pnet().pcoders[1].decoder, (2, PREFIX + GRID * GRID, DIM), (2, PREFIX + 16, DIM)),
        (
            parse_predictor(
                "Sequential(Permute(0, 3, 1, 2), Upsample(scale_factor=(2.0, 2.0), "
                "mode='bilinear'), ConvTranspose2d(6, 4, 3, 1, 1), ReLU(), Permute(0, 2, 3, 1))"
            ).double(),
            (2, 5, 5, 6),
            (2, 10, 10, 4),
        ),
    ]
    for decoder, rep_shape, target_shape in decoders:
        assert analytic_layers(decoder) is not None  # the analytic path
        rep = torch.randn(rep_shape, dtype=torch.float64)
        target = torch.randn(target_shape, dtype=torch.float64)
        with torch.no_grad():
            analytic = error_gradient(decoder, rep, target, 0.3)
        generic = error_gradient(OpaqueDecoder(decoder), rep, target, 0.3)
        for ours, reference in zip(analytic, generic, strict=True):
            torch.testing.assert_close(ours, reference, rtol=0, atol=1e-12)
        # Evaluation runs under inference mode, where autograd cannot run: both paths still do.
        with torch.inference_mode():
            for path in (decoder, OpaqueDecoder(decoder)):
                _, _, grad = error_gradient(path, rep, target, 0.3)
                torch.testing.assert_close(grad, generic[2], rtol=0, atol=1e-12)
