"""Error rates, ImageNet-C corruption errors and bootstrap confidence intervals.

Pure functions on tensors / arrays; nothing here runs a model. Error rates are fractions in
[0, 1] (not percentages) throughout, to match the AlexNet constants.

Corruption error (Hendrycks & Dietterich, ICLR 2019, "Benchmarking Neural Network Robustness to
Common Corruptions and Perturbations"), for a corruption c with severities s = 1..5:

* CE_c = sum_s E_{s,c} / sum_s E^AlexNet_{s,c}
* mCE = mean of CE_c over the 15 ImageNet-C corruptions
* relative CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^AlexNet_{s,c} - E^AlexNet_clean)

For predictive networks unrolled over timesteps t = 0..T, the Predify paper reports the CE of the
network at step t relative to the same network at t = 0 (the feed-forward pass):
CE(t) = sum_s E_s(t) / sum_s E_s(0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch

from predify.errors import DataError
from predify.evaluate.corruptions import EXTRA_CORRUPTIONS, IMAGENET_C_CORRUPTIONS

__all__ = [
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_ERRORS",
    "ALEXNET_ERRORS_BY_SEVERITY",
    "IMAGENET_C_CORRUPTIONS",
    "IMAGENET_C_EXTRA_CORRUPTIONS",
    "ConfidenceInterval",
    "PairedDifference",
    "bootstrap_ci",
    "ce_relative_to_t0",
    "corruption_error",
    "mean_corruption_error",
    "misclassified",
    "paired_bootstrap_diff",
    "relative_corruption_error",
    "top1_error",
]

# Tensors, arrays and (nested) lists of numbers are all accepted.
ArrayLike = torch.Tensor | npt.ArrayLike

# The 15 corruptions whose CEs are averaged into mCE, in the benchmark's order, and the 4
# held-out ones released with ImageNet-C (reported separately, not part of mCE).
IMAGENET_C_EXTRA_CORRUPTIONS = EXTRA_CORRUPTIONS

# Top-1 error of torchvision's AlexNet on ImageNet-C, severities 1..5, as fractions.
# Source: hendrycks/robustness README.md, table "AlexNet ImageNet-C Error" ("Use these values to
# normalize raw corruption error to calculate mCE").
ALEXNET_ERRORS_BY_SEVERITY: Mapping[str, tuple[float, float, float, float, float]] = (
    MappingProxyType(
        {
            "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
            "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
            "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
            "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
            "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
            "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
            "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
            "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
            "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
            "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
            "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
            "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
            "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
            "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
            "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
            "speckle_noise": (0.66192, 0.74440, 0.90246, 0.94548, 0.97268),
            "gaussian_blur": (0.54732, 0.70444, 0.82574, 0.89864, 0.95940),
            "spatter": (0.47196, 0.62194, 0.75052, 0.84132, 0.90182),
            "saturate": (0.59342, 0.65514, 0.51174, 0.70834, 0.82260),
        }
    )
)

# AlexNet top-1 error per corruption averaged over the 5 severities: the normaliser of CE.
# Same source and table ("Average" column); also the ALEXNET_ERR list in google-research/augmix.
ALEXNET_ERRORS: Mapping[str, float] = MappingProxyType(
    {
        "gaussian_noise": 0.886428,
        "shot_noise": 0.894468,
        "impulse_noise": 0.922640,
        "defocus_blur": 0.819880,
        "glass_blur": 0.826268,
        "motion_blur": 0.785948,
        "zoom_blur": 0.798360,
        "snow": 0.866816,
        "frost": 0.826572,
        "fog": 0.819324,
        "brightness": 0.564592,
        "contrast": 0.853204,
        "elastic_transform": 0.646056,
        "pixelate": 0.717840,
        "jpeg_compression": 0.606500,
        "speckle_noise": 0.845388,
        "gaussian_blur": 0.787108,
        "spatter": 0.717512,
        "saturate": 0.658248,
    }
)

# Clean ImageNet top-1 error of torchvision's AlexNet (accuracy 56.52%), the E^AlexNet_clean of
# relative mCE.
ALEXNET_CLEAN_ERROR = 0.4348

# Bootstrap resamples are drawn in blocks of at most this many indices, so memory stays bounded
# (about 32 MB of int64) however many images there are.
_MAX_BLOCK_ELEMENTS = 1 << 22


class ConfidenceInterval(NamedTuple):
    """A two-sided percentile bootstrap interval; unpacks as ``low, high``."""

    low: float
    high: float


class PairedDifference(NamedTuple):
    """Difference of two accuracies on the same images with its bootstrap interval."""

    diff: float
    low: float
    high: float


def _to_float_array(values: ArrayLike, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        # float64 on the CPU also covers bool and bfloat16 tensors, which numpy cannot take as is.
        values = values.detach().to(device="cpu", dtype=torch.float64).numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} could not be read as numbers; expected an array of floats") from (
            error
        )
    if array.size == 0:
        raise DataError(f"{name} is empty; expected at least one value")
    if not np.all(np.isfinite(array)):
        raise DataError(f"{name} contains NaN or infinite values; expected finite numbers")
    return array


def _to_error_rates(values: ArrayLike, name: str, ndim: int) -> np.ndarray:
    array = _to_float_array(values, name)
    if array.ndim != ndim:
        expected = "[S] (one per severity)" if ndim == 1 else "[T+1, S] (timestep x severity)"
        raise DataError(f"{name} has shape {array.shape}; expected {expected}")
    if array.min() < 0.0 or array.max() > 1.0:
        raise DataError(
            f"{name} has values in [{array.min():g}, {array.max():g}]; expected error rates in "
            "[0, 1] (fractions, not percentages)"
        )
    return array


def _to_error_rate(value: float, name: str) -> float:
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise DataError(f"{name} = {value!r}; expected an error rate in [0, 1]")
    return number


def misclassified(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """bool [..., B]: whether each image's highest logit is not its label, at every leading
    index (every timestep of [T+1, B, K]). The one per-timestep scoring kernel: error rates,
    per-image outcomes for bootstrap intervals and accuracies all come from it.

    Ties go to the lowest class index (``argmax``), so a constant output is right only for class 0.

    Args:
        logits: [..., B, K] scores for K classes, e.g. [B, K] or [T+1, B, K].
        labels: int [B] (shared by all leading dims) or [..., B] class indices in [0, K).

    Raises:
        DataError: fewer than 2 dims, no images or classes, labels of the wrong shape, dtype or
            range.
    """
    logits = torch.as_tensor(logits)
    labels = torch.as_tensor(labels)
    if logits.dim() < 2:
        raise DataError(f"logits have shape {tuple(logits.shape)}; expected [..., B, K]")
    batch, num_classes = logits.shape[-2], logits.shape[-1]
    if batch == 0 or num_classes == 0:
        raise DataError(
            f"logits have shape {tuple(logits.shape)}; expected at least one image and one class"
        )
    if labels.shape != (batch,) and labels.shape != logits.shape[:-1]:
        raise DataError(
            f"labels have shape {tuple(labels.shape)} for logits {tuple(logits.shape)}; expected "
            f"[{batch}] or {list(logits.shape[:-1])}"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DataError(f"labels have dtype {labels.dtype}; expected integer class indices")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise DataError(
            f"labels range over [{low}, {high}]; expected class indices in [0, {num_classes - 1}]"
        )
    return logits.argmax(dim=-1) != labels.to(logits.device)


def top1_error(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of images whose highest logit is not the label
    ([`misclassified()`][predify.evaluate.metrics.misclassified]).

    Args:
        logits: [..., B, K] scores for K classes, e.g. [B, K] or [T+1, B, K] for the outputs of
            every timestep of a predictive network.
        labels: int [B] (shared by all leading dims) or [..., B] class indices in [0, K).

    Returns:
        float32 [...] error rates in [0, 1] on the logits' device: a 0-dim tensor for [B, K],
        [T+1] per-timestep errors for [T+1, B, K].
    """
    return misclassified(logits, labels).to(torch.float32).mean(dim=-1)


def corruption_error(errors_by_severity: ArrayLike, baseline_by_severity: ArrayLike) -> float:
    """CE = sum_s E_s / sum_s E_s^baseline for one corruption.

    For the ImageNet-C CE pass ``ALEXNET_ERRORS_BY_SEVERITY[name]`` as the baseline (or the
    entries of the severities you evaluated, in the same order).

    Args:
        errors_by_severity: [S] error rates of the evaluated network, one per severity.
        baseline_by_severity: [S] error rates of the baseline network at the same severities.

    Raises:
        DataError: empty or mismatched shapes, rates outside [0, 1], a baseline summing to 0.
    """
    errors = _to_error_rates(errors_by_severity, "errors_by_severity", ndim=1)
    baseline = _to_error_rates(baseline_by_severity, "baseline_by_severity", ndim=1)
    if errors.shape != baseline.shape:
        raise DataError(
            f"errors_by_severity has {errors.size} severities and baseline_by_severity has "
            f"{baseline.size}; expected the same severities in both"
        )
    baseline_total = baseline.sum()
    if baseline_total <= 0.0:
        raise DataError("baseline_by_severity sums to 0; expected a baseline with some errors")
    return float(errors.sum() / baseline_total)


def mean_corruption_error(
    ce_by_corruption: Mapping[str, float], corruptions: Sequence[str] | None = None
) -> float:
    """mCE: the mean of per-corruption CEs.

    Args:
        ce_by_corruption: CE per corruption name.
        corruptions: names to average over; every one must be present. If None: the 15
            ImageNet-C corruptions when all of them are present (extras such as ``speckle_noise``
            are then left out, as in the benchmark), otherwise every corruption given.

    Raises:
        DataError: no CEs, a requested corruption missing, or a non-finite / negative CE.
    """
    if not ce_by_corruption:
        raise DataError("ce_by_corruption is empty; expected at least one corruption's CE")
    if corruptions is None:
        names: Sequence[str] = (
            IMAGENET_C_CORRUPTIONS
            if all(name in ce_by_corruption for name in IMAGENET_C_CORRUPTIONS)
            else sorted(ce_by_corruption)
        )
    else:
        names = list(corruptions)
        if not names:
            raise DataError("corruptions is empty; expected at least one corruption name")
        missing = [name for name in names if name not in ce_by_corruption]
        if missing:
            raise DataError(
                f"ce_by_corruption lacks {', '.join(missing)}; expected a CE for every one of "
                f"{', '.join(names)}"
            )
    values = []
    for name in names:
        value = float(ce_by_corruption[name])
        if not (math.isfinite(value) and value >= 0.0):
            raise DataError(f"CE of {name} = {value!r}; expected a finite value >= 0")
        values.append(value)
    return float(np.mean(values))


def relative_corruption_error(
    errors: ArrayLike,
    clean_error: float,
    baseline_errors: ArrayLike,
    baseline_clean: float,
) -> float:
    """Relative CE = sum_s (E_s - E_clean) / sum_s (B_s - B_clean).

    Measures how much accuracy is lost to the corruption, relative to how much the baseline loses.
    For ImageNet-C use ``ALEXNET_ERRORS_BY_SEVERITY[name]`` and ``ALEXNET_CLEAN_ERROR``.

    Args:
        errors: [S] corrupted error rates of the evaluated network.
        clean_error: its clean error rate.
        baseline_errors: [S] corrupted error rates of the baseline at the same severities.
        baseline_clean: the baseline's clean error rate.

    Raises:
        DataError: mismatched shapes, rates outside [0, 1], or a baseline whose corrupted errors
            do not exceed its clean error in total (the ratio would be undefined or flip sign).
    """
    corrupted = _to_error_rates(errors, "errors", ndim=1)
    baseline = _to_error_rates(baseline_errors, "baseline_errors", ndim=1)
    if corrupted.shape != baseline.shape:
        raise DataError(
            f"errors has {corrupted.size} severities and baseline_errors has {baseline.size}; "
            "expected the same severities in both"
        )
    clean = _to_error_rate(clean_error, "clean_error")
    baseline_clean_rate = _to_error_rate(baseline_clean, "baseline_clean")
    baseline_drop = float((baseline - baseline_clean_rate).sum())
    if baseline_drop <= 0.0:
        raise DataError(
            f"baseline errors exceed the baseline clean error by {baseline_drop:g} in total; "
            "expected a positive degradation to normalise by"
        )
    return float((corrupted - clean).sum()) / baseline_drop


def ce_relative_to_t0(errors: ArrayLike) -> np.ndarray:
    """CE of each timestep relative to the same network at t = 0 (the Predify paper's convention).

    CE(t) = sum_s E_s(t) / sum_s E_s(0), so CE(0) = 1 and CE(t) < 1 means the feedback dynamics
    reduced the corruption error.

    Args:
        errors: [T+1, S] error rates, row t = timestep t, column s = severity.

    Returns:
        float64 [T+1].

    Raises:
        DataError: not 2-D, empty, rates outside [0, 1], or zero total error at t = 0.
    """
    table = _to_error_rates(errors, "errors", ndim=2)
    totals = table.sum(axis=1)
    if totals[0] <= 0.0:
        raise DataError(
            "errors at t = 0 sum to 0 over severities; CE relative to t = 0 is undefined"
        )
    return totals / totals[0]


def _check_bootstrap_settings(n_resamples: int, confidence: float) -> None:
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise DataError(f"n_resamples = {n_resamples!r}; expected a positive integer")
    if not (0.0 < float(confidence) < 1.0):
        raise DataError(f"confidence = {confidence!r}; expected a level in (0, 1), e.g. 0.95")


def _bootstrap_statistics(
    values: np.ndarray,
    stat: Callable[..., np.ndarray],
    n_resamples: int,
    seed: int,
) -> np.ndarray:
    """``stat`` of ``n_resamples`` resamples (with replacement) of ``values`` [N]; returns [R]."""
    rng = np.random.default_rng(seed)
    size = values.shape[0]
    block = max(1, _MAX_BLOCK_ELEMENTS // size)
    results = []
    for start in range(0, n_resamples, block):
        count = min(block, n_resamples - start)
        indices = rng.integers(0, size, size=(count, size))
        block_stats = np.asarray(stat(values[indices], axis=-1), dtype=np.float64)
        if block_stats.shape != (count,):
            raise DataError(
                f"stat returned shape {block_stats.shape} for resamples of shape {(count, size)}; "
                "expected one number per resample (a reduction like np.mean taking axis=-1)"
            )
        results.append(block_stats)
    return np.concatenate(results)


def _percentile_interval(statistics: np.ndarray, confidence: float) -> ConfidenceInterval:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(statistics, [tail, 1.0 - tail])
    return ConfidenceInterval(float(low), float(high))


def bootstrap_ci(
    values: ArrayLike,
    stat: Callable[..., np.ndarray] = np.mean,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    """Percentile bootstrap confidence interval of ``stat(values)``.

    Args:
        values: [N] per-item values, e.g. per-image 0/1 correctness.
        stat: reduction called as ``stat(array [R, N], axis=-1) -> [R]`` (np.mean, np.median, ...).
        n_resamples: number of bootstrap resamples R.
        confidence: coverage of the two-sided interval.
        seed: seed of the local generator; the same inputs and seed give the same interval.

    Returns:
        (low, high), the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the bootstrap
        distribution.

    Raises:
        DataError: values not 1-D, empty or non-finite; bad n_resamples or confidence.
    """
    array = _to_float_array(values, "values")
    if array.ndim != 1:
        raise DataError(f"values have shape {array.shape}; expected a 1-D array [N]")
    _check_bootstrap_settings(n_resamples, confidence)
    statistics = _bootstrap_statistics(array, stat, int(n_resamples), seed)
    return _percentile_interval(statistics, float(confidence))


def _to_correctness(values: ArrayLike, name: str) -> np.ndarray:
    array = _to_float_array(values, name)
    if array.ndim != 1:
        raise DataError(f"{name} has shape {array.shape}; expected a 1-D array [N] of 0/1")
    if not np.all((array == 0.0) | (array == 1.0)):
        raise DataError(f"{name} has values other than 0 and 1; expected per-image correctness")
    return array


def paired_bootstrap_diff(
    correct_a: ArrayLike,
    correct_b: ArrayLike,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Accuracy of setting A minus accuracy of setting B on the same images, with a paired CI.

    Images are resampled jointly (the same indices for A and B), so the interval reflects only
    the disagreement between the settings, not the variation in image difficulty that both share.
    A positive difference means A is more accurate (lower error) than B.

    Args:
        correct_a: [N] per-image correctness (0/1 or bool) of setting A.
        correct_b: [N] per-image correctness of setting B on the same N images, in the same order.
        n_resamples: number of bootstrap resamples.
        confidence: coverage of the two-sided interval.
        seed: seed of the local generator.

    Returns:
        (diff, low, high): mean(correct_a) - mean(correct_b) and its percentile interval.

    Raises:
        DataError: shapes differ, not 1-D, empty, values other than 0/1, bad settings.
    """
    a = _to_correctness(correct_a, "correct_a")
    b = _to_correctness(correct_b, "correct_b")
    if a.shape != b.shape:
        raise DataError(
            f"correct_a has {a.size} images and correct_b has {b.size}; expected the same images "
            "in both"
        )
    _check_bootstrap_settings(n_resamples, confidence)
    per_image_diff = a - b
    statistics = _bootstrap_statistics(per_image_diff, np.mean, int(n_resamples), seed)
    low, high = _percentile_interval(statistics, float(confidence))
    return PairedDifference(float(per_image_diff.mean()), low, high)
