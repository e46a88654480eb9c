"""Exception types raised for user errors.

Every error a user can cause (a bad config, a missing file, a value out of range) is a
[`PredifyError`][predify.errors.PredifyError]; the CLI prints its message on one line and exits
non-zero, without a
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import TypeVar

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConfigWarning",
    "DataError",
    "NonFiniteLossError",
    "OutputInUseError",
    "PredifyError",
    "TuningError",
    "UsageError",
    "unknown_name",
    "warn_outside_predify",
]


class PredifyError(Exception):
    """Base class of every user-facing predify error."""


class ConfigError(PredifyError, ValueError):
    """A config (file, dict or object) that cannot describe a valid predictive network."""


class DataError(PredifyError, ValueError):
    """Input data that is missing, empty, of the wrong shape or out of range."""


class CheckpointError(PredifyError, ValueError):
    """A checkpoint file that is missing, unreadable or does not fit the network."""


class OutputInUseError(DataError):
    """An output folder another live process is writing into (it holds the folder's lock)."""


class UsageError(ConfigError):
    """A command line that does not parse (an unknown option, a missing or malformed value)."""


class NonFiniteLossError(PredifyError, FloatingPointError):
    """A training loss became NaN or infinite; the optimiser step was not taken."""


class TuningError(PredifyError):
    """Tuning cannot go on: the loss or a gradient became NaN or infinite."""


class ConfigWarning(UserWarning):
    """A config value that is accepted as the original Predify accepted it, but not as written:
    a value it ignored (a feedback weight on the top pcoder, per-pcoder values under shared
    hyperparameters) or a field it defaulted (``gradient_scaling``, ``shared_hyperparameters``).
    The message names the field and says what is used instead."""


def warn_outside_predify(message: str, category: type[Warning] = ConfigWarning) -> None:
    """``warnings.warn`` pointing at the first caller outside the predify package, so that the
    warning names the user's line, not predify's."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame = sys._getframe(1)
    level = 2
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        package
    ):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def unknown_name(kind: str, name: str, known: Iterable[str]) -> ConfigError:
    """``ConfigError("unknown KIND 'NAME'; did you mean ...? (available: ...)")``."""
    names = sorted(known)
    near = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return ConfigError(f"unknown {kind} {name!r}{hint} (available: {', '.join(names)})")


_Value = TypeVar("_Value")


def look_up(kind: str, name: str, table: Mapping[str, _Value]) -> _Value:
    """``table[name]``, or the [`unknown_name()`][predify.errors.unknown_name] error for
    ``kind``."""
    if name not in table:
        raise unknown_name(kind, name, table)
    return table[name]
