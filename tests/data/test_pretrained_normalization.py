"""The normalisation timm's pretrained configs prescribe, read without any download."""

from __future__ import annotations

import pytest
import torchvision

from predify.data import pretrained_normalization

timm = pytest.importorskip("timm")


def test_timm_pretrained_configs() -> None:
    # timm's pretrained configs: ImageNet statistics for its ResNets (torchvision's values), and
    # 0.5 / 0.5 for the AugReg ViTs (timm's vit_tiny_patch16_224.augreg_in21k_ft_in1k card).
    resnet = pretrained_normalization(timm.create_model("resnet10t", pretrained=False))
    assert resnet == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    vit = pretrained_normalization(timm.create_model("vit_tiny_patch16_224", pretrained=False))
    assert vit == {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def test_models_without_a_pretrained_config() -> None:
    assert pretrained_normalization(torchvision.models.resnet18(weights=None)) is None
