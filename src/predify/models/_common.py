"""What the zoo's builders share: hyperparameter defaults, backbone builders and assembling the
predictive network from a registry entry."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Any

from torch import nn

from ..builder import PAPER_HYPERPARAMETERS, predify
from ..checkpoint import load_feedback
from ..config import Hyperparameters, PCoderConfig, PNetConfig
from ..errors import ConfigError
from ..network import PredictiveNet
from ._registry import EntryFields, get_model_entry

__all__ = [
    "ZOO_OPTIONS",
    "ZooOptions",
    "build_torchvision_zoo_model",
    "build_zoo_model",
    "paper_hyperparameters",
    "timm_backbone",
    "torchvision_backbone",
    "torchvision_entry",
]


@dataclass(frozen=True)
class ZooOptions:
    """The keyword arguments every zoo builder takes besides ``weights``.

    Attributes:
        feedback_weights: a local feedback checkpoint
            ([`predify.checkpoint.save_feedback()`][predify.checkpoint.save_feedback]).
        hyperparameters: beta, lambda, alpha of every pcoder (lambda is 0 on the top one).
        gradient_scaling: scale the error gradient by numel/sqrt(C) (None: the model's default).
        timesteps: the default T of a forward call.
        image_size: H = W of the inputs (224 for ImageNet).
        num_classes: outputs of the backbone's classifier.
    """

    feedback_weights: str | os.PathLike[str] | None = None
    hyperparameters: Hyperparameters = PAPER_HYPERPARAMETERS
    gradient_scaling: bool | None = None
    timesteps: int = 10
    image_size: int = 224
    num_classes: int = 1000


#: The names of [`ZooOptions`][predify.models._common.ZooOptions], which the registry accepts as
#: keyword arguments.
ZOO_OPTIONS = tuple(field.name for field in fields(ZooOptions))


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
    """``timm.create_model(name, pretrained=False, **kwargs)`` (timm is an optional extra;
    ``pretrained=True`` in ``kwargs`` downloads timm's weights)."""
    try:
        import timm
    except ImportError:
        raise ConfigError(
            "backbone: timm models need the timm extra: pip install 'predify[timm]'"
        ) from None
    if not timm.is_model(name):
        # A local lookup in timm's own table of architectures: nothing is downloaded.
        near = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; nearest: {', '.join(near)}" if near else ""
        raise ConfigError(f"backbone: unknown timm model {name!r}{hint}")
    try:
        return timm.create_model(name, **{"pretrained": False, **kwargs})
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
    modules: Sequence[str] | None = None,
) -> PredictiveNet:
    """The network of zoo entry ``name`` (config name ``title``) on ``backbone``: the entry's
    modules (or ``modules``, for a backbone other than the entry's) and decoders, the paper's
    hyperparameter layout, and the entry's normalisation when ``pretrained``."""
    entry = get_model_entry(name)
    paths = entry.modules if modules is None else tuple(modules)
    per_pcoder = paper_hyperparameters(len(paths), hyperparameters)
    config = PNetConfig(
        pcoders=tuple(
            PCoderConfig(module=module, predictor=predictor, hyperparameters=values)
            for module, predictor, values in zip(paths, entry.predictors, per_pcoder, strict=True)
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


def torchvision_entry(
    architecture: str,
    modules: Sequence[str],
    *,
    predictors: Sequence[str | None] | None = None,
    backbone_prefixes: Sequence[str] = (),
) -> EntryFields:
    """The [`register_model()`][predify.models.register_model] arguments of a zoo network on
    torchvision's ``architecture``
    (ImageNet input size and normalisation, [`ZOO_OPTIONS`][predify.models._common.ZOO_OPTIONS])."""
    from ._registry import IMAGENET_NORMALIZATION

    return EntryFields(
        backbone=f"torchvision:{architecture}",
        build_backbone=partial(torchvision_backbone, architecture),
        modules=modules,
        input_size=(3, 224, 224),
        predictors=predictors,
        normalization=IMAGENET_NORMALIZATION,
        backbone_prefixes=backbone_prefixes,
        options=ZOO_OPTIONS,
    )


def build_torchvision_zoo_model(
    name: str,
    title: str,
    architecture: Callable[..., nn.Module],
    weights: Any,
    options: Mapping[str, Any],
    *,
    gradient_scaling: bool,
) -> PredictiveNet:
    """A torchvision-backed zoo network: ``architecture(weights=..., num_classes=...)`` with the
    entry ``name``'s pcoders; ``gradient_scaling`` is the model's default."""
    chosen = ZooOptions(**options)
    scaling = chosen.gradient_scaling if chosen.gradient_scaling is not None else gradient_scaling
    return build_zoo_model(
        name,
        title,
        architecture(weights=weights, num_classes=chosen.num_classes),
        input_size=(3, chosen.image_size, chosen.image_size),
        pretrained=weights is not None,
        hyperparameters=chosen.hyperparameters,
        gradient_scaling=scaling,
        timesteps=chosen.timesteps,
        feedback_weights=chosen.feedback_weights,
    )


def three_conv_stages(in_channels: int, widths: Sequence[int]) -> nn.Sequential:
    """Three 3x3 conv + ReLU stages, the first two followed by 2x2 max pooling (modules 0..7):
    the feature layout of the zoo's small MNIST/CIFAR networks. [B, C, H, W] ->
    [B, widths[2], H/4, W/4]."""
    first, second, third = widths
    return nn.Sequential(
        nn.Conv2d(in_channels, first, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(first, second, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(second, third, 3, padding=1), nn.ReLU(),
    )  # fmt: skip


def build_unpublished_zoo_model(
    name: str,
    display_name: str,
    backbone: nn.Module,
    *,
    weights: None,
    image_size: int,
    **build: Any,
) -> PredictiveNet:
    """[`build_zoo_model()`][predify.models._common.build_zoo_model] for a network without
    published weights whose ``features[0]``
    is its first convolution: refuses ``weights``, sizes the input from that convolution's
    channels and ``image_size``."""
    if weights is not None:
        raise ConfigError(f"{name}: no published weights exist, got weights={weights!r}")
    features = backbone.features
    assert isinstance(features, nn.Sequential) and isinstance(features[0], nn.Conv2d)
    size = (features[0].in_channels, image_size, image_size)
    return build_zoo_model(name, display_name, backbone, input_size=size, pretrained=False, **build)
