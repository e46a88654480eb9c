"""What the zoo's builders share: hyperparameter defaults, backbone builders and assembling the
predictive network from a registry entry."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from torch import nn

from ..builder import PAPER_HYPERPARAMETERS, predify
from ..checkpoint import load_feedback
from ..config import Hyperparameters, PCoderConfig, PNetConfig
from ..errors import ConfigError
from ..network import PredictiveNet
from ._registry import get_model_entry

__all__ = ["build_zoo_model", "paper_hyperparameters", "timm_backbone", "torchvision_backbone"]


def paper_hyperparameters(
    count: int, values: Hyperparameters = PAPER_HYPERPARAMETERS
) -> list[Hyperparameters]:
    """``values`` for each of ``count`` pcoders, with lambda 0 on the top one."""
    return [values] * (count - 1) + [replace(values, feedback=0.0)]


def torchvision_backbone(name: str, weights: Any = None, **kwargs: Any) -> nn.Module:
    """``torchvision.models.get_model(name, weights=weights, **kwargs)``, with one-line errors
    for an unknown name or arguments the model does not take."""
    import torchvision

    if name not in torchvision.models.list_models():
        raise ConfigError(f"backbone: unknown torchvision model {name!r}")
    try:
        return torchvision.models.get_model(name, weights=weights, **kwargs)
    except TypeError as error:
        raise ConfigError(f"backbone torchvision:{name}: bad arguments {kwargs}: {error}") from None


def timm_backbone(name: str, **kwargs: Any) -> nn.Module:
    """``timm.create_model(name, pretrained=False, **kwargs)`` (timm is an optional extra)."""
    try:
        import timm
    except ImportError:
        raise ConfigError(
            "backbone: timm models need the timm extra: pip install 'predify[timm]'"
        ) from None
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except TypeError as error:
        raise ConfigError(f"backbone timm:{name}: bad arguments {kwargs}: {error}") from None


def build_zoo_model(
    name: str,
    title: str,
    backbone: nn.Module,
    *,
    input_size: tuple[int, int, int],
    pretrained: bool,
    hyperparameters: Hyperparameters,
    gradient_scaling: bool,
    timesteps: int,
    feedback_weights: str | os.PathLike[str] | None,
) -> PredictiveNet:
    """The network of zoo entry ``name`` (config name ``title``) on ``backbone``: the entry's
    modules and decoders, the paper's hyperparameter layout, and the entry's normalisation when
    ``pretrained``."""
    entry = get_model_entry(name)
    per_pcoder = paper_hyperparameters(len(entry.modules), hyperparameters)
    config = PNetConfig(
        pcoders=tuple(
            PCoderConfig(module=module, predictor=predictor, hyperparameters=values)
            for module, predictor, values in zip(
                entry.modules, entry.predictors, per_pcoder, strict=True
            )
        ),
        input_size=input_size,
        name=title,
        gradient_scaling=gradient_scaling,
        timesteps=timesteps,
    )
    pnet = predify(backbone, config)
    pnet.normalization = entry.normalization if pretrained else None
    if feedback_weights is not None:
        load_feedback(pnet, feedback_weights)
    return pnet
