"""Default pcoder modules: where feedback goes when the user does not say.

[`feature_stages()`][predify.stages.feature_stages] picks a backbone's feature stages, bottom
first, in this order of preference (the public entry point is
[`predify.models.default_modules()`][predify.models.default_modules], which also knows the zoo's
backbones by name):

1. **timm models** (anything with a ``feature_info`` list, as timm's models have): the modules
   timm itself reports as feature stages (the last block of each resolution, e.g. ``act1``,
   ``layer1`` ... ``layer4`` of a ResNet). For isotropic models, whose stages all share one
   resolution (vision transformers, ConvMixer), every few blocks: ``ceil(depth / 4)`` apart,
   ending at the last block (blocks 2, 5, 8, 11 of a 12-block ViT). Listed modules that cannot
   hold a pcoder (not a submodule of the model itself, run more than once, or returning a
   tuple) are left out.
2. **torchvision families**, known layouts: ResNet/ResNeXt/Wide-ResNet ``maxpool, layer1..4``
   (the zoo's PResNet18); VGG the ReLU before each max-pool (the paper's PVGG16); EfficientNet
   the stem and every MBConv stage (the zoo's PEfficientNetB0); ConvNeXt its four stages; RegNet
   the stem and its four blocks; VisionTransformer every few encoder layers.
3. **Anything else** (MobileNet, MNASNet, DenseNet, a custom CNN): the last module of each
   resolution among the children of the model's ``features`` (or ``layers``, ``blocks``,
   ``stages``) sequence, or else among its own children, found by one dry run.

The choice is written into the config as explicit module paths, so the saved TOML says exactly
where the pcoders are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .errors import ConfigError
from .submodules import eval_mode, forward_hooks, resolve_module

__all__ = [
    "FeatureLayout",
    "feature_layout",
    "feature_stages",
    "isotropic_choice",
    "timm_feature_modules",
]

#: Where a feature map keeps its channels: ``"nchw"`` [B, C, H, W] (torchvision, most of timm) or
#: ``"nhwc"`` [B, H, W, C] (timm's Swin and MambaOut). This is the maps' shape, not torch's
#: memory format (``torch.channels_last``, which keeps the [B, C, H, W] shape).
FeatureLayout = Literal["nchw", "nhwc"]

# How many pcoders an isotropic model (all blocks at one resolution) gets by default.
_ISOTROPIC_PCODERS = 4
_SEQUENCE_NAMES = ("features", "layers", "blocks", "stages")


def isotropic_choice(count: int, pcoders: int = _ISOTROPIC_PCODERS) -> list[int]:
    """Every few of ``count`` block indices, ``ceil(count / pcoders)`` apart, ending at the last.

    >>> isotropic_choice(12)
    [2, 5, 8, 11]
    >>> isotropic_choice(4)
    [0, 1, 2, 3]
    """
    step = max(1, math.ceil(count / pcoders))
    return list(range(count - 1, -1, -step))[::-1]


def timm_feature_modules(backbone: nn.Module) -> list[str] | None:
    """The feature-stage modules timm reports in ``backbone.feature_info``, or None."""
    info: Any = getattr(backbone, "feature_info", None)
    if info is None:
        return None
    try:
        entries = [dict(entry) for entry in info]
        modules = [str(entry["module"]) for entry in entries]
        reductions = [entry.get("reduction") for entry in entries]
    except (TypeError, KeyError, ValueError):
        return None
    if not modules:
        return None
    if len(modules) > 1 and len(set(reductions)) == 1:
        return [modules[index] for index in isotropic_choice(len(modules))]
    return modules


def _torchvision_layout(backbone: nn.Module) -> list[str] | None:
    try:
        from torchvision import models
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return None
    if isinstance(backbone, models.ResNet):
        return ["maxpool", "layer1", "layer2", "layer3", "layer4"]
    if isinstance(backbone, models.VGG):
        features = list(backbone.features)
        return [
            f"features[{index - 1}]"
            for index, layer in enumerate(features)
            if isinstance(layer, nn.MaxPool2d) and index > 0
        ]
    if isinstance(backbone, models.EfficientNet):
        # features[-1] is the 1x1 head convolution, at the last stage's resolution.
        return [f"features[{index}]" for index in range(len(backbone.features) - 1)]
    if isinstance(backbone, models.ConvNeXt):
        # features alternates stem/downsampling layers (even) and stages (odd).
        return [f"features[{index}]" for index in range(1, len(backbone.features), 2)]
    if isinstance(backbone, models.VisionTransformer):
        layers = [name for name, _ in backbone.encoder.layers.named_children()]
        return [f"encoder.layers.{layers[index]}" for index in isotropic_choice(len(layers))]
    if isinstance(backbone, models.RegNet):
        blocks = [name for name, _ in backbone.trunk_output.named_children()]
        return ["stem", *(f"trunk_output.{name}" for name in blocks)]
    return None


def feature_layout(backbone: nn.Module) -> FeatureLayout:
    """``"nhwc"`` when the backbone's feature maps are [B, H, W, C] (timm's ``output_fmt`` NHWC,
    torchvision's Swin), else ``"nchw"``."""
    if getattr(backbone, "output_fmt", None) == "NHWC":
        return "nhwc"
    try:
        from torchvision import models
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return "nchw"
    return "nhwc" if isinstance(backbone, models.SwinTransformer) else "nchw"


def _candidate_sequence(backbone: nn.Module) -> list[tuple[str, nn.Module]]:
    for name in _SEQUENCE_NAMES:
        sequence = getattr(backbone, name, None)
        if isinstance(sequence, (nn.Sequential, nn.ModuleList)) and len(sequence) > 1:
            return [(f"{name}[{index}]", child) for index, child in enumerate(sequence)]
    return list(backbone.named_children())


def _stage_ends(backbone: nn.Module, input_size: Sequence[int]) -> list[str]:
    """The last candidate module of each resolution, by one dry run on zeros."""
    candidates = _candidate_sequence(backbone)
    calls: dict[int, list[torch.Size]] = {index: [] for index in range(len(candidates))}
    order: list[int] = []

    def recorder(index: int) -> Any:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            calls[index].append(output.shape if isinstance(output, Tensor) else torch.Size())
            order.append(index)

        return hook

    _run_on_zeros(backbone, input_size, [(m, recorder(i)) for i, (_, m) in enumerate(candidates)])
    spatial_rank = len(input_size) - 1
    ends: dict[tuple[int, ...], int] = {}
    for index in dict.fromkeys(order):
        shapes = calls[index]
        if len(shapes) != 1 or len(shapes[0]) != spatial_rank + 2:
            continue
        spatial = tuple(shapes[0][2:])
        if all(size == 1 for size in spatial):
            continue  # globally pooled: no longer a feature map
        ends[spatial] = index
    return [candidates[index][0] for index in sorted(ends.values())]


def _usable(backbone: nn.Module, paths: Sequence[str], input_size: Sequence[int]) -> list[str]:
    """The paths that resolve to a module that runs once and returns a tensor, in run order.

    timm's ``feature_info`` sometimes names modules of its feature-extraction wrapper only (HRNet's
    ``stem``), or blocks that return tuples (PiT): those cannot hold a pcoder.
    """
    modules: list[tuple[str, nn.Module]] = []
    for path in paths:
        try:
            modules.append((path, resolve_module(backbone, path)))
        except ConfigError:
            continue
    calls: list[list[bool]] = [[] for _ in modules]
    order: list[int] = []

    def recorder(index: int) -> Any:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            calls[index].append(isinstance(output, Tensor))
            order.append(index)

        return hook

    _run_on_zeros(backbone, input_size, [(m, recorder(i)) for i, (_, m) in enumerate(modules)])
    usable = [index for index in dict.fromkeys(order) if calls[index] == [True]]
    return [modules[index][0] for index in usable]


def _run_on_zeros(backbone: nn.Module, input_size: Sequence[int], hooks: Sequence[Any]) -> None:
    parameter = next(backbone.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else None
    sample = torch.zeros(1, *input_size, device=device, dtype=dtype or torch.float32)
    with torch.no_grad(), eval_mode(backbone), forward_hooks(hooks):
        try:
            backbone(sample)
        except (RuntimeError, ValueError, IndexError) as error:
            # A shape mismatch: the input_size does not fit the backbone. Others are bugs.
            raise ConfigError(
                f"the backbone fails on an input of size {list(input_size)} (input_size): "
                f"{type(error).__name__}: {error}"
            ) from error


def feature_stages(backbone: nn.Module, input_size: Sequence[int]) -> list[str]:
    """The backbone's feature stages, bottom first: where pcoders go by default.

    See the module's documentation for the rules (timm ``feature_info``, torchvision layouts,
    the last module of each resolution).

    Args:
        backbone: the network to add feedback to.
        input_size: one input sample, (C, H, W); used by the dry run of the generic rule.

    Raises:
        ConfigError: no feature stage was found; name the modules explicitly.
    """
    modules = timm_feature_modules(backbone)
    if modules:
        modules = _usable(backbone, modules, input_size)
    if not modules:
        modules = _torchvision_layout(backbone)
    if not modules:
        modules = _stage_ends(backbone, input_size)
    if not modules:
        raise ConfigError(
            f"modules: no feature stages found in {type(backbone).__name__}; name the pcoder "
            "modules explicitly (e.g. ['layer1', 'layer2'])"
        )
    return modules
