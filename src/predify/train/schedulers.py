"""Learning-rate schedulers by name, for [`FeedbackTrainer`][predify.train.FeedbackTrainer] and the
CLI.

>>> settings = parse_scheduler("cosine-warm-restarts:t0=3")
>>> trainer = FeedbackTrainer(pnet, scheduler=settings.factory(epochs=50))  # doctest: +SKIP

Every scheduler here is stepped once per epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .._io import JsonObject
from ..errors import ConfigError
from ..runtime.validation import check_int, check_range

__all__ = ["SCHEDULERS", "SchedulerSettings", "build_scheduler", "parse_scheduler"]

#: Names accepted by [`parse_scheduler()`][predify.train.schedulers.parse_scheduler] and ``predify
#: train --scheduler``.
SCHEDULERS = ("none", "cosine-warm-restarts", "cosine", "step")

_OPTIONS: dict[str, dict[str, type]] = {
    "none": {},
    "cosine-warm-restarts": {"t0": int, "t_mult": int, "eta_min": float},
    "cosine": {"eta_min": float},
    "step": {"step_size": int, "gamma": float},
}


@dataclass(frozen=True)
class SchedulerSettings:
    """A learning-rate schedule, stepped once per epoch.

    Attributes:
        name: ``"none"``, ``"cosine-warm-restarts"`` (``CosineAnnealingWarmRestarts``: cosine
            from the initial rate to ``eta_min`` over ``t0`` epochs, then restart, each period
            ``t_mult`` times the last), ``"cosine"`` (``CosineAnnealingLR`` over the whole run)
            or ``"step"`` (``StepLR``: times ``gamma`` every ``step_size`` epochs).
    """

    name: str = "none"
    t0: int = 3
    t_mult: int = 1
    eta_min: float = 0.0
    step_size: int = 10
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.name not in SCHEDULERS:
            raise ConfigError(
                f"scheduler: expected one of {', '.join(SCHEDULERS)}, got {self.name!r}"
            )
        for key in ("t0", "t_mult", "step_size"):
            check_int(getattr(self, key), f"scheduler {key}")
        for key in ("eta_min", "gamma"):
            check_range(getattr(self, key), f"scheduler {key}", 0.0)

    def to_json(self) -> JsonObject:
        """The name and the options that apply to it (for run.json)."""
        data = asdict(self)
        return {"name": self.name, **{k: data[k] for k in _OPTIONS[self.name]}}

    def spec(self) -> str:
        """The text [`parse_scheduler()`][predify.train.schedulers.parse_scheduler] reads back:
        ``cosine-warm-restarts:t0=3,...``."""
        options = ",".join(f"{k}={v}" for k, v in self.to_json().items() if k != "name")
        return f"{self.name}:{options}" if options else self.name

    def factory(
        self, epochs: int
    ) -> Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler] | None:
        """A function building the scheduler on an optimiser (None for ``"none"``)."""
        if self.name == "none":
            return None
        return lambda optimizer: build_scheduler(self, optimizer, epochs)


def build_scheduler(
    settings: SchedulerSettings, optimizer: torch.optim.Optimizer, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler ``settings`` describe, over ``optimizer``, for a run of ``epochs``."""
    lr_scheduler = torch.optim.lr_scheduler
    if settings.name == "cosine-warm-restarts":
        return lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=settings.t0, T_mult=settings.t_mult, eta_min=settings.eta_min
        )
    if settings.name == "cosine":
        return lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, epochs), eta_min=settings.eta_min
        )
    if settings.name == "step":
        return lr_scheduler.StepLR(optimizer, step_size=settings.step_size, gamma=settings.gamma)
    raise ConfigError(f"scheduler {settings.name!r} builds no scheduler")


def parse_scheduler(text: str) -> SchedulerSettings:
    """``"none"``, ``"cosine"``, ``"cosine-warm-restarts:t0=3"``, ``"step:step_size=10,gamma=0.5"``.

    Raises:
        ConfigError: an unknown name or option, or a value of the wrong type, named.
    """
    name, _, rest = str(text).strip().partition(":")
    name = name.strip().lower()
    if name not in _OPTIONS:
        raise ConfigError(f"scheduler: expected one of {', '.join(SCHEDULERS)}, got {name!r}")
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, equals, raw = item.partition("=")
        key = key.strip().lower()
        kind = _OPTIONS[name].get(key)
        if not equals or kind is None:
            allowed = ", ".join(_OPTIONS[name]) or "none"
            raise ConfigError(
                f"scheduler {name}: unknown option {item!r} (expected KEY=VALUE with KEY one of: "
                f"{allowed})"
            )
        try:
            values[key] = kind(raw.strip())
        except ValueError:
            raise ConfigError(
                f"scheduler {name}: {key}={raw.strip()!r} is not a valid {kind.__name__}"
            ) from None
    return SchedulerSettings(name=name, **values)
