"""Feedback training: the decoders learn to predict the layer below, the backbone stays frozen.

>>> from predify.train import FeedbackTrainer, ModelCheckpoint, ProgressBar
>>> trainer = FeedbackTrainer(pnet, lr=1e-3)                   # doctest: +SKIP
>>> trainer.fit(dataset, epochs=10, batch_size=64,
...             callbacks=[ModelCheckpoint("run/checkpoint.pt"), ProgressBar()])  # doctest: +SKIP

[`train_run()`][predify.train.api.train_run] trains a whole run from
[`TrainSettings`][predify.train.TrainSettings] and writes a
run directory that ``predify evaluate`` and ``predify tune`` read; ``predify train``
(`predify.train.cli`) is a thin layer over it.
"""

from ..errors import NonFiniteLossError
from ..runtime.distributed import DistributedInfo, distributed_from_env, init_distributed
from .api import TrainingReport, resume_run, train_run
from .callbacks import Callback, LambdaCallback, MetricsLogging, ModelCheckpoint, ProgressBar
from .logs import MetricsLogger
from .optimizers import OPTIMIZERS
from .recipes import RECIPES, Preprocessing, TrainingRecipe, get_recipe, list_recipes
from .rng import seed_everything
from .schedulers import SCHEDULERS, SchedulerSettings, build_scheduler, parse_scheduler
from .settings import TrainSettings
from .trainer import FeedbackTrainer

__all__ = [
    "OPTIMIZERS",
    "RECIPES",
    "SCHEDULERS",
    "Callback",
    "DistributedInfo",
    "FeedbackTrainer",
    "LambdaCallback",
    "MetricsLogger",
    "MetricsLogging",
    "ModelCheckpoint",
    "NonFiniteLossError",
    "Preprocessing",
    "ProgressBar",
    "SchedulerSettings",
    "TrainSettings",
    "TrainingRecipe",
    "TrainingReport",
    "build_scheduler",
    "distributed_from_env",
    "get_recipe",
    "init_distributed",
    "list_recipes",
    "parse_scheduler",
    "resume_run",
    "seed_everything",
    "train_run",
]
