"""The across-seed interval and the worker count of the demo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from predify.demo.seeds import best_worker_count
from predify.demo.statistics import seed_interval, t_quantile


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 11, 15, 30, 100])
def test_t_quantile_matches_scipy(df: int) -> None:
    assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), abs=5e-4)


def test_t_quantile_refuses_zero_degrees_of_freedom() -> None:
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0)


def test_seed_interval_by_hand() -> None:
    # Two seeds, four images. Worked by hand:
    # mean 4/8 = 0.5; per-seed means 0.75, 0.25 -> variance (ddof 1) 0.125, / 2 seeds = 0.0625;
    # per-image means 0.5, 0, 1, 0.5 -> variance (ddof 1) 0.5 / 3, / 4 images = 0.041667;
    # se = sqrt(0.104167) = 0.322749; t_0.975(1) = 12.706 -> half-width 4.10085.
    result = seed_interval([[1, 0, 1, 1], [0, 0, 1, 0]])
    assert result.mean == pytest.approx(0.5)
    assert result.per_seed == pytest.approx([0.75, 0.25])
    assert result.high - result.mean == pytest.approx(12.706 * math.sqrt(0.0625 + 0.5 / 12))
    assert result.mean - result.low == pytest.approx(result.high - result.mean)


def test_one_seed_uses_the_normal_quantile_and_only_images() -> None:
    values = np.array([[1.0, 0.0, 1.0, 1.0, 0.0]])
    result = seed_interval(values)
    half = 1.959964 * values[0].std(ddof=1) / math.sqrt(5)
    assert (result.low, result.high) == pytest.approx((0.6 - half, 0.6 + half))


def test_disagreeing_seeds_widen_the_interval() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 2, size=200).astype(float)
    agree = seed_interval(np.stack([images, images, images]))
    shifted = np.stack([images, np.roll(images, 1) * 0, images])  # one seed gets nothing right
    disagree = seed_interval(shifted)
    assert agree.high - agree.low < disagree.high - disagree.low
    # Identical seeds: no seed term, only the image term (with the t quantile of 2 df).
    half = 4.303 * images.std(ddof=1) / math.sqrt(200)
    assert agree.high - agree.mean == pytest.approx(half)


def test_seed_interval_refuses_bad_shapes() -> None:
    with pytest.raises(ValueError, match="seeds >= 1, images >= 2"):
        seed_interval([1.0, 0.0])
    with pytest.raises(ValueError, match="seeds >= 1, images >= 2"):
        seed_interval([[1.0]])


@pytest.mark.parametrize(
    ("seeds", "cores", "expected"),
    [
        (3, 2, 3),  # all at once: 1.5 seed-times, against 2 for two rounds
        (2, 2, 2),
        (4, 2, 2),  # 2 rounds of 2 and 1 round of 4 both take 2: fewer processes
        (1, 2, 1),
        (3, 1, 1),
        (5, 2, 5),  # 2.5 seed-times, against 3 for 2 + 2 + 1
        (3, 16, 3),
    ],
)
def test_best_worker_count(seeds: int, cores: int, expected: int) -> None:
    assert best_worker_count(seeds, cores) == expected
