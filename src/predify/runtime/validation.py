"""The one check of the numbers a job's settings carry: counts and ranges.

Every job validates its settings before it does any work, so a bad value is one line naming the
setting (as the user spelled it) and what was expected, never a traceback from deep inside.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError

__all__ = ["check_int", "check_range"]


def check_int(value: Any, name: str, minimum: int | None = 1) -> int:
    """``value`` if it is an integer >= ``minimum`` (bools refused); else a one-line ConfigError.

    Args:
        value: the setting's value.
        name: the setting as the user spelled it (``"--epochs"`` from the CLI, ``"epochs"`` in
            Python), named in the error.
        minimum: the smallest value allowed; None: any integer (a seed).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        expected = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise ConfigError(f"{name}: expected {expected}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def check_range(
    value: Any,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float if it is a finite number in the range; else a one-line ConfigError.

    The range is ``[low, high]``; ``low_open``/``high_open`` exclude an end.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}: expected a finite number, got {value!r}")
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if below or above:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        bounds = f"{left}{low:g}, {high:g}{right}"
        raise ConfigError(f"{name}: expected a number in {bounds}, got {value!r}")
    return float(value)
