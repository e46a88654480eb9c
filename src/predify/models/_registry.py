"""A registry of named model builders, as timm's ``create_model``."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ConfigError
from ..network import PredictiveNet

__all__ = ["create_model", "list_models", "register_model"]

Builder = TypeVar("Builder", bound=Callable[..., PredictiveNet])
_BUILDERS: dict[str, Callable[..., PredictiveNet]] = {}


def register_model(builder: Builder) -> Builder:
    """Decorator: make ``builder`` available to :func:`create_model` under its function name."""
    _BUILDERS[builder.__name__] = builder
    return builder


def list_models() -> list[str]:
    """The names :func:`create_model` accepts, sorted."""
    return sorted(_BUILDERS)


def create_model(name: str, **kwargs: Any) -> PredictiveNet:
    """Build a registered network by name: ``create_model("presnet18", weights=None)``."""
    builder = _BUILDERS.get(name)
    if builder is None:
        near = difflib.get_close_matches(name, list(_BUILDERS), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"unknown model {name!r}{hint} (available: {', '.join(list_models())})")
    return builder(**kwargs)
