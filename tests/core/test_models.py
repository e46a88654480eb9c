"""The model zoo: registry, the paper's configurations, and that every model runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
    list_models,
    pshallow,
    psmallcnn,
)


@pytest.fixture(autouse=True)
def one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
