"""The demo's report on hand-made seed results: means, intervals and the words they produce."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from predify.demo import QUICK
from predify.demo.report import build_report, markdown_report, summary_table
from predify.demo.seeds import SeedResult

IMAGES = 400
STEPS = 2
SETTINGS = replace(QUICK, noise_levels=(0.0, 0.5), timesteps=STEPS, bootstrap_resamples=100)


def _correct(right_at: list[int]) -> np.ndarray:
    """bool [T+1, IMAGES]: the first right_at[t] images are right at timestep t."""
    table = np.zeros((STEPS + 1, IMAGES), dtype=bool)
    for t, count in enumerate(right_at):
        table[t, :count] = True
    return table


def _seed(seed: int, paper_gain_at_half: int) -> SeedResult:
    flat = _correct([200, 200, 200])
    correct = {
        ("paper", 0.0): flat,
        ("shuffled_feedback", 0.0): flat,
        # Tuned at sigma 0: +60 images at t = 1, back to where it started at t = 2.
        ("tuned", 0.0): _correct([200, 260, 200]),
        # Paper feedback at sigma 0.5: a gain that differs between seeds.
        ("paper", 0.5): _correct([200, 200, 200 + paper_gain_at_half]),
        ("clipped", 0.5): flat,
        ("shuffled_feedback", 0.5): flat,
        # Tuned feedback at sigma 0.5: +80 of 400 images (+20 points) in every seed.
        ("tuned", 0.5): _correct([200, 240, 280]),
    }
    rng = np.random.default_rng(seed)
    ends = np.empty((3, 2, IMAGES))
    ends[:, 0] = 0.5
    ends[:, 1] = 0.4 + rng.normal(0.0, 0.05, size=(3, IMAGES))  # closer to the clean ones
    tuned = {
        0.0: [
            {"feedforward": 0.8, "feedback": 0.1 + 0.01 * seed, "memory": 0.1 - 0.01 * seed,
             "pc": 0.01},
            {"feedforward": 0.85, "feedback": 0.05, "memory": 0.1, "pc": 0.01},
            {"feedforward": 0.9, "feedback": 0.0, "memory": 0.1, "pc": 0.01},
        ],
        0.5: [
            {"feedforward": 0.3, "feedback": 0.6 + 0.01 * seed, "memory": 0.1 - 0.01 * seed,
             "pc": 0.01},
            {"feedforward": 0.7, "feedback": 0.2, "memory": 0.1, "pc": 0.01},
            {"feedforward": 0.9, "feedback": 0.0, "memory": 0.1, "pc": 0.01},
        ],
    }  # fmt: skip
    return SeedResult(
        seed=seed,
        correct=correct,
        prediction_error={sigma: np.full((STEPS + 1, 3), 0.01) for sigma in (0.0, 0.5)},
        correlation_distance={0.5: np.stack([np.linspace(0.5, 0.4, STEPS + 1)] * 3)},
        distance_ends={0.5: ends},
        tuned=tuned,
        tuning={sigma: {"steps": 3} for sigma in (0.0, 0.5)},
        backbone_val_accuracy=0.9,
        backbone_train_loss=[1.0],
        feedback_train_loss=[{"total": 1.0}],
        pcoder_names=["pcoder1", "pcoder2", "pcoder3"],
        paper_hyperparameters=[],
        timings={},
    )


@pytest.fixture(scope="module")
def report() -> dict:
    # Paper feedback at sigma 0.5: +40, -40 and 0 images: the seeds disagree.
    results = [_seed(0, 40), _seed(1, -40), _seed(2, 0)]
    run = {
        "quick": True,
        "train_images": 600,
        "test_images": IMAGES,
        "split_seed": 0,
        "backbone_epochs": 4,
        "feedback_epochs": 2,
        "tune_steps": 3,
        "tune_batch_size": 32,
    }
    return build_report(results, SETTINGS, run).to_json()


def test_means_and_intervals(report: dict) -> None:
    assert report["seeds"] == [0, 1, 2]
    tuned = report["change_t0_to_T_tuned"]["0.5"]
    assert tuned["mean"] == pytest.approx(0.2)
    assert tuned["per_seed"] == pytest.approx([0.2, 0.2, 0.2])
    # Identical seeds: only the image term, t quantile of 2 df. 80 ones among 400 differences:
    # variance (ddof 1) = (80 * 0.8^2 + 320 * 0.2^2) / 399.
    half = 4.303 * np.sqrt((80 * 0.64 + 320 * 0.04) / 399 / IMAGES)
    assert (tuned["low"], tuned["high"]) == pytest.approx((0.2 - half, 0.2 + half))
    paper = report["change_t0_to_T"]["0.5"]
    assert paper["per_seed"] == pytest.approx([0.1, -0.1, 0.0])
    assert paper["low"] < 0 < paper["high"]
    assert report["tuned_minus_paper_at_T"]["0.5"]["mean"] == pytest.approx(0.2)
    assert report["accuracy_tuned"]["0.5"] == pytest.approx([0.5, 0.6, 0.7])
    assert report["tuned_hyperparameters"]["0.5"][0]["feedback"] == pytest.approx(0.61)
    assert report["correlation_distance"]["0.5"]["pcoder1"] == pytest.approx([0.5, 0.45, 0.4])
    assert report["backbone"]["feedforward_accuracy"]["0.5"]["mean"] == pytest.approx(0.5)
    assert report["best_timestep_tuned"]["0.5"]["timestep"] == 2
    assert report["best_timestep_tuned"]["0.0"]["timestep"] == 1
    assert report["best_timestep_tuned"]["0.0"]["mean"] == pytest.approx(0.15)


def test_words_follow_the_numbers(report: dict) -> None:
    findings = report["findings"]
    text = "\n".join(findings)
    assert (
        "With tuned hyperparameters, feedback improves accuracy from t = 0 to t = 2 at sigma 0.5 "
        "(+20.0 [" in text
    )
    assert (
        "With the paper's hyperparameters, feedback improves accuracy from t = 0 to t = 2 at "
        "no noise level" in text
    )
    sigma_half = next(f for f in findings if f.startswith("sigma 0.5:"))
    assert "seeds +10.0, -10.0, +0.0" in sigma_half and "(no detectable change;" in sigma_half
    lambdas = [f for f in findings if f.startswith("Tuned lambda of")]
    assert len(lambdas) == 2  # the top pcoder has no feedback
    assert "0.11, 0.61 at sigma 0.0, 0.5" in lambdas[0] and lambdas[0].endswith("(grows).")
    # pcoder2's lambda is 0.05 -> 0.2 in every seed: an interval of zero width above 0.
    assert lambdas[1].endswith("(grows).")
    assert "lambda changes most at the lowest pcoder (changes +0.50, +0.15" in text
    peaks = [f for f in findings if f.startswith("Tuned feedback at sigma")]
    assert len(peaks) == 1 and peaks[0].startswith("Tuned feedback at sigma 0.0 is best at t = 1")
    assert "+15.0 [" in peaks[0] and "against +0.0" in peaks[0]
    distances = next(f for f in findings if f.startswith("Correlation distance"))
    assert distances.count("(moves toward the clean one)") == 3


def test_tables_show_the_numbers(report: dict) -> None:
    table = summary_table(report)
    assert "means over 3 seeds (0, 1, 2)" in table
    row = next(line for line in table.splitlines() if line.strip().startswith("0.5"))
    assert " 50.0 " in row and "+20.0" in row
    markdown = markdown_report(report)
    assert "**3 seeds** (0, 1, 2)" in markdown and "+20.0, +20.0, +20.0" in markdown
