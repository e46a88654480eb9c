"""Across-seed summaries: means, and intervals that cover seed and test-image variation.

Every seed evaluates the same test images under the same noise draw, so a per-image difference
d[s, i] (seed s, image i; e.g. correct at t = T minus correct at t = 0) is a crossed design: seeds
vary the training, images vary the data. The interval of its mean is a t-interval whose standard
error adds the two sources,

    se^2 = var_s(mean_i d[s, i]) / S  +  var_i(mean_s d[s, i]) / N,

with S - 1 degrees of freedom (the seed term, estimated from S values, is the uncertain one;
with one seed there is no seed term and the normal quantile is used). The first term is the
spread of the per-seed results; the second, the test-image sampling of the seed-averaged
difference, which the between-seed spread cannot show since every seed sees the same images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._io import JsonObject

__all__ = ["Interval", "over_seeds", "seed_interval", "t_quantile"]

# Two-sided 95% quantiles of Student's t, t_{0.975}(df) for df = 1..10 (standard tables, e.g.
# NIST/SEMATECH e-Handbook of Statistical Methods, table 1.3.6.7.2).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
_Z975 = 1.959964


def t_quantile(df: int) -> float:
    """t_{0.975} with ``df`` degrees of freedom (>= 1).

    A table up to 10, then the expansion of t around the normal quantile to 1/df^3 (Abramowitz
    and Stegun 26.7.5; its error is below 2e-4 from df 11 on).
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% interval, and each seed's value where it is a mean over seeds.

    ``low`` and ``high`` are None when no interval can be given (one seed, nothing else
    resampled); ``per_seed`` is None for an interval of one seed alone.
    """

    mean: float
    low: float | None
    high: float | None
    per_seed: tuple[float, ...] | None = None

    def to_json(self) -> JsonObject:
        data: JsonObject = {"mean": self.mean, "low": self.low, "high": self.high}
        if self.per_seed is not None:
            data["per_seed"] = list(self.per_seed)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Interval:
        low, high, per_seed = data["low"], data["high"], data.get("per_seed")
        return cls(
            float(data["mean"]),
            None if low is None else float(low),
            None if high is None else float(high),
            None if per_seed is None else tuple(float(v) for v in per_seed),
        )


def over_seeds(values: Sequence[float]) -> Interval:
    """Mean and 95% t-interval over seeds of one number per seed (nothing else resampled)."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    per_seed = tuple(float(v) for v in array)
    if len(array) < 2:
        return Interval(mean, None, None, per_seed)
    half = t_quantile(len(array) - 1) * float(array.std(ddof=1)) / math.sqrt(len(array))
    return Interval(mean, mean - half, mean + half, per_seed)


def seed_interval(values: ArrayLike) -> Interval:
    """Mean of ``values`` [S seeds, N images] and its 95% interval (see the module docstring)."""
    table = np.asarray(values, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 2:
        raise ValueError(f"expected values [seeds >= 1, images >= 2], got shape {table.shape}")
    seeds, images = table.shape
    per_seed = table.mean(axis=1)
    per_image = table.mean(axis=0)
    variance = float(per_image.var(ddof=1)) / images
    if seeds > 1:
        variance += float(per_seed.var(ddof=1)) / seeds
        quantile = t_quantile(seeds - 1)
    else:
        quantile = _Z975
    half = quantile * math.sqrt(variance)
    mean = float(table.mean())
    return Interval(mean, mean - half, mean + half, tuple(float(v) for v in per_seed))
