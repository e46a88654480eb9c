"""The optimisers of the decoders, by name: ``predify train --optimizer``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..runtime.validation import check_range

__all__ = ["OPTIMIZERS", "build_optimizer"]

#: Optimiser names accepted by [`FeedbackTrainer`][predify.train.trainer.FeedbackTrainer] and
#: ``predify train --optimizer``.
OPTIMIZERS = ("adam", "sgd", "rmsprop")


def build_optimizer(
    name: str,
    parameters: Sequence[nn.Parameter],
    *,
    lr: float,
    weight_decay: float,
    momentum: float,
) -> torch.optim.Optimizer:
    """The optimiser ``name`` over ``parameters`` (weight decay as an L2 term; momentum of SGD
    and RMSprop).

    Raises:
        ConfigError: an unknown name, or a rate, decay or momentum that is not a finite number
            >= 0 (the rate > 0).
    """
    check_range(lr, "lr", 0.0, low_open=True)
    check_range(weight_decay, "weight_decay", 0.0)
    check_range(momentum, "momentum", 0.0)
    key = str(name).lower()
    if key == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    if key == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if key == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ConfigError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, got {name!r}")
