"""The model zoo: the Predify paper's networks, found by name.

>>> from predify.models import create_model, list_models
>>> list_models()
['peffnetb0', 'presnet18', 'pshallow', 'psmallcnn', 'pvgg16']
>>> pnet = create_model("presnet18", weights=None)  # doctest: +SKIP
"""

from ._common import ZOO_OPTIONS, ZooOptions, timm_backbone, torchvision_backbone
from ._registry import (
    IMAGENET_NORMALIZATION,
    ModelEntry,
    create_model,
    default_modules,
    entry_for_backbone,
    get_model_entry,
    list_models,
    register_model,
)
from .peffnetb0 import (
    PEFFNETB0_BACKEND,
    PEFFNETB0_MODULES,
    PEFFNETB0_TIMM_MODULES,
    PEFFNETB0_TORCHVISION_MODULES,
    peffnetb0,
)
from .presnet18 import PRESNET18_MODULES, presnet18
from .pvgg16 import PVGG16_MODULES, PVGG16_PREDICTORS, pvgg16
from .shallow import SHALLOW_MODULES, ShallowCNN, pshallow
from .small_cnn import SMALL_CNN_MODULES, SmallCNN, psmallcnn

__all__ = [
    "IMAGENET_NORMALIZATION",
    "PEFFNETB0_BACKEND",
    "PEFFNETB0_MODULES",
    "PEFFNETB0_TIMM_MODULES",
    "PEFFNETB0_TORCHVISION_MODULES",
    "PRESNET18_MODULES",
    "PVGG16_MODULES",
    "PVGG16_PREDICTORS",
    "SHALLOW_MODULES",
    "SMALL_CNN_MODULES",
    "ZOO_OPTIONS",
    "ModelEntry",
    "ShallowCNN",
    "SmallCNN",
    "ZooOptions",
    "create_model",
    "default_modules",
    "entry_for_backbone",
    "get_model_entry",
    "list_models",
    "peffnetb0",
    "presnet18",
    "pshallow",
    "psmallcnn",
    "pvgg16",
    "register_model",
    "timm_backbone",
    "torchvision_backbone",
]
