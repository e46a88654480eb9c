"""predify: brain-inspired predictive-coding feedback for any feed-forward CNN.

>>> import torchvision, predify
>>> backbone = torchvision.models.resnet18(weights=None)
>>> config = predify.auto_config(backbone, (3, 224, 224), ["layer1", "layer2", "layer3"])
>>> pnet = predify.predify(backbone, config)
>>> out = pnet(images, timesteps=10)   # out.logits: [T+1, B, classes]  # doctest: +SKIP
"""

from .builder import PAPER_HYPERPARAMETERS, auto_config, auto_predictor, predify
from .checkpoint import load_feedback, load_original_feedback, load_predictive_net, save_feedback
from .config import Hyperparameters, PCoderConfig, PNetConfig, load_config
from .errors import CheckpointError, ConfigError, ConfigWarning, DataError, PredifyError
from .hyperparameter_module import HyperparameterModule
from .network import PNetOutput, PNetState, PredictiveNet
from .pcoder import PCoder
from .presets import HyperparameterPreset, get_preset, list_presets
from .train import FeedbackTrainer

__version__ = "0.1.0"

__all__ = [
    "PAPER_HYPERPARAMETERS",
    "CheckpointError",
    "ConfigError",
    "ConfigWarning",
    "DataError",
    "FeedbackTrainer",
    "HyperparameterModule",
    "HyperparameterPreset",
    "Hyperparameters",
    "PCoder",
    "PCoderConfig",
    "PNetConfig",
    "PNetOutput",
    "PNetState",
    "PredictiveNet",
    "PredifyError",
    "auto_config",
    "auto_predictor",
    "get_preset",
    "list_presets",
    "load_config",
    "load_feedback",
    "load_original_feedback",
    "load_predictive_net",
    "predify",
    "save_feedback",
]
