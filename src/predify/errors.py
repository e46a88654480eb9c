"""Exception types raised for user errors.

Every error a user can cause (a bad config, a missing file, a value out of range) is a
:class:`PredifyError`; the CLI prints its message on one line and exits non-zero, without a
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "NonFiniteLossError",
    "PredifyError",
    "TuningError",
    "UsageError",
]


class PredifyError(Exception):
    """Base class of every user-facing predify error."""


class ConfigError(PredifyError, ValueError):
    """A config (file, dict or object) that cannot describe a valid predictive network."""


class DataError(PredifyError, ValueError):
    """Input data that is missing, empty, of the wrong shape or out of range."""


class CheckpointError(PredifyError, ValueError):
    """A checkpoint file that is missing, unreadable or does not fit the network."""


class UsageError(ConfigError):
    """A command line that does not parse (an unknown option, a missing or malformed value)."""


class NonFiniteLossError(PredifyError, FloatingPointError):
    """A training loss became NaN or infinite; the optimiser step was not taken."""


class TuningError(PredifyError):
    """Tuning cannot go on: the loss or a gradient became NaN or infinite."""
