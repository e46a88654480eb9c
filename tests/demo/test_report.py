"""The demo's report on hand-made seed results: means, intervals and the words they produce."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from predify.config import Hyperparameters
from predify.demo import QUICK
from predify.demo.markdown import markdown_report, summary_table
from predify.demo.report import REPORT_FORMAT, DemoReport, RunFacts, TuningSummary
from predify.demo.seeds import SeedResult
from predify.demo.summary import build_report
from predify.errors import DataError
from predify.tune.collapse import ScaleTrace

DATA = Path(__file__).parent / "data"

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
            Hyperparameters(0.8, 0.1 + 0.01 * seed, 0.01),
            Hyperparameters(0.85, 0.05, 0.01),
            Hyperparameters(0.9, 0.0, 0.01),
        ],
        0.5: [
            Hyperparameters(0.3, 0.6 + 0.01 * seed, 0.01),
            Hyperparameters(0.7, 0.2, 0.01),
            Hyperparameters(0.9, 0.0, 0.01),
        ],
    }
    return SeedResult(
        seed=seed,
        correct=correct,
        prediction_error={sigma: np.full((STEPS + 1, 3), 0.01) for sigma in (0.0, 0.5)},
        correlation_distance={0.5: np.stack([np.linspace(0.5, 0.4, STEPS + 1)] * 3)},
        distance_ends={0.5: ends},
        tuned=tuned,
        tuning={sigma: TuningSummary(3, 0.1, False, 2.0, 1.5) for sigma in (0.0, 0.5)},
        backbone_val_accuracy=0.9,
        backbone_train_loss=[1.0],
        feedback_train_loss=[{"total": 1.0}],
        pcoder_names=["pcoder1", "pcoder2", "pcoder3"],
        paper_hyperparameters=[],
        timings={},
        scales=_scales(seed),
    )


def _scales(seed: int) -> dict[tuple[str, float], ScaleTrace]:
    """Paper dynamics keep their scale; the tuned ones at sigma 0.5 shrink pcoder1 and pcoder2
    to a quarter (a collapse), pcoder3 only to 0.6 of its start."""
    steady = ScaleTrace((8.0, 8.0, 8.0), ((50.0,) * 3, (50.0,) * 3, (60.0,) * 3))
    collapsed = ScaleTrace(
        (8.0, 4.0, 2.0 + seed), ((50.0, 25.0, 12.5), (52.0, 26.0, 13.0), (60.0, 45.0, 36.0))
    )
    return {
        ("paper", 0.0): steady,
        ("paper", 0.5): steady,
        ("tuned", 0.0): steady,
        ("tuned", 0.5): collapsed,
    }


RUN = RunFacts(
    quick=True,
    train_images=600,
    test_images=IMAGES,
    split_seed=0,
    backbone_epochs=4,
    feedback_epochs=2,
    tune_steps=3,
    tune_batch_size=32,
)


@pytest.fixture(scope="module")
def typed() -> DemoReport:
    # Paper feedback at sigma 0.5: +40, -40 and 0 images: the seeds disagree.
    return build_report([_seed(0, 40), _seed(1, -40), _seed(2, 0)], SETTINGS, RUN)


@pytest.fixture(scope="module")
def report(typed: DemoReport) -> dict:
    """What report.json holds."""
    return json.loads(json.dumps(typed.to_json()))


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
    lambdas = [f for f in findings if f.startswith("Tuned feedback (λ) of")]
    assert len(lambdas) == 2  # the top pcoder has no feedback
    assert "0.11, 0.61 at sigma 0.0, 0.5" in lambdas[0] and lambdas[0].endswith("(grows).")
    # pcoder2's lambda is 0.05 -> 0.2 in every seed: an interval of zero width above 0.
    assert lambdas[1].endswith("(grows).")
    assert "feedback changes most at the lowest pcoder (changes +0.50, +0.15" in text
    peaks = [f for f in findings if f.startswith("Tuned feedback at sigma")]
    assert len(peaks) == 1 and peaks[0].startswith("Tuned feedback at sigma 0.0 is best at t = 1")
    assert "+15.0 [" in peaks[0] and "against +0.0" in peaks[0]
    distances = next(f for f in findings if f.startswith("Correlation distance"))
    assert distances.count("(moves toward the clean one)") == 3


def test_tables_show_the_numbers(typed: DemoReport) -> None:
    table = summary_table(typed)
    assert "means over 3 seeds (0, 1, 2)" in table
    row = next(line for line in table.splitlines() if line.strip().startswith("0.5"))
    assert " 50.0 " in row and "+20.0" in row
    markdown = markdown_report(typed)
    assert "**3 seeds** (0, 1, 2)" in markdown and "+20.0, +20.0, +20.0" in markdown
    # pcoder1's tuned values at sigma 0.5, seed means: feedforward 0.3, feedback 0.61.
    assert "| 0.5 | 0.30 / 0.61 / 0.09 / 0.01 |" in markdown


def test_report_json_reads_back_to_the_same_report(typed: DemoReport, report: dict) -> None:
    again = DemoReport.from_json(report)
    assert again.to_json() == report
    assert again.level(0.5).change("tuned").mean == pytest.approx(0.2)
    assert markdown_report(again) == markdown_report(typed)


def test_a_report_written_before_the_redesign_still_reads() -> None:
    """tests/demo/data/report-v2.json was written by the code before the typed report (see the
    README there), from the seeds 0 (+40 images at sigma 0.5) and 1 (-40) of this module."""
    old = json.loads((DATA / "report-v2.json").read_text())
    assert old["format"] == REPORT_FORMAT
    report = DemoReport.from_json(old)
    assert report.seeds == [0, 1] and report.pcoder_names == ["pcoder1", "pcoder2", "pcoder3"]
    paper = report.level(0.5).change("paper")
    assert paper.per_seed == pytest.approx((0.1, -0.1))  # +40 and -40 of 400 images
    assert report.per_seed[1].levels[1].tuned_hyperparameters[0].feedback == pytest.approx(0.61)
    assert report.findings == old["findings"]
    assert report.run.test_images == IMAGES and report.run.tune_images == 0  # not in the file
    assert "**2 seeds** (0, 1)" in markdown_report(report)


def test_a_report_of_another_format_is_refused_in_one_line() -> None:
    old = json.loads((DATA / "report-v2.json").read_text())
    with pytest.raises(DataError, match="predify-demo-report-v1") as error:
        DemoReport.from_json({**old, "format": "predify-demo-report-v1"})
    assert "\n" not in str(error.value)


def test_a_collapse_is_tabled_and_warned_about(typed: DemoReport) -> None:
    tuned = typed.level(0.5).scales["tuned"]
    # Seeds 0, 1, 2: logit scale at T 2, 3, 4, mean 3.
    assert tuned.logit_scale == pytest.approx((8.0, 4.0, 3.0))
    warnings = [line for line in typed.findings if line.startswith("WARNING")]
    assert len(warnings) == 1 and "sigma 0.5" in warnings[0]
    assert "pcoder1 50 -> 12.5" in warnings[0] and "pcoder3" not in warnings[0]
    assert any(line.startswith("Tuned dynamics at sigma 0.0 keep") for line in typed.findings)
    markdown = markdown_report(typed)
    assert "| 0.5 | tuned | 8 -> 3 | 50 -> 12.5 | 52 -> 13 | 60 -> 36 |" in markdown
