"""What the demo measured, as typed objects: [`DemoReport`][predify.demo.report.DemoReport] and its
parts, and ``report.json`` (`DemoReport.to_json()` / `DemoReport.from_json()`), the only place the
JSON layout is spelled out.

[`summary`][predify.demo.summary] computes the report from the seeds' results;
[`findings`][predify.demo.findings] words it; [`markdown`][predify.demo.markdown] and
[`plots`][predify.demo.plots] render it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .._io import JsonObject, check_format
from ..config import Hyperparameters
from ..errors import DataError
from ..tune.collapse import ScaleTrace
from .evaluation import CONDITIONS
from .settings import TEST_SEED
from .statistics import Interval

__all__ = [
    "INTERVAL_METHOD",
    "REPORT_FORMAT",
    "ConditionResult",
    "DemoReport",
    "LevelSummary",
    "RunFacts",
    "SeedLevel",
    "SeedSummary",
    "TuningSummary",
]

#: The ``format`` of ``report.json``; the layout has not changed since v2, so v2 files read.
REPORT_FORMAT = "predify-demo-report-v2"
INTERVAL_METHOD = (
    "95% t-interval with S - 1 degrees of freedom (S seeds; the normal quantile with one seed) "
    "whose squared standard error adds the between-seed variance of the per-seed means over S "
    "and the test-image variance of the seed-averaged per-image value over N (every seed sees "
    "the same N test images and noise draw)"
)
_INTERVAL_CONFIDENCE = 0.95


def _suffix(condition: str) -> str:
    """The JSON keys' suffix of a condition: ``accuracy``, ``accuracy_clipped``, ..."""
    return "" if condition == "paper" else f"_{condition}"


def _key(sigma: float) -> str:
    return str(float(sigma))


def _values_to_json(value: Hyperparameters) -> dict[str, float]:
    return {
        "feedforward": value.feedforward,
        "feedback": value.feedback,
        "memory": value.memory,
        "pc": value.pc,
    }


def _values_from_json(data: Mapping[str, Any]) -> Hyperparameters:
    return Hyperparameters(float(data["feedforward"]), float(data["feedback"]), float(data["pc"]))


def _series(values: Sequence[Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class TuningSummary:
    """How one seed's tuning at one noise level went (fields an older file lacks read as their
    defaults)."""

    steps: int
    seconds: float = 0.0
    stopped_by_budget: bool = False
    loss_first_steps: float = math.nan
    """Mean mini-batch loss (the tuning objective) of the first steps (NaN: not in the file)."""
    loss_last_steps: float = math.nan
    """The same over the last steps: what the tuning optimised, beside what it did to accuracy."""
    method: str = "gradient"
    split: str = "validation"
    objective: str = "summed"
    """What the tuning minimised (``summed``: a file written before it was a choice)."""

    def to_json(self) -> JsonObject:
        return {
            "method": self.method,
            "objective": self.objective,
            "split": self.split,
            "steps": self.steps,
            "seconds": self.seconds,
            "stopped_by_budget": self.stopped_by_budget,
            "loss_first_steps": self.loss_first_steps,
            "loss_last_steps": self.loss_last_steps,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TuningSummary:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class ConditionResult:
    """One evaluated condition at one noise level."""

    accuracy: tuple[float, ...]
    """Accuracy at t = 0..T (over seeds: their mean)."""
    change: Interval
    """Accuracy at t = T minus at t = 0."""


@dataclass(frozen=True)
class LevelSummary:
    """Everything measured at one noise level, over seeds."""

    sigma: float
    conditions: Mapping[str, ConditionResult]
    """Per condition of [`CONDITIONS`][predify.demo.evaluation.CONDITIONS]."""
    feedforward_accuracy: Interval
    """The backbone's accuracy (t = 0)."""
    feedback_minus_shuffled: Interval
    """Paper minus shuffled-feedback accuracy at t = T."""
    tuned_minus_paper: Interval
    """Tuned minus paper accuracy at t = T."""
    prediction_error: Mapping[str, tuple[float, ...]]
    """Per pcoder: its prediction error (MSE) at t = 0..T, mean over seeds (main condition)."""
    correlation_distance: Mapping[str, tuple[float, ...]]
    """Per pcoder: 1 - r(clean, noisy representation) at t = 0..T; empty at sigma 0."""
    correlation_distance_change: Mapping[str, Interval]
    """Per pcoder: its change from t = 0 to t = T; empty at sigma 0."""
    tuned_hyperparameters: tuple[Hyperparameters, ...]
    """Per pcoder: the tuned values, means over seeds."""
    best_timestep_tuned: int
    """The timestep of the highest mean accuracy of the tuned condition (picked after looking
    at the test curve: optimistic)."""
    best_timestep_change: Interval
    """The tuned condition's accuracy at that timestep minus at t = 0."""
    scales: Mapping[str, ScaleTrace] = field(default_factory=dict)
    """Per condition (``paper``, ``tuned``): the logit scale and each pcoder's representation
    norm at t = 0..T, means over seeds (empty in a file written before they were recorded)."""

    def change(self, condition: str) -> Interval:
        return self.conditions[condition].change

    def accuracy(self, condition: str) -> tuple[float, ...]:
        return self.conditions[condition].accuracy


@dataclass(frozen=True)
class SeedLevel:
    """One seed at one noise level; changes with that seed's paired bootstrap intervals."""

    conditions: Mapping[str, ConditionResult]
    tuned_hyperparameters: tuple[Hyperparameters, ...]
    tuning: TuningSummary
    correlation_distance: Mapping[str, tuple[float, ...]]
    """Empty at sigma 0."""


@dataclass(frozen=True)
class SeedSummary:
    """One seed's own series, its training and tuning losses and its timings."""

    seed: int
    levels: tuple[SeedLevel, ...]
    """In the order of the report's ``noise_levels``."""
    backbone_val_accuracy: float
    backbone_train_loss: tuple[float, ...]
    feedback_train_loss: tuple[Mapping[str, float], ...]
    timing_seconds: Mapping[str, float]


@dataclass(frozen=True)
class RunFacts:
    """The facts of a demo run that its numbers depend on (fields an older file lacks read as
    their defaults)."""

    quick: bool
    train_images: int
    test_images: int
    split_seed: int
    backbone_epochs: int
    feedback_epochs: int
    tune_steps: int
    tune_batch_size: int
    device: str = ""
    workers: int = 0
    cpu_count: int | None = None
    test_seed: int = TEST_SEED
    tune_images: int = 0
    tune_seconds_per_level: float = 0.0
    bootstrap_resamples: int = 0
    tune_objective: str = "summed"
    """What the tuning minimised (``summed``: a file written before it was a choice)."""

    def to_json(self) -> JsonObject:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunFacts:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class DemoReport:
    """What the demo measured, over seeds; `to_json()` is ``report.json``.

    Intervals cover seeds and test images ([`INTERVAL_METHOD`][predify.demo.report.INTERVAL_METHOD])
    and carry each seed's value.
    """

    seeds: list[int]
    timesteps: list[int]
    """[0, 1, ..., T]."""
    noise_levels: list[float]
    pcoder_names: list[str]
    levels: list[LevelSummary]
    """In the order of ``noise_levels``."""
    per_seed: list[SeedSummary]
    """In the order of ``seeds``."""
    backbone_val_accuracy: Interval
    """The backbone's clean validation accuracy, over seeds."""
    run: RunFacts
    hyperparameters: list[Hyperparameters] = field(default_factory=list)
    """The paper's, per pcoder (the main condition)."""
    findings: list[str] = field(default_factory=list)
    timing_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def last(self) -> int:
        """T."""
        return self.timesteps[-1]

    def level(self, sigma: float) -> LevelSummary:
        return self.levels[self.noise_levels.index(float(sigma))]

    def to_json(self) -> JsonObject:
        """The flat layout of ``report.json`` (``accuracy``, ``accuracy_clipped``, ...; per-sigma
        entries keyed by ``str(float(sigma))``)."""
        return _report_to_json(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "report.json") -> DemoReport:
        """A report [`to_json()`][predify.demo.report.DemoReport.to_json] wrote.

        Raises:
            DataError: another format (one line naming it) or a malformed file.
        """
        check_format(data, [REPORT_FORMAT], where, "run predify demo again")
        try:
            return _report_from_json(data)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            kind = type(error).__name__
            raise DataError(f"{where}: not a demo report ({kind}: {error})") from None


# ---------------------------------------------------------------------- the JSON layout
def _report_to_json(report: DemoReport) -> JsonObject:
    levels = list(zip(report.noise_levels, report.levels, strict=True))
    noisy = [(sigma, level) for sigma, level in levels if sigma > 0]
    data: JsonObject = {
        "format": REPORT_FORMAT,
        "seeds": report.seeds,
        "timesteps": report.timesteps,
        "noise_levels": report.noise_levels,
        "interval": {"method": INTERVAL_METHOD, "confidence": _INTERVAL_CONFIDENCE},
    }
    for condition in CONDITIONS:
        suffix = _suffix(condition)
        data[f"accuracy{suffix}"] = {_key(s): list(v.accuracy(condition)) for s, v in levels}
        data[f"change_t0_to_T{suffix}"] = {
            _key(s): v.change(condition).to_json() for s, v in levels
        }
    data["feedback_minus_shuffled_at_T"] = {
        _key(s): v.feedback_minus_shuffled.to_json() for s, v in levels
    }
    data["tuned_minus_paper_at_T"] = {_key(s): v.tuned_minus_paper.to_json() for s, v in levels}
    data["backbone"] = {
        "name": "SmallCNN",
        "feedforward_accuracy": {_key(s): v.feedforward_accuracy.to_json() for s, v in levels},
        "val_accuracy_clean": report.backbone_val_accuracy.to_json(),
    }
    data["prediction_error"] = {
        _key(s): {name: list(e) for name, e in v.prediction_error.items()} for s, v in levels
    }
    data["correlation_distance"] = {
        _key(s): {name: list(d) for name, d in v.correlation_distance.items()} for s, v in noisy
    }
    data["correlation_distance_change_t0_to_T"] = {
        _key(s): {name: c.to_json() for name, c in v.correlation_distance_change.items()}
        for s, v in noisy
    }
    data["hyperparameters"] = [_values_to_json(v) for v in report.hyperparameters]
    data["tuned_hyperparameters"] = {
        _key(s): [_values_to_json(h) for h in v.tuned_hyperparameters] for s, v in levels
    }
    data["best_timestep_tuned"] = {
        _key(s): {"timestep": v.best_timestep_tuned, **v.best_timestep_change.to_json()}
        for s, v in levels
    }
    data["scales"] = {
        _key(s): {name: trace.to_json() for name, trace in v.scales.items()} for s, v in levels
    }
    data["per_seed"] = {
        str(seed.seed): _seed_to_json(seed, report.noise_levels) for seed in report.per_seed
    }
    data["run"] = report.run.to_json()
    data["findings"] = report.findings
    data["timing_seconds"] = report.timing_seconds
    return data


def _seed_to_json(seed: SeedSummary, sigmas: Sequence[float]) -> JsonObject:
    levels = list(zip(sigmas, seed.levels, strict=True))
    entry: JsonObject = {}
    for condition in CONDITIONS:
        suffix = _suffix(condition)
        entry[f"accuracy{suffix}"] = {
            _key(s): list(v.conditions[condition].accuracy) for s, v in levels
        }
        entry[f"change_t0_to_T{suffix}"] = {
            _key(s): v.conditions[condition].change.to_json() for s, v in levels
        }
    entry["tuned_hyperparameters"] = {
        _key(s): [_values_to_json(h) for h in v.tuned_hyperparameters] for s, v in levels
    }
    entry["tuning"] = {_key(s): v.tuning.to_json() for s, v in levels}
    entry["correlation_distance"] = {
        _key(s): {name: list(d) for name, d in v.correlation_distance.items()}
        for s, v in levels
        if s > 0
    }
    entry["backbone_val_accuracy"] = seed.backbone_val_accuracy
    entry["backbone_train_loss"] = list(seed.backbone_train_loss)
    entry["feedback_train_loss"] = [dict(losses) for losses in seed.feedback_train_loss]
    entry["timing_seconds"] = dict(seed.timing_seconds)
    return entry


def _conditions(data: Mapping[str, Any], key: str) -> dict[str, ConditionResult]:
    return {
        condition: ConditionResult(
            _series(data[f"accuracy{_suffix(condition)}"][key]),
            Interval.from_json(data[f"change_t0_to_T{_suffix(condition)}"][key]),
        )
        for condition in CONDITIONS
    }


def _level_from_json(data: Mapping[str, Any], sigma: float) -> LevelSummary:
    key = _key(sigma)
    distances = data["correlation_distance"].get(key, {})
    changes = data["correlation_distance_change_t0_to_T"].get(key, {})
    best = data["best_timestep_tuned"][key]
    return LevelSummary(
        sigma=sigma,
        conditions=_conditions(data, key),
        feedforward_accuracy=Interval.from_json(data["backbone"]["feedforward_accuracy"][key]),
        feedback_minus_shuffled=Interval.from_json(data["feedback_minus_shuffled_at_T"][key]),
        tuned_minus_paper=Interval.from_json(data["tuned_minus_paper_at_T"][key]),
        prediction_error={n: _series(e) for n, e in data["prediction_error"][key].items()},
        correlation_distance={n: _series(d) for n, d in distances.items()},
        correlation_distance_change={n: Interval.from_json(c) for n, c in changes.items()},
        tuned_hyperparameters=tuple(
            _values_from_json(v) for v in data["tuned_hyperparameters"][key]
        ),
        best_timestep_tuned=int(best["timestep"]),
        best_timestep_change=Interval.from_json(best),
        scales={
            name: ScaleTrace.from_json(trace)
            for name, trace in data.get("scales", {}).get(key, {}).items()
        },
    )


def _seed_from_json(seed: int, data: Mapping[str, Any], sigmas: Sequence[float]) -> SeedSummary:
    levels = []
    for sigma in sigmas:
        key = _key(sigma)
        levels.append(
            SeedLevel(
                conditions=_conditions(data, key),
                tuned_hyperparameters=tuple(
                    _values_from_json(v) for v in data["tuned_hyperparameters"][key]
                ),
                tuning=TuningSummary.from_json(data["tuning"][key]),
                correlation_distance={
                    n: _series(d) for n, d in data["correlation_distance"].get(key, {}).items()
                },
            )
        )
    return SeedSummary(
        seed=seed,
        levels=tuple(levels),
        backbone_val_accuracy=float(data["backbone_val_accuracy"]),
        backbone_train_loss=_series(data["backbone_train_loss"]),
        feedback_train_loss=tuple(dict(losses) for losses in data["feedback_train_loss"]),
        timing_seconds=dict(data["timing_seconds"]),
    )


def _report_from_json(data: Mapping[str, Any]) -> DemoReport:
    sigmas = [float(sigma) for sigma in data["noise_levels"]]
    return DemoReport(
        seeds=[int(seed) for seed in data["seeds"]],
        timesteps=[int(t) for t in data["timesteps"]],
        noise_levels=sigmas,
        pcoder_names=list(data["prediction_error"][_key(sigmas[0])]),
        levels=[_level_from_json(data, sigma) for sigma in sigmas],
        per_seed=[
            _seed_from_json(int(seed), entry, sigmas) for seed, entry in data["per_seed"].items()
        ],
        backbone_val_accuracy=Interval.from_json(data["backbone"]["val_accuracy_clean"]),
        run=RunFacts.from_json(data["run"]),
        hyperparameters=[_values_from_json(v) for v in data["hyperparameters"]],
        findings=[str(line) for line in data["findings"]],
        timing_seconds=dict(data["timing_seconds"]),
    )
