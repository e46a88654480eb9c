"""The one model registry, as timm's: each zoo entry carries what building, training and
evaluating it needs.

A [`ModelEntry`][predify.models._registry.ModelEntry] holds the zoo builder
(``create_model(name)``), the backbone it wraps (a
spec name such as ``torchvision:vgg16`` and a function building it untrained), the default
pcoder modules and decoders, the input size and the normalisation pretrained weights expect.
[`default_modules()`][predify.models.default_modules] answers where pcoders go by default: for a
backbone spec name, the modules of the entry whose backbone matches it (what
``predify train --backbone NAME`` without ``--config`` uses); for a backbone module, the feature
stages [`predify.stages.feature_stages()`][predify.stages.feature_stages] finds.
[`predify.runtime.runs.build_backbone()`][predify.runtime.runs.build_backbone] rebuilds a run's
backbone from the same entries. Registering
a name twice is an error.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

from torch import nn

from ..data.normalization import IMAGENET_MEAN, IMAGENET_STD
from ..errors import ConfigError
from ..network import PredictiveNet
from ..stages import feature_stages

__all__ = [
    "IMAGENET_NORMALIZATION",
    "EntryFields",
    "ModelEntry",
    "create_model",
    "default_modules",
    "entry_for_backbone",
    "get_model_entry",
    "list_models",
    "register_model",
]

Builder = TypeVar("Builder", bound=Callable[..., PredictiveNet])

#: The mean/std torchvision's and timm's ImageNet weights expect, for images in [0, 1].
IMAGENET_NORMALIZATION = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


@dataclass(frozen=True)
class ModelEntry:
    """A zoo network and the backbone it wraps.

    Attributes:
        name: the zoo name (``create_model(name)``), the builder's function name.
        builder: builds the predictive network (checked keyword arguments).
        backbone: the backbone's spec name in run directories: ``shallow_cnn``,
            ``torchvision:NAME`` or ``timm:NAME``.
        build_backbone: an untrained backbone from keyword arguments (``num_classes=...``).
        modules: the default pcoder modules (dotted paths into the backbone).
        predictors: the default decoders per pcoder (None: the automatic decoder).
        input_size: (C, H, W) of its inputs.
        normalization: ``{"mean", "std"}`` that pretrained weights expect (None: images in
            [0, 1] as they are).
        backbone_prefixes: other backbone spec names starting with one of these take the same
            default modules (``torchvision:resnet`` covers resnet34, resnet50...).
        alternatives: other backbones the network is also built on, as (spec name, their pcoder
            modules): PEfficientNetB0 on torchvision when its entry is timm's, and back.
    """

    name: str
    builder: Callable[..., PredictiveNet]
    backbone: str
    build_backbone: Callable[..., nn.Module]
    modules: tuple[str, ...]
    predictors: tuple[str | None, ...]
    input_size: tuple[int, int, int]
    normalization: dict[str, list[float]] | None = None
    backbone_prefixes: tuple[str, ...] = ()
    alternatives: tuple[tuple[str, tuple[str, ...]], ...] = ()


class _RequiredFields(TypedDict):
    backbone: str
    build_backbone: Callable[..., nn.Module]
    modules: Sequence[str]
    input_size: Sequence[int]


class EntryFields(_RequiredFields, total=False):
    """The keyword arguments of [`register_model()`][predify.models.register_model], as a value
    (what ``torchvision_entry()`` builds for the torchvision-backed networks)."""

    predictors: Sequence[str | None] | None
    normalization: dict[str, list[float]] | None
    backbone_prefixes: Sequence[str]
    options: Sequence[str]
    alternatives: Sequence[tuple[str, Sequence[str]]]


_ENTRIES: dict[str, ModelEntry] = {}


def _checked_keywords(builder: Builder, options: Sequence[str]) -> Builder:
    """``builder`` refusing unknown or malformed arguments with a ConfigError naming them, not
    a TypeError from deep inside torchvision. ``options`` are the names its ``**options``
    takes."""
    signature = inspect.signature(builder)
    accepted = [
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind is not inspect.Parameter.VAR_KEYWORD
    ] + list(options)

    @functools.wraps(builder)
    def build(*args: Any, **kwargs: Any) -> PredictiveNet:
        unknown = [name for name in kwargs if name not in accepted]
        if unknown:
            raise ConfigError(
                f"{builder.__name__}: unknown argument(s) {', '.join(map(repr, unknown))}; "
                f"expected some of {', '.join(accepted)}"
            )
        try:
            signature.bind(*args, **kwargs)
        except TypeError as error:
            raise ConfigError(f"{builder.__name__}: {error}") from None
        return builder(*args, **kwargs)

    return build  # type: ignore[return-value]


def register_model(
    *,
    backbone: str,
    build_backbone: Callable[..., nn.Module],
    modules: Sequence[str],
    input_size: Sequence[int],
    predictors: Sequence[str | None] | None = None,
    normalization: dict[str, list[float]] | None = None,
    backbone_prefixes: Sequence[str] = (),
    options: Sequence[str] = (),
    alternatives: Sequence[tuple[str, Sequence[str]]] = (),
) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder`` under its function name with its entry's fields
    (``options``: the keyword names a builder's ``**options`` accepts).

    Raises:
        ConfigError: the name is registered already.
    """

    def register(builder: Builder) -> Builder:
        name = builder.__name__
        if name in _ENTRIES:
            raise ConfigError(f"model {name!r} is registered already")
        checked = _checked_keywords(builder, options)
        _ENTRIES[name] = ModelEntry(
            name=name,
            builder=checked,
            backbone=backbone,
            build_backbone=build_backbone,
            modules=tuple(modules),
            predictors=tuple(predictors) if predictors is not None else (None,) * len(modules),
            input_size=(int(input_size[0]), int(input_size[1]), int(input_size[2])),
            normalization=normalization,
            backbone_prefixes=tuple(backbone_prefixes),
            alternatives=tuple((spec, tuple(paths)) for spec, paths in alternatives),
        )
        return checked

    return register


def list_models() -> list[str]:
    """The names [`create_model()`][predify.models._registry.create_model] accepts, sorted."""
    return sorted(_ENTRIES)


def get_model_entry(name: str) -> ModelEntry:
    """The entry of a registered name; a ConfigError suggesting the nearest name otherwise."""
    entry = _ENTRIES.get(name)
    if entry is None:
        near = difflib.get_close_matches(name, list(_ENTRIES), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"unknown model {name!r}{hint} (available: {', '.join(list_models())})")
    return entry


def create_model(name: str, **kwargs: Any) -> PredictiveNet:
    """Build a registered network by name: ``create_model("presnet18", weights=None)``."""
    return get_model_entry(name).builder(**kwargs)


def entry_for_backbone(backbone: str) -> ModelEntry | None:
    """The entry whose backbone is ``backbone`` (a spec name), or whose prefixes cover it."""
    for entry in _ENTRIES.values():
        if entry.backbone == backbone:
            return entry
    for entry in _ENTRIES.values():
        if any(backbone.startswith(prefix) for prefix in entry.backbone_prefixes):
            return entry
    return None


def default_modules(
    backbone: nn.Module | str, input_size: Sequence[int] | None = None
) -> tuple[str, ...]:
    """The modules that get pcoders when no config names them, bottom first.

    Args:
        backbone: a backbone spec name (``"torchvision:resnet50"``, ``"shallow_cnn"``): the
            modules of the zoo entry that wraps it; or a backbone module: its feature stages
            ([`predify.stages.feature_stages()`][predify.stages.feature_stages]: timm's
            ``feature_info``, known torchvision layouts, the last module of each resolution).
        input_size: one input sample, (C, H, W); needed for a backbone module (its dry run).

    Raises:
        ConfigError: no entry knows the spec name, a module comes without ``input_size``, or no
            feature stage was found.
    """
    if isinstance(backbone, str):
        return _zoo_modules(backbone)
    if input_size is None:
        raise ConfigError(
            f"input_size: needed to find the feature stages of a {type(backbone).__name__} "
            "(one input sample, (C, H, W))"
        )
    return tuple(feature_stages(backbone, input_size))


def _zoo_modules(backbone: str) -> tuple[str, ...]:
    """The default modules of the zoo entry (or alternative) whose backbone is ``backbone``."""
    for candidate in _ENTRIES.values():
        for spec, paths in candidate.alternatives:
            if spec == backbone:
                return paths
    entry = entry_for_backbone(backbone)
    if entry is None:
        raise ConfigError(
            f"backbone {backbone!r}: no default pcoder modules are known for it; pass --config "
            "(see predify.auto_config)"
        )
    return entry.modules
