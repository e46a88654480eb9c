"""Feedback training: the decoders learn to predict the layer below, the backbone stays frozen.

>>> from predify.train import FeedbackTrainer
>>> trainer = FeedbackTrainer(pnet, lr=1e-3)                   # doctest: +SKIP
>>> trainer.fit(dataset, epochs=10, batch_size=64)             # doctest: +SKIP

``predify train`` (:mod:`predify.train.cli`) runs the same from the command line and writes a run
directory that ``predify evaluate`` and ``predify tune`` read.
"""

from .distributed import DistributedInfo, distributed_from_env, init_distributed
from .logs import MetricsLogger
from .recipes import RECIPES, Preprocessing, TrainingRecipe, get_recipe, list_recipes
from .schedulers import SCHEDULERS, SchedulerSettings, build_scheduler, parse_scheduler
from .state import seed_everything
from .trainer import OPTIMIZERS, FeedbackTrainer, NonFiniteLossError

__all__ = [
    "OPTIMIZERS",
    "RECIPES",
    "SCHEDULERS",
    "DistributedInfo",
    "FeedbackTrainer",
    "MetricsLogger",
    "NonFiniteLossError",
    "Preprocessing",
    "SchedulerSettings",
    "TrainingRecipe",
    "build_scheduler",
    "distributed_from_env",
    "get_recipe",
    "init_distributed",
    "list_recipes",
    "parse_scheduler",
    "seed_everything",
]
