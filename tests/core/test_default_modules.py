"""Default pcoder modules: ``auto_config(model, input_size)`` with ``modules`` omitted, on timm CNN
families (random weights, 64x64 inputs) and torchvision families.

The expected module lists are the feature stages the libraries document: timm's
``model.feature_info`` (timm 1.0; e.g. ResNet ``act1, layer1..layer4``), and for torchvision the
layouts of this project's zoo (PResNet18, the paper's PVGG16: the ReLU before each max-pool,
PEfficientNetB0) and the last layer of each resolution.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import predify
from predify import ConfigError
from predify.fan_out import decoder_fan_out
from predify.layers import Permute
from predify.models import ShallowCNN, default_modules
from predify.stages import isotropic_choice

timm = pytest.importorskip("timm")

SIZE = (3, 64, 64)

# name -> the modules timm lists in model.feature_info (timm 1.0.x)
TIMM_FAMILIES = {
    "resnet10t": ["act1", "layer1", "layer2", "layer3", "layer4"],
    "efficientnet_b0": ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"],
    "convnext_atto": ["stages.0", "stages.1", "stages.2", "stages.3"],
    "regnetx_002": ["stem", "s1", "s2", "s3", "s4"],
    "mobilenetv3_small_050": ["bn1", "blocks.0", "blocks.1", "blocks.3", "blocks.5"],
    "ghostnet_050": ["conv_stem", "blocks.1", "blocks.3", "blocks.5", "blocks.7"],
}


@pytest.mark.parametrize("name", sorted(TIMM_FAMILIES))
def test_timm_cnn_wraps_and_runs_with_default_modules(name: str) -> None:
    torch.manual_seed(0)
    backbone = timm.create_model(name, pretrained=False, num_classes=7).eval()
    config = predify.auto_config(backbone, SIZE)
    assert [p.module for p in config.pcoders] == TIMM_FAMILIES[name]
    # Visible in the saved TOML, which rebuilds the same network.
    toml = config.to_toml()
    for module in TIMM_FAMILIES[name]:
        assert f'module = "{module}"' in toml
    pnet = predify.predify(backbone, predify.PNetConfig.from_toml_string(toml))
    images = torch.rand(2, *SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = pnet(images, timesteps=2, record=True)
        plain = backbone(images)
    assert out.logits.shape == (3, 2, 7)
    torch.testing.assert_close(out.logits[0], plain)  # t = 0 is the plain feed-forward pass
    assert out.errors is not None and torch.isfinite(out.errors).all()
    assert out.preds is not None and out.preds[0].shape == (3, 2, *SIZE)
    # The bottom stage of these models halves or quarters the image.
    assert out.reps is not None and out.reps[0].shape[-1] in (16, 32)
    assert not torch.allclose(out.logits[2], out.logits[0])  # feedback acts


def test_torchvision_layouts() -> None:
    vgg = torchvision.models.vgg11(weights=None)
    # The ReLU before each of VGG11's five max-pools (PVGG16's rule: features 3, 8, 15, 22, 29).
    assert list(default_modules(vgg, SIZE)) == [f"features[{i}]" for i in (1, 4, 9, 14, 19)]
    resnet = torchvision.models.resnet18(weights=None)
    assert list(default_modules(resnet, SIZE)) == [
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
    ]
    efficientnet = torchvision.models.efficientnet_b0(weights=None)
    assert list(default_modules(efficientnet, SIZE)) == [f"features[{i}]" for i in range(8)]
    convnext = torchvision.models.convnext_tiny(weights=None)
    assert list(default_modules(convnext, SIZE)) == [f"features[{i}]" for i in (1, 3, 5, 7)]
    regnet = torchvision.models.regnet_x_400mf(weights=None)
    assert list(default_modules(regnet, SIZE)) == ["stem"] + [
        f"trunk_output.block{i}" for i in (1, 2, 3, 4)
    ]


def test_last_module_of_each_resolution_for_other_models() -> None:
    # MobileNetV2 at 64x64: features 0-1 at 32, 2-3 at 16, 4-6 at 8, 7-13 at 4, 14-18 at 2.
    mobilenet = torchvision.models.mobilenet_v2(weights=None)
    assert list(default_modules(mobilenet, SIZE)) == [f"features[{i}]" for i in (1, 3, 6, 13, 18)]
    # ShallowCNN: conv-ReLU-pool, conv-ReLU-pool, conv-ReLU: the ReLUs at 28, 14 and 7 pixels.
    expected = ["features[1]", "features[4]", "features[7]"]
    assert list(default_modules(ShallowCNN(1), (1, 28, 28))) == expected
    config = predify.auto_config(mobilenet.eval(), SIZE)
    pnet = predify.predify(mobilenet, config)
    with torch.no_grad():
        assert pnet(torch.rand(1, *SIZE), timesteps=1).logits.shape == (2, 1, 1000)


def test_isotropic_choice() -> None:
    assert isotropic_choice(12) == [2, 5, 8, 11]
    assert isotropic_choice(32) == [7, 15, 23, 31]
    assert isotropic_choice(6) == [1, 3, 5]
    assert isotropic_choice(1) == [0]


def test_nhwc_feature_maps() -> None:
    # timm's MambaOut (like Swin) has [B, H, W, C] stages (output_fmt "NHWC").
    torch.manual_seed(0)
    backbone = timm.create_model("mambaout_femto", pretrained=False, num_classes=5).eval()
    config = predify.auto_config(backbone, SIZE)
    assert [p.module for p in config.pcoders] == ["stages.0", "stages.1", "stages.2", "stages.3"]
    assert config.pcoders[0].predictor == (
        "Sequential(Permute(0, 3, 1, 2), Upsample(scale_factor=(4.0, 4.0), mode='bilinear'), "
        "ConvTranspose2d(48, 3, kernel_size=3, stride=1, padding=1))"
    )
    assert config.pcoders[1].predictor.endswith("Permute(0, 2, 3, 1))")
    pnet = predify.predify(backbone, config)
    images = torch.rand(2, *SIZE)
    with torch.no_grad():
        out = pnet(images, timesteps=2, record=True)
        torch.testing.assert_close(out.logits[0], backbone(images))
    assert out.reps is not None and out.preds is not None
    assert out.reps[0].shape == (3, 2, 16, 16, 48)  # channels last
    assert out.preds[1].shape == out.reps[0].shape
    assert out.preds[0].shape == (3, 2, *SIZE)
    # C is the same as for the channels-first decoder on the channels-first map.
    for index, (pcoder, shape) in enumerate(zip(pnet.pcoders, out.reps, strict=True)):
        height, width, channels = shape.shape[2:]
        layers = [m for m in pcoder.decoder if not isinstance(m, Permute)]
        expected = decoder_fan_out(torch.nn.Sequential(*layers), (channels, height, width))
        assert pcoder.c_sqrt**2 == pytest.approx(expected), index


def test_default_modules_takes_a_module_or_a_spec_name() -> None:
    resnet = torchvision.models.resnet50(weights=None)
    # The zoo's PResNet18 layout, by name or found on the module: the same answer.
    assert default_modules(resnet, SIZE) == default_modules("torchvision:resnet50")
    with pytest.raises(ConfigError, match=r"^input_size: needed .* ResNet"):
        default_modules(resnet)


def test_what_cannot_be_automatic_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="fails on an input of size"):
        predify.auto_config(timm.create_model("resnet10t", pretrained=False), (1, 64, 64))
    with pytest.raises(ConfigError, match="no feature stages found"):
        default_modules(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)), (4, 1, 1))
