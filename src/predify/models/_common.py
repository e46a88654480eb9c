"""What the zoo's builders share: hyperparameter defaults and loading feedback weights."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from torch import nn

from ..builder import PAPER_HYPERPARAMETERS, predify
from ..checkpoint import load_feedback
from ..config import Hyperparameters, PCoderConfig, PNetConfig
from ..network import PredictiveNet

__all__ = ["build_zoo_model", "paper_hyperparameters"]


def paper_hyperparameters(
    count: int, values: Hyperparameters = PAPER_HYPERPARAMETERS
) -> list[Hyperparameters]:
    """``values`` for each of ``count`` pcoders, with lambda 0 on the top one."""
    return [values] * (count - 1) + [replace(values, feedback=0.0)]


def build_zoo_model(
    backbone: nn.Module,
    name: str,
    input_size: Sequence[int],
    modules: Sequence[str],
    predictors: Sequence[str | None],
    *,
    hyperparameters: Hyperparameters,
    gradient_scaling: bool,
    timesteps: int,
    feedback_weights: str | os.PathLike[str] | None,
) -> PredictiveNet:
    per_pcoder = paper_hyperparameters(len(modules), hyperparameters)
    config = PNetConfig(
        pcoders=tuple(
            PCoderConfig(module=module, predictor=predictor, hyperparameters=values)
            for module, predictor, values in zip(modules, predictors, per_pcoder, strict=True)
        ),
        input_size=tuple(input_size),
        name=name,
        gradient_scaling=gradient_scaling,
        timesteps=timesteps,
    )
    pnet = predify(backbone, config)
    if feedback_weights is not None:
        load_feedback(pnet, feedback_weights)
    return pnet
