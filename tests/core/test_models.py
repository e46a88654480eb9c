"""The model zoo: registry, the paper's configurations, and that every model runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision

import predify
from predify import ConfigError, Hyperparameters
from predify.checkpoint import feedback_state_dict, save_feedback
from predify.models import (
    PEFFNETB0_MODULES,
    PRESNET18_MODULES,
    PVGG16_MODULES,
    PVGG16_PREDICTORS,
    ShallowCNN,
    SmallCNN,
    create_model,
    default_modules,
    get_model_entry,
    list_models,
    pshallow,
    psmallcnn,
)


def test_registry_lists_the_papers_networks() -> None:
    assert list_models() == ["peffnetb0", "presnet18", "pshallow", "psmallcnn", "pvgg16"]
    with pytest.raises(ConfigError, match="did you mean 'presnet18'"):
        create_model("presnet19")


@pytest.mark.parametrize(
    ("name", "modules", "image_size", "classes"),
    [
        ("presnet18", PRESNET18_MODULES, 64, 1000),
        ("peffnetb0", PEFFNETB0_MODULES, 64, 1000),
        ("pvgg16", PVGG16_MODULES, 32, 1000),
        ("pshallow", ("features[2]", "features[5]", "features[7]"), 32, 10),
        ("psmallcnn", ("features[2]", "features[5]", "features[7]"), 32, 10),
    ],
)
def test_zoo_models_build_and_run(
    name: str, modules: tuple[str, ...], image_size: int, classes: int
) -> None:
    pnet = create_model(name, image_size=image_size, timesteps=2)
    assert [pcoder.module_path for pcoder in pnet.pcoders] == list(modules)
    values = pnet.hyperparameter_values()
    assert values[:-1] == [Hyperparameters(0.8, 0.1, 0.01)] * (len(modules) - 1)
    assert values[-1] == Hyperparameters(0.8, 0.0, 0.01)
    pnet.eval()
    with torch.no_grad():
        out = pnet(torch.rand(1, 3, image_size, image_size), record=True)
    assert out.logits.shape == (3, 1, classes)
    assert out.errors is not None and torch.isfinite(out.errors).all()


@pytest.mark.parametrize("image_size", [28, 32])
def test_small_cnn_sizes_its_classifier_from_the_image_size(image_size: int) -> None:
    backbone = SmallCNN(in_channels=1, num_classes=7, image_size=image_size)
    linear = backbone.classifier[1]
    assert isinstance(linear, torch.nn.Linear)
    assert linear.in_features == 32 * (image_size // 4) ** 2  # flattened, not pooled
    pnet = psmallcnn(backbone, in_channels=1, image_size=image_size, timesteps=1).eval()
    with torch.no_grad():
        assert pnet(torch.rand(2, 1, image_size, image_size)).logits.shape == (2, 2, 7)


def test_small_cnn_refuses_bad_sizes_and_weights() -> None:
    with pytest.raises(ConfigError, match="image_size must be a multiple of 4, got 30"):
        SmallCNN(image_size=30)
    with pytest.raises(ConfigError, match="no published weights"):
        psmallcnn(weights="DEFAULT")


def test_pvgg16_has_the_papers_decoders() -> None:
    pnet = create_model("pvgg16", image_size=32)
    assert not pnet.config.gradient_scaling
    for pcoder, predictor in zip(pnet.pcoders, PVGG16_PREDICTORS, strict=True):
        assert repr(pcoder.decoder) == repr(predify.parsing.parse_predictor(predictor))


def test_feedback_weights_load_through_the_builder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    backbone = ShallowCNN(in_channels=1)
    trained = pshallow(backbone, in_channels=1, image_size=28)
    path = save_feedback(trained, tmp_path / "feedback.pt")
    torch.manual_seed(1)
    loaded = pshallow(backbone, feedback_weights=path, image_size=28)
    for key, value in feedback_state_dict(trained).items():
        assert torch.equal(value, feedback_state_dict(loaded)[key]), key


def test_shallow_cnn_takes_mnist_and_cifar_sizes() -> None:
    for channels, size in ((1, 28), (3, 32)):
        pnet = pshallow(in_channels=channels, image_size=size)
        assert pnet.input_size == (channels, size, size)
        with torch.no_grad():
            assert pnet(torch.rand(2, channels, size, size), timesteps=1).logits.shape == (2, 2, 10)


# ---------------------------------------------------------------------- PEfficientNetB0 (#11)
#: The paper's layout (predify2021/model_factory/peffficientnetb0_shared.py): stem, 7 stages.
PAPER_PEFF_CHANNELS = [
    (32, 3),
    (16, 32),
    (24, 16),
    (40, 24),
    (80, 40),
    (112, 80),
    (192, 112),
    (320, 192),
]


def decoder_channels(pnet: predify.PredictiveNet) -> list[tuple[int, int]]:
    return [
        (layer.in_channels, layer.out_channels)
        for pcoder in pnet.pcoders
        for layer in pcoder.decoder.modules()
        if isinstance(layer, torch.nn.ConvTranspose2d)
    ]


def test_peffnetb0_is_the_papers_network_on_timm() -> None:
    timm = pytest.importorskip("timm")
    pnet = create_model("peffnetb0", image_size=64)
    assert isinstance(pnet.backbone, timm.models.EfficientNet)
    assert [p.module_path for p in pnet.pcoders] == ["bn1", *(f"blocks[{i}]" for i in range(7))]
    assert pnet.updated_modules[0] is pnet.backbone.bn1
    assert "timm efficientnet_b0" in repr(pnet)
    assert get_model_entry("peffnetb0").backbone == "timm:efficientnet_b0"
    # `predify train --backbone NAME` without a config finds the modules of either backbone.
    assert default_modules("timm:efficientnet_b0") == ("bn1", *(f"blocks[{i}]" for i in range(7)))
    assert default_modules("torchvision:efficientnet_b0") == tuple(
        f"features[{i}]" for i in range(8)
    )
    assert decoder_channels(pnet) == PAPER_PEFF_CHANNELS
    # The paper's network classes use the plain PCoder: no gradient scaling.
    assert not pnet.config.gradient_scaling
    assert not any(pcoder.gradient_scaling for pcoder in pnet.pcoders)
    assert create_model("peffnetb0", image_size=64, gradient_scaling=True).config.gradient_scaling


def test_peffnetb0_on_torchvision_when_asked() -> None:
    pnet = create_model("peffnetb0", image_size=64, backend="torchvision")
    assert isinstance(pnet.backbone, torchvision.models.EfficientNet)
    assert [p.module_path for p in pnet.pcoders] == [f"features[{i}]" for i in range(8)]
    assert "torchvision efficientnet_b0" in repr(pnet)
    assert decoder_channels(pnet) == PAPER_PEFF_CHANNELS
    with pytest.raises(ConfigError, match="backend: expected 'timm' or 'torchvision'"):
        create_model("peffnetb0", backend="keras")


def test_peffnetb0_falls_back_to_torchvision_without_timm() -> None:
    """With timm hidden from the import system, the zoo builds on torchvision and says so."""
    code = textwrap.dedent(
        """
        import importlib.abc, sys

        class HideTimm(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "timm" or name.startswith("timm."):
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, HideTimm())
        from predify.models import PEFFNETB0_BACKEND, create_model, get_model_entry
        pnet = create_model("peffnetb0", image_size=32)
        print(PEFFNETB0_BACKEND, get_model_entry("peffnetb0").backbone, pnet.config.name)
        print(pnet.pcoders[0].module_path, type(pnet.backbone).__module__)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert first == (
        "torchvision torchvision:efficientnet_b0 PEfficientNetB0 (torchvision efficientnet_b0)"
    )
    assert second == "features[0] torchvision.models.efficientnet"


def test_zoo_gradient_scaling_defaults_follow_the_papers_network_code() -> None:
    # PVGG16SeparateHP and PEfficientNetB0_SeparateHP both build plain PCoders.
    assert not create_model("pvgg16", image_size=32).config.gradient_scaling
    assert not create_model("peffnetb0", image_size=32).config.gradient_scaling
