"""PEfficientNetB0: EfficientNet-B0 with a pcoder after the stem and after each of its 7 stages.

The paper's network (predify2021/model_factory/peffficientnetb0_shared.py) is timm's
``efficientnet_b0``, with pcoders after the stem activation (``act1`` in the timm of 2021; timm
now folds it into ``bn1``, a ``BatchNormAct2d`` with the same output) and after each of
``blocks[0..6]``. It is built on timm when timm is installed, on torchvision's
``efficientnet_b0`` (the same architecture, other module names and weights) otherwise;
``backend=`` chooses, and the network's name says which (``repr``, run.json's backbone spec).
"""

from __future__ import annotations

import importlib.util
from functools import partial
from typing import Any

import torchvision

from ..errors import ConfigError
from ..network import PredictiveNet
from ._common import ZOO_OPTIONS, ZooOptions, build_zoo_model, timm_backbone, torchvision_entry
from ._registry import IMAGENET_NORMALIZATION, EntryFields, register_model

__all__ = [
    "PEFFNETB0_BACKEND",
    "PEFFNETB0_MODULES",
    "PEFFNETB0_TIMM_MODULES",
    "PEFFNETB0_TORCHVISION_MODULES",
    "peffnetb0",
]

#: timm: the stem (``bn1``, BatchNorm + SiLU) and the seven stages ``blocks[0..6]``.
PEFFNETB0_TIMM_MODULES = ("bn1", *(f"blocks[{index}]" for index in range(7)))
#: torchvision: ``features[0]`` is the stem, ``features[1..7]`` the seven stages.
PEFFNETB0_TORCHVISION_MODULES = tuple(f"features[{index}]" for index in range(8))


def _timm_installed() -> bool:
    try:
        return importlib.util.find_spec("timm") is not None
    except (ImportError, ValueError):  # a broken or deliberately hidden installation
        return False


#: The backend [`peffnetb0()`][predify.models.peffnetb0.peffnetb0] uses by default: ``"timm"`` when
#: timm is installed.
PEFFNETB0_BACKEND = "timm" if _timm_installed() else "torchvision"
#: The default backend's pcoder modules.
PEFFNETB0_MODULES = (
    PEFFNETB0_TIMM_MODULES if PEFFNETB0_BACKEND == "timm" else PEFFNETB0_TORCHVISION_MODULES
)

_ENTRY: EntryFields = (
    EntryFields(
        backbone="timm:efficientnet_b0",
        build_backbone=partial(timm_backbone, "efficientnet_b0"),
        modules=PEFFNETB0_TIMM_MODULES,
        input_size=(3, 224, 224),
        normalization=IMAGENET_NORMALIZATION,
        alternatives=[("torchvision:efficientnet_b0", PEFFNETB0_TORCHVISION_MODULES)],
    )
    if PEFFNETB0_BACKEND == "timm"
    else EntryFields(
        **torchvision_entry("efficientnet_b0", PEFFNETB0_TORCHVISION_MODULES),
        alternatives=[("timm:efficientnet_b0", PEFFNETB0_TIMM_MODULES)],
    )
)
_ENTRY["options"] = (*ZOO_OPTIONS, "backend")


@register_model(**_ENTRY)
def peffnetb0(*, weights: Any = None, **options: Any) -> PredictiveNet:
    """PEfficientNetB0 (Choksi et al., 2021) with the paper's automatic decoders (bilinear x2
    upsampling where the map doubles, then a 3x3 transposed convolution).

    Args:
        weights: backbone weights. On timm: None (untrained) or anything else for timm's
            pretrained ``efficientnet_b0`` (``pretrained=True``: a download). On torchvision: as
            for ``torchvision.models.efficientnet_b0``.
        options: those of [`predify.models.ZooOptions`][predify.models.ZooOptions]
            (``gradient_scaling`` is off by
            default, as in the paper's network class, which uses the plain ``PCoder``), and
            ``backend``: ``"timm"`` or ``"torchvision"`` (default
                [`PEFFNETB0_BACKEND`][predify.models.peffnetb0.PEFFNETB0_BACKEND]).
    """
    backend = options.pop("backend", None) or PEFFNETB0_BACKEND
    if backend not in ("timm", "torchvision"):
        raise ConfigError(f"peffnetb0: backend: expected 'timm' or 'torchvision', got {backend!r}")
    chosen = ZooOptions(**options)
    if backend == "timm":
        backbone = timm_backbone(
            "efficientnet_b0", pretrained=weights is not None, num_classes=chosen.num_classes
        )
        modules = PEFFNETB0_TIMM_MODULES
    else:
        backbone = torchvision.models.efficientnet_b0(
            weights=weights, num_classes=chosen.num_classes
        )
        modules = PEFFNETB0_TORCHVISION_MODULES
    return build_zoo_model(
        "peffnetb0",
        f"PEfficientNetB0 ({backend} efficientnet_b0)",
        backbone,
        input_size=(3, chosen.image_size, chosen.image_size),
        pretrained=weights is not None,
        hyperparameters=chosen.hyperparameters,
        gradient_scaling=bool(chosen.gradient_scaling),
        timesteps=chosen.timesteps,
        feedback_weights=chosen.feedback_weights,
        modules=modules,
    )
