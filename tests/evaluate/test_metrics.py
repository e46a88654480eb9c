"""Tests of predify.evaluate.metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from predify.errors import DataError
from predify.evaluate.metrics import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_ERRORS,
    ALEXNET_ERRORS_BY_SEVERITY,
    IMAGENET_C_CORRUPTIONS,
    IMAGENET_C_EXTRA_CORRUPTIONS,
    bootstrap_ci,
    ce_relative_to_t0,
    corruption_error,
    mean_corruption_error,
    paired_bootstrap_diff,
    relative_corruption_error,
    top1_error,
)

# Predictions (argmax per row): 0, 2, 0, 2 against labels 0, 1, 0, 2 -> one mistake in four.
LOGITS = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
LABELS = torch.tensor([0, 1, 0, 2])


# ---------------------------------------------------------------------------------------------
# top-1 error
# ---------------------------------------------------------------------------------------------


def test_top1_error_single_batch() -> None:
    error = top1_error(LOGITS, LABELS)
    assert error.shape == () and error.dtype == torch.float32
    assert error.item() == pytest.approx(0.25)


def test_top1_error_per_timestep() -> None:
    perfect = torch.nn.functional.one_hot(LABELS, 3).float()
    logits = torch.stack([LOGITS, perfect, -perfect])  # [T+1 = 3, B = 4, K = 3]
    errors = top1_error(logits, LABELS)
    # -one_hot makes the label the one class that cannot win, so every image is wrong at t = 2.
    assert errors.tolist() == pytest.approx([0.25, 0.0, 1.0])
    # Labels may also come per timestep.
    per_step_labels = LABELS.expand(3, 4)
    assert torch.equal(top1_error(logits, per_step_labels), errors)


def test_top1_error_ties_go_to_lowest_class() -> None:
    constant = torch.zeros(4, 3)
    assert top1_error(constant, torch.tensor([0, 0, 1, 2])).item() == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        (torch.zeros(3), torch.zeros(3, dtype=torch.long), r"logits have shape \(3,\); expected"),
        (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), "at least one image and one class"),
        (torch.zeros(4, 3), torch.zeros(5, dtype=torch.long), r"labels have shape \(5,\)"),
        (torch.zeros(4, 3), torch.zeros(4), "expected integer class indices"),
        (torch.zeros(4, 3), torch.tensor([0, 1, 2, 3]), r"labels range over \[0, 3\]"),
        (torch.zeros(4, 3), torch.tensor([0, -1, 2, 1]), r"expected class indices in \[0, 2\]"),
    ],
)
def test_top1_error_errors(logits: torch.Tensor, labels: torch.Tensor, message: str) -> None:
    with pytest.raises(DataError, match=message):
        top1_error(logits, labels)


# ---------------------------------------------------------------------------------------------
# AlexNet constants
# ---------------------------------------------------------------------------------------------


def test_alexnet_constants_are_complete_and_consistent() -> None:
    assert len(IMAGENET_C_CORRUPTIONS) == 15 and len(IMAGENET_C_EXTRA_CORRUPTIONS) == 4
    names = set(IMAGENET_C_CORRUPTIONS) | set(IMAGENET_C_EXTRA_CORRUPTIONS)
    assert set(ALEXNET_ERRORS) == names == set(ALEXNET_ERRORS_BY_SEVERITY)
    for name, by_severity in ALEXNET_ERRORS_BY_SEVERITY.items():
        assert len(by_severity) == 5
        # The published average column is the mean of the severity columns.
        assert np.mean(by_severity) == pytest.approx(ALEXNET_ERRORS[name], abs=1e-6)
    assert ALEXNET_ERRORS["gaussian_noise"] == 0.886428
    assert ALEXNET_ERRORS["jpeg_compression"] == 0.606500
    assert ALEXNET_CLEAN_ERROR == 0.4348


def test_alexnet_has_ce_one_and_mce_one() -> None:
    ces = {
        name: corruption_error(errors, errors)
        for name, errors in ALEXNET_ERRORS_BY_SEVERITY.items()
    }
    assert all(ce == pytest.approx(1.0) for ce in ces.values())
    assert mean_corruption_error(ces) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# CE, mCE, relative CE
# ---------------------------------------------------------------------------------------------


def test_corruption_error_toy_table() -> None:
    # (0.2 + 0.4) / (0.4 + 0.6) = 0.6
    assert corruption_error([0.2, 0.4], [0.4, 0.6]) == pytest.approx(0.6)
    assert corruption_error(np.array([0.1, 0.1]), torch.tensor([0.2, 0.2])) == pytest.approx(0.5)
    # Against AlexNet fog, a network with half of AlexNet's error at every severity has CE 0.5.
    fog = np.array(ALEXNET_ERRORS_BY_SEVERITY["fog"])
    assert corruption_error(fog / 2, fog) == pytest.approx(0.5)


def test_corruption_error_errors() -> None:
    with pytest.raises(DataError, match="has 2 severities and baseline_by_severity has 3"):
        corruption_error([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(DataError, match=r"errors_by_severity has values in \[0.1, 20\]"):
        corruption_error([0.1, 20.0], [0.1, 0.2])
    with pytest.raises(DataError, match="errors_by_severity is empty"):
        corruption_error([], [])
    with pytest.raises(DataError, match="baseline_by_severity sums to 0"):
        corruption_error([0.1], [0.0])
    with pytest.raises(DataError, match=r"has shape \(1, 2\); expected \[S\]"):
        corruption_error([[0.1, 0.2]], [0.1, 0.2])
    with pytest.raises(DataError, match="NaN or infinite"):
        corruption_error([float("nan")], [0.5])


def test_mean_corruption_error_uses_the_15_when_present() -> None:
    assert mean_corruption_error({"a": 0.5, "b": 1.0}) == pytest.approx(0.75)
    ces = dict.fromkeys(IMAGENET_C_CORRUPTIONS, 0.8)
    ces["speckle_noise"] = 10.0  # an extra: not part of mCE
    assert mean_corruption_error(ces) == pytest.approx(0.8)
    assert mean_corruption_error(ces, corruptions=["speckle_noise", "fog"]) == pytest.approx(5.4)


def test_mean_corruption_error_errors() -> None:
    with pytest.raises(DataError, match="ce_by_corruption is empty"):
        mean_corruption_error({})
    with pytest.raises(DataError, match="ce_by_corruption lacks fog, snow; expected a CE"):
        mean_corruption_error({"contrast": 0.5}, corruptions=["contrast", "fog", "snow"])
    with pytest.raises(DataError, match="CE of a = nan"):
        mean_corruption_error({"a": float("nan")})
    with pytest.raises(DataError, match="corruptions is empty"):
        mean_corruption_error({"a": 1.0}, corruptions=[])


def test_relative_corruption_error_toy_table() -> None:
    # ((0.3 - 0.2) + (0.4 - 0.2)) / ((0.6 - 0.4) + (0.8 - 0.4)) = 0.3 / 0.6
    assert relative_corruption_error([0.3, 0.4], 0.2, [0.6, 0.8], 0.4) == pytest.approx(0.5)
    alexnet_fog = ALEXNET_ERRORS_BY_SEVERITY["fog"]
    assert relative_corruption_error(
        alexnet_fog, ALEXNET_CLEAN_ERROR, alexnet_fog, ALEXNET_CLEAN_ERROR
    ) == pytest.approx(1.0)


def test_relative_corruption_error_errors() -> None:
    with pytest.raises(DataError, match="errors has 2 severities and baseline_errors has 1"):
        relative_corruption_error([0.3, 0.4], 0.2, [0.6], 0.4)
    with pytest.raises(DataError, match=r"clean_error = 1.5; expected an error rate in \[0, 1\]"):
        relative_corruption_error([0.3], 1.5, [0.6], 0.4)
    with pytest.raises(DataError, match="expected a positive degradation"):
        relative_corruption_error([0.3], 0.2, [0.4], 0.4)


def test_ce_relative_to_t0() -> None:
    errors = [[0.4, 0.6], [0.3, 0.5], [0.2, 0.3]]  # [T+1 = 3, S = 2]
    assert ce_relative_to_t0(errors).tolist() == pytest.approx([1.0, 0.8, 0.5])
    assert ce_relative_to_t0(torch.tensor([[0.5]])).tolist() == [1.0]
    with pytest.raises(DataError, match=r"has shape \(2,\); expected \[T\+1, S\]"):
        ce_relative_to_t0([0.4, 0.6])
    with pytest.raises(DataError, match="errors at t = 0 sum to 0"):
        ce_relative_to_t0([[0.0, 0.0], [0.1, 0.1]])
    with pytest.raises(DataError, match="fractions, not percentages"):
        ce_relative_to_t0([[40.0, 60.0]])


# ---------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------


def test_bootstrap_of_a_constant_has_zero_width() -> None:
    low, high = bootstrap_ci(np.full(50, 0.3))
    assert low == high == pytest.approx(0.3)


def test_bootstrap_ci_contains_the_mean_and_is_deterministic() -> None:
    values = np.random.default_rng(0).normal(1.0, 2.0, size=200)
    interval = bootstrap_ci(values, seed=5)
    assert interval.low < values.mean() < interval.high
    assert bootstrap_ci(values, seed=5) == interval
    assert bootstrap_ci(torch.from_numpy(values), seed=5) == interval
    assert bootstrap_ci(values, seed=6) != interval
    # Standard error of the mean is 2 / sqrt(200) ~ 0.14, so the 95% interval is about +-0.28.
    assert 0.4 < interval.high - interval.low < 0.75
    wider = bootstrap_ci(values, confidence=0.99, seed=5)
    assert wider.low < interval.low and wider.high > interval.high
    median_low, median_high = bootstrap_ci(values, stat=np.median, seed=5)
    assert median_low < np.median(values) < median_high


def test_bootstrap_ci_coverage_is_roughly_nominal() -> None:
    # 100 independent Bernoulli(0.7) samples of 400 images: a 95% interval should cover 0.7 in
    # about 95 of them; 85 leaves room for the bootstrap's slight under-coverage and chance.
    rng = np.random.default_rng(42)
    covered = 0
    for trial in range(100):
        sample = (rng.random(400) < 0.7).astype(float)
        low, high = bootstrap_ci(sample, n_resamples=500, seed=trial)
        covered += low <= 0.7 <= high
    assert covered >= 85


def test_bootstrap_ci_in_blocks_for_many_items() -> None:
    # 100k items -> resamples are drawn in blocks of 41; the result must still be sane.
    values = (np.random.default_rng(1).random(100_000) < 0.25).astype(float)
    low, high = bootstrap_ci(values, n_resamples=100)
    assert low < values.mean() < high and high - low < 0.01


def test_bootstrap_ci_errors() -> None:
    with pytest.raises(DataError, match="values is empty"):
        bootstrap_ci([])
    with pytest.raises(DataError, match=r"values have shape \(2, 2\); expected a 1-D array"):
        bootstrap_ci(np.zeros((2, 2)))
    with pytest.raises(DataError, match="n_resamples = 0; expected a positive integer"):
        bootstrap_ci([1.0, 2.0], n_resamples=0)
    with pytest.raises(DataError, match=r"confidence = 95; expected a level in \(0, 1\)"):
        bootstrap_ci([1.0, 2.0], confidence=95)
    with pytest.raises(DataError, match="expected one number per resample"):
        bootstrap_ci([1.0, 2.0], stat=lambda array, axis: array)


# ---------------------------------------------------------------------------------------------
# Paired bootstrap
# ---------------------------------------------------------------------------------------------


def test_paired_bootstrap_diff_hand_values() -> None:
    same = np.array([1, 0, 1, 1, 0])
    assert paired_bootstrap_diff(same, same) == (0.0, 0.0, 0.0)
    assert paired_bootstrap_diff(np.ones(10), np.zeros(10)) == (1.0, 1.0, 1.0)
    a = torch.tensor([True, True, True, False])
    b = torch.tensor([True, False, False, False])
    diff, low, high = paired_bootstrap_diff(a, b, seed=3)
    assert diff == pytest.approx(0.5)  # accuracy 0.75 - 0.25
    assert -1.0 <= low <= diff <= high <= 1.0
    assert paired_bootstrap_diff(a, b, seed=3) == (diff, low, high)


def test_paired_bootstrap_is_tighter_than_unpaired_on_correlated_settings() -> None:
    # B agrees with A except on 20 of 1000 images where A is right and B is wrong: the paired
    # interval excludes 0 although each accuracy alone is uncertain by about +-3%.
    rng = np.random.default_rng(0)
    correct_a = (rng.random(1000) < 0.6).astype(int)
    correct_b = correct_a.copy()
    correct_b[np.flatnonzero(correct_a)[:20]] = 0
    diff, low, high = paired_bootstrap_diff(correct_a, correct_b)
    assert diff == pytest.approx(0.02)
    assert 0.0 < low < diff < high < 0.04


def test_paired_bootstrap_diff_errors() -> None:
    with pytest.raises(DataError, match="correct_a has 3 images and correct_b has 2"):
        paired_bootstrap_diff([1, 0, 1], [1, 0])
    with pytest.raises(DataError, match="correct_b has values other than 0 and 1"):
        paired_bootstrap_diff([1, 0], [1, 2])
    with pytest.raises(DataError, match="correct_a is empty"):
        paired_bootstrap_diff([], [])
    with pytest.raises(DataError, match=r"correct_a has shape \(1, 2\); expected a 1-D array"):
        paired_bootstrap_diff([[1, 0]], [[1, 0]])
