"""The demo's statistics: from each seed's [`SeedResult`][predify.demo.seeds.SeedResult] to the
across-seed [`DemoReport`][predify.demo.report.DemoReport] (means, intervals over seeds and test
images, each seed's own paired intervals). The words come after, from
[`findings`][predify.demo.findings]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import Hyperparameters
from ..tune.collapse import ScaleTrace
from .evaluation import CONDITIONS
from .findings import findings
from .report import (
    ConditionResult,
    DemoReport,
    LevelSummary,
    RunFacts,
    SeedLevel,
    SeedSummary,
)
from .seeds import SeedResult
from .settings import DemoSettings
from .statistics import Interval, over_seeds, seed_interval

__all__ = ["build_report"]


def _correct(result: SeedResult, condition: str, sigma: float) -> np.ndarray:
    # Clean images are in [0, 1]: the clipped condition at sigma 0 is the main one.
    source = "paper" if condition == "clipped" and sigma == 0 else condition
    return result.correct[(source, sigma)].astype(np.float64)


def _difference(
    results: Sequence[SeedResult],
    first: tuple[str, int],
    second: tuple[str, int],
    sigma: float,
) -> Interval:
    """(condition, t) minus (condition, t), per test image and seed, with its interval."""
    rows = [
        _correct(r, first[0], sigma)[first[1]] - _correct(r, second[0], sigma)[second[1]]
        for r in results
    ]
    return seed_interval(np.stack(rows))


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _mean_values(values: Sequence[Sequence[Hyperparameters]]) -> tuple[Hyperparameters, ...]:
    """Per pcoder: the mean over seeds of each weight."""
    return tuple(
        Hyperparameters(
            float(np.mean([seed[p].feedforward for seed in values])),
            float(np.mean([seed[p].feedback for seed in values])),
            float(np.mean([seed[p].pc for seed in values])),
        )
        for p in range(len(values[0]))
    )


def _level(results: Sequence[SeedResult], sigma: float, steps: int) -> LevelSummary:
    names = results[0].pcoder_names
    conditions = {
        condition: ConditionResult(
            _floats(np.mean([_correct(r, condition, sigma).mean(axis=1) for r in results], axis=0)),
            _difference(results, (condition, steps), (condition, 0), sigma),
        )
        for condition in CONDITIONS
    }
    tuned_accuracy = conditions["tuned"].accuracy
    best = int(np.argmax(tuned_accuracy))  # the first of equal maxima
    noisy = sigma > 0
    return LevelSummary(
        sigma=sigma,
        conditions=conditions,
        feedforward_accuracy=seed_interval(
            np.stack([_correct(r, "paper", sigma)[0] for r in results])
        ),
        feedback_minus_shuffled=_difference(
            results, ("paper", steps), ("shuffled_feedback", steps), sigma
        ),
        tuned_minus_paper=_difference(results, ("tuned", steps), ("paper", steps), sigma),
        prediction_error={
            name: _floats(np.mean([r.prediction_error[sigma][:, p] for r in results], axis=0))
            for p, name in enumerate(names)
        },
        correlation_distance={
            name: _floats(np.mean([r.correlation_distance[sigma][p] for r in results], axis=0))
            for p, name in enumerate(names)
            if noisy
        },
        correlation_distance_change={
            name: seed_interval(
                np.stack(
                    [r.distance_ends[sigma][p, 1] - r.distance_ends[sigma][p, 0] for r in results]
                )
            )
            for p, name in enumerate(names)
            if noisy
        },
        tuned_hyperparameters=_mean_values([r.tuned[sigma] for r in results]),
        best_timestep_tuned=best,
        best_timestep_change=_difference(results, ("tuned", best), ("tuned", 0), sigma),
        scales={
            condition: ScaleTrace.mean([r.scales[(condition, sigma)] for r in results])
            for condition in ("paper", "tuned")
            if all((condition, sigma) in r.scales for r in results)
        },
    )


def _seed(
    result: SeedResult, levels: Sequence[float], steps: int, settings: DemoSettings
) -> SeedSummary:
    """One seed's series, with paired bootstrap intervals over its test images."""
    from ..evaluate.metrics import paired_bootstrap_diff

    def condition(name: str, sigma: float) -> ConditionResult:
        correct = _correct(result, name, sigma)
        value = paired_bootstrap_diff(
            correct[steps], correct[0], n_resamples=settings.bootstrap_resamples, seed=result.seed
        )
        return ConditionResult(
            tuple(float(a) for a in correct.mean(axis=1)),
            Interval(value.diff, value.low, value.high),
        )

    seed_levels = tuple(
        SeedLevel(
            conditions={name: condition(name, sigma) for name in CONDITIONS},
            tuned_hyperparameters=tuple(result.tuned[sigma]),
            tuning=result.tuning[sigma],
            correlation_distance={
                name: tuple(float(d) for d in result.correlation_distance[sigma][p])
                for p, name in enumerate(result.pcoder_names)
            }
            if sigma in result.correlation_distance
            else {},
        )
        for sigma in levels
    )
    return SeedSummary(
        seed=result.seed,
        levels=seed_levels,
        backbone_val_accuracy=result.backbone_val_accuracy,
        backbone_train_loss=tuple(result.backbone_train_loss),
        feedback_train_loss=tuple(result.feedback_train_loss),
        timing_seconds=dict(result.timings),
    )


def build_report(
    results: Sequence[SeedResult], settings: DemoSettings, run: RunFacts
) -> DemoReport:
    """Everything the seeds measured, with its findings; ``run`` holds the facts of the run."""
    levels = [float(s) for s in settings.noise_levels]
    steps = settings.timesteps
    report = DemoReport(
        seeds=[r.seed for r in results],
        timesteps=list(range(steps + 1)),
        noise_levels=levels,
        pcoder_names=list(results[0].pcoder_names),
        levels=[_level(results, sigma, steps) for sigma in levels],
        per_seed=[_seed(r, levels, steps, settings) for r in results],
        backbone_val_accuracy=over_seeds([r.backbone_val_accuracy for r in results]),
        run=run,
        hyperparameters=list(results[0].paper_hyperparameters),
    )
    report.findings = findings(report)
    return report
