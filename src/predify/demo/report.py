"""The demo's report: across-seed means with intervals, each seed's values, and findings in words
computed from the numbers; the printed table and report.md."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .evaluation import CONDITIONS
from .seeds import SeedResult
from .settings import DemoSettings
from .statistics import seed_interval, t_quantile

__all__ = [
    "INTERVAL_METHOD",
    "REPORT_FORMAT",
    "DemoReport",
    "build_report",
    "findings",
    "markdown_report",
    "summary_table",
    "verdict",
]

REPORT_FORMAT = "predify-demo-report-v2"
INTERVAL_METHOD = (
    "95% t-interval with S - 1 degrees of freedom (S seeds; the normal quantile with one seed) "
    "whose squared standard error adds the between-seed variance of the per-seed means over S "
    "and the test-image variance of the seed-averaged per-image value over N (every seed sees "
    "the same N test images and noise draw)"
)
HYPERPARAMETER_NAMES = ("feedforward", "feedback", "memory", "pc")


@dataclass
class DemoReport:
    """What the demo measured, over seeds; `to_json()` is ``report.json``.

    Per-sigma entries are keyed by ``str(float(sigma))``. An interval is ``{mean, low, high,
    per_seed}``: the mean over seeds (and test images), its 95% interval over seeds and test
    images ([`INTERVAL_METHOD`][predify.demo.report.INTERVAL_METHOD]) and each seed's value.
    """

    seeds: list[int]
    timesteps: list[int]
    """[0, 1, ..., T]."""
    noise_levels: list[float]
    accuracy: dict[str, dict[str, list[float]]]
    """Per condition of [`CONDITIONS`][predify.demo.evaluation.CONDITIONS], per sigma: accuracy at
    t = 0..T, mean over seeds."""
    change_t0_to_T: dict[str, dict[str, dict[str, Any]]]
    """Per condition, per sigma: accuracy at T minus at 0 (interval)."""
    feedback_minus_shuffled_at_T: dict[str, dict[str, Any]]
    tuned_minus_paper_at_T: dict[str, dict[str, Any]]
    backbone: dict[str, Any]
    """``feedforward_accuracy`` per sigma (interval), ``val_accuracy_clean``."""
    prediction_error: dict[str, dict[str, list[float]]]
    """Per sigma, per pcoder (``pcoder1``..): MSE at t = 0..T, mean over seeds."""
    correlation_distance: dict[str, dict[str, list[float]]]
    """Per sigma > 0, per pcoder: 1 - r(clean, noisy representation) at t = 0..T."""
    correlation_distance_change_t0_to_T: dict[str, dict[str, dict[str, Any]]]
    tuned_hyperparameters: dict[str, list[dict[str, float]]]
    """Per sigma, per pcoder: feedforward, feedback, memory, pc, means over seeds."""
    best_timestep_tuned: dict[str, dict[str, Any]]
    """Per sigma: the timestep of the highest mean accuracy of the tuned condition and its
    change from t = 0 (interval). Picked after looking at the test curve: optimistic."""
    per_seed: dict[str, dict[str, Any]]
    """Per seed (``"0"``..): the same series for that seed alone, with its own paired
    bootstrap intervals over test images, its tuning and training losses, its timings."""
    interval: dict[str, Any]
    hyperparameters: list[dict[str, float]] = field(default_factory=list)
    """The paper's, per pcoder (the main condition)."""
    run: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    timing_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The flat layout of ``report.json`` (``accuracy``, ``accuracy_clipped``, ...)."""
        report: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "seeds": self.seeds,
            "timesteps": self.timesteps,
            "noise_levels": self.noise_levels,
            "interval": self.interval,
        }
        for condition in CONDITIONS:
            suffix = "" if condition == "paper" else f"_{condition}"
            report[f"accuracy{suffix}"] = self.accuracy[condition]
            report[f"change_t0_to_T{suffix}"] = self.change_t0_to_T[condition]
        for name in (
            "feedback_minus_shuffled_at_T",
            "tuned_minus_paper_at_T",
            "backbone",
            "prediction_error",
            "correlation_distance",
            "correlation_distance_change_t0_to_T",
            "hyperparameters",
            "tuned_hyperparameters",
            "best_timestep_tuned",
            "per_seed",
            "run",
            "findings",
            "timing_seconds",
        ):
            report[name] = getattr(self, name)
        return report


def _key(sigma: float) -> str:
    return str(float(sigma))


def _correct(result: SeedResult, condition: str, sigma: float) -> np.ndarray:
    # Clean images are in [0, 1]: the clipped condition at sigma 0 is the main one.
    source = "paper" if condition == "clipped" and sigma == 0 else condition
    return result.correct[(source, sigma)].astype(np.float64)


def _over_seeds(values: Sequence[float]) -> dict[str, Any]:
    """Mean and 95% t-interval over seeds of one number per seed (nothing else resampled)."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if len(array) < 2:
        return {"mean": mean, "low": None, "high": None, "per_seed": array.tolist()}
    half = t_quantile(len(array) - 1) * float(array.std(ddof=1)) / math.sqrt(len(array))
    return {"mean": mean, "low": mean - half, "high": mean + half, "per_seed": array.tolist()}


def _difference(
    results: Sequence[SeedResult],
    first: tuple[str, int],
    second: tuple[str, int],
    sigma: float,
) -> dict[str, Any]:
    """(condition, t) minus (condition, t), per test image and seed, with its interval."""
    rows = [
        _correct(r, first[0], sigma)[first[1]] - _correct(r, second[0], sigma)[second[1]]
        for r in results
    ]
    return seed_interval(np.stack(rows)).to_json()


def build_report(
    results: Sequence[SeedResult], settings: DemoSettings, run: dict[str, Any]
) -> DemoReport:
    """Everything the seeds measured, with its findings; ``run`` holds the facts of the run."""
    levels = [float(s) for s in settings.noise_levels]
    steps = settings.timesteps
    names = results[0].pcoder_names
    noisy = [s for s in levels if s > 0]
    report = DemoReport(
        seeds=[r.seed for r in results],
        timesteps=list(range(steps + 1)),
        noise_levels=levels,
        accuracy={
            condition: {
                _key(s): np.mean(
                    [_correct(r, condition, s).mean(axis=1) for r in results], axis=0
                ).tolist()
                for s in levels
            }
            for condition in CONDITIONS
        },
        change_t0_to_T={
            condition: {
                _key(s): _difference(results, (condition, steps), (condition, 0), s) for s in levels
            }
            for condition in CONDITIONS
        },
        feedback_minus_shuffled_at_T={
            _key(s): _difference(results, ("paper", steps), ("shuffled_feedback", steps), s)
            for s in levels
        },
        tuned_minus_paper_at_T={
            _key(s): _difference(results, ("tuned", steps), ("paper", steps), s) for s in levels
        },
        backbone={
            "name": "SmallCNN",
            "feedforward_accuracy": {
                _key(s): seed_interval(
                    np.stack([_correct(r, "paper", s)[0] for r in results])
                ).to_json()
                for s in levels
            },
            "val_accuracy_clean": _over_seeds([r.backbone_val_accuracy for r in results]),
        },
        prediction_error={
            _key(s): {
                name: np.mean([r.prediction_error[s][:, p] for r in results], axis=0).tolist()
                for p, name in enumerate(names)
            }
            for s in levels
        },
        correlation_distance={
            _key(s): {
                name: np.mean([r.correlation_distance[s][p] for r in results], axis=0).tolist()
                for p, name in enumerate(names)
            }
            for s in noisy
        },
        correlation_distance_change_t0_to_T={
            _key(s): {
                name: seed_interval(
                    np.stack([r.distance_ends[s][p, 1] - r.distance_ends[s][p, 0] for r in results])
                ).to_json()
                for p, name in enumerate(names)
            }
            for s in noisy
        },
        tuned_hyperparameters={
            _key(s): [
                {
                    h: float(np.mean([r.tuned[s][p][h] for r in results]))
                    for h in HYPERPARAMETER_NAMES
                }
                for p in range(len(names))
            ]
            for s in levels
        },
        best_timestep_tuned={_key(s): _best_timestep(results, s) for s in levels},
        per_seed={str(r.seed): _per_seed(r, levels, steps, settings) for r in results},
        interval={"method": INTERVAL_METHOD, "confidence": 0.95},
        run=run,
    )
    report.findings = findings(report.to_json())
    return report


def _best_timestep(results: Sequence[SeedResult], sigma: float) -> dict[str, Any]:
    mean = np.mean([_correct(r, "tuned", sigma).mean(axis=1) for r in results], axis=0)
    best = int(np.argmax(mean))  # the first of equal maxima
    return {"timestep": best, **_difference(results, ("tuned", best), ("tuned", 0), sigma)}


def _per_seed(
    result: SeedResult, levels: Sequence[float], steps: int, settings: DemoSettings
) -> dict[str, Any]:
    from ..evaluate.metrics import paired_bootstrap_diff

    def paired(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
        value = paired_bootstrap_diff(
            first, second, n_resamples=settings.bootstrap_resamples, seed=result.seed
        )
        return {"mean": value.diff, "low": value.low, "high": value.high}

    entry: dict[str, Any] = {}
    for condition in CONDITIONS:
        suffix = "" if condition == "paper" else f"_{condition}"
        entry[f"accuracy{suffix}"] = {
            _key(s): _correct(result, condition, s).mean(axis=1).tolist() for s in levels
        }
        entry[f"change_t0_to_T{suffix}"] = {
            _key(s): paired(
                _correct(result, condition, s)[steps], _correct(result, condition, s)[0]
            )
            for s in levels
        }
    entry["tuned_hyperparameters"] = {_key(s): result.tuned[s] for s in levels}
    entry["tuning"] = {_key(s): result.tuning[s] for s in levels}
    entry["correlation_distance"] = {
        _key(s): {
            name: result.correlation_distance[s][p].tolist()
            for p, name in enumerate(result.pcoder_names)
        }
        for s in result.correlation_distance
    }
    entry["backbone_val_accuracy"] = result.backbone_val_accuracy
    entry["backbone_train_loss"] = result.backbone_train_loss
    entry["feedback_train_loss"] = result.feedback_train_loss
    entry["timing_seconds"] = result.timings
    return entry


# ---------------------------------------------------------------------- words from numbers
_WORDS = ("improves", "hurts", "no detectable change")
_CONTROL_WORDS = ("own feedback better", "own feedback worse", "no detectable difference")


def verdict(change: dict[str, Any], words: tuple[str, str, str] = _WORDS) -> str:
    """Whether the 95% interval lies above 0, below 0, or includes it."""
    if change["low"] is not None and change["low"] > 0:
        return words[0]
    if change["high"] is not None and change["high"] < 0:
        return words[1]
    return words[2]


def change_text(change: dict[str, Any], aligned: bool = False, scale: float = 100.0) -> str:
    """``+2.5 [+1.5, +3.6]`` (percentage points by default; padded when ``aligned``)."""
    width = 5 if aligned else 0
    mean = scale * change["mean"]
    if change["low"] is None:
        return f"{mean:+{width}.1f}"
    low, high = scale * change["low"], scale * change["high"]
    return f"{mean:+{width}.1f} [{low:+{width}.1f}, {high:+{width}.1f}]"


def _seeds_text(change: dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
    return ", ".join(f"{scale * v:+.{digits}f}" for v in change["per_seed"])


def findings(report: dict[str, Any]) -> list[str]:
    """Plain statements computed from the numbers, for every noise level (nothing left out)."""
    last = report["timesteps"][-1]
    seeds = len(report["seeds"])
    lines = []
    helps: dict[str, list[str]] = {"": [], "tuned": []}
    for sigma in report["noise_levels"]:
        key = _key(sigma)
        feedforward = report["backbone"]["feedforward_accuracy"][key]
        change = report["change_t0_to_T"][key]
        clipped = report["change_t0_to_T_clipped"][key]
        tuned = report["change_t0_to_T_tuned"][key]
        control = report["feedback_minus_shuffled_at_T"][key]
        tuned_gain = report["tuned_minus_paper_at_T"][key]
        for name, value in (("", change), ("tuned", tuned)):
            if verdict(value) == _WORDS[0]:
                helps[name].append(f"{sigma} ({change_text(value)})")
        lines.append(
            f"sigma {sigma}: feed-forward accuracy {100 * feedforward['mean']:.1f}% (seeds "
            + ", ".join(f"{100 * v:.1f}" for v in feedforward["per_seed"])
            + f"). With the paper's feedback, t = 0 -> t = {last}: {change_text(change)} points "
            f"({verdict(change)}; seeds {_seeds_text(change)}); with clipped noise "
            f"{change_text(clipped)} ({verdict(clipped)}). Own minus shuffled feedback at "
            f"t = {last}: {change_text(control)} ({verdict(control, _CONTROL_WORDS)}). Tuned on "
            f"the validation split: {change_text(tuned)} ({verdict(tuned)}; seeds "
            f"{_seeds_text(tuned)}); tuned minus paper at t = {last}: {change_text(tuned_gain)} "
            f"({verdict(tuned_gain)})."
        )
    for name, label in (("", "the paper's hyperparameters"), ("tuned", "tuned hyperparameters")):
        where = helps[name]
        lines.append(
            f"With {label}, feedback improves accuracy from t = 0 to t = {last} at "
            + (f"sigma {', '.join(where)}" if where else "no noise level")
            + " (95% intervals above 0); elsewhere the change is not detectably positive."
        )
    for sigma in report["noise_levels"]:
        best = report["best_timestep_tuned"][_key(sigma)]
        if best["timestep"] in (0, last):
            continue
        final = report["change_t0_to_T_tuned"][_key(sigma)]
        lines.append(
            f"Tuned feedback at sigma {sigma} is best at t = {best['timestep']}: "
            f"{change_text(best)} points over t = 0 ({verdict(best)}; the timestep was picked "
            f"after seeing the test curve, so this is optimistic), against {change_text(final)} "
            f"at t = {last}."
        )
    lines.extend(_survival(report))
    lines.extend(_reliance(report))
    lines.extend(_representations(report))
    lines.append(
        f"{seeds} seed{'s' if seeds != 1 else ''} ({', '.join(map(str, report['seeds']))}): "
        "each retrains the backbone, the feedback and the tuning; the intervals cover seeds and "
        "test images together (see `interval` in report.json). With few seeds the seed part is "
        "uncertain, so the intervals are wide; each seed's value is given beside them."
    )
    return lines


def _survival(report: dict[str, Any]) -> list[str]:
    """For every level where paper feedback helps: does it survive clipping and the control?"""
    lines = []
    for sigma in report["noise_levels"]:
        key = _key(sigma)
        if sigma == 0 or verdict(report["change_t0_to_T"][key]) != _WORDS[0]:
            continue
        clipped = report["change_t0_to_T_clipped"][key]
        control = report["feedback_minus_shuffled_at_T"][key]
        survives = verdict(clipped) == _WORDS[0]
        specific = verdict(control, _CONTROL_WORDS) == _CONTROL_WORDS[0]
        lines.append(
            f"At sigma {sigma} the gain {'survives' if survives else 'does not survive'} "
            f"clipping ({change_text(clipped)}) and {'is' if specific else 'is not shown to be'} "
            f"image-specific (own minus shuffled feedback {change_text(control)})."
        )
    if not lines:
        lines.append(
            "The paper's feedback gives no detectable gain at any noise level, so there is no "
            "gain for clipping or the shuffled-feedback control to explain away (where own minus "
            "shuffled feedback is positive, another image's feedback hurts more than the image's "
            "own does: that is not a gain over t = 0)."
        )
    return lines


def _reliance(report: dict[str, Any]) -> list[str]:
    """Alamia et al.: does the tuned feedback weight lambda grow with noise, most at lower
    layers? Per pcoder with feedback: lambda at the highest noise minus at the lowest, per seed."""
    levels = report["noise_levels"]
    low_key, high_key = _key(levels[0]), _key(levels[-1])
    lines = []
    growth = []
    names = list(report["prediction_error"][low_key])
    for index, name in enumerate(names[:-1]):  # the top pcoder has no feedback
        per_seed = [
            seed["tuned_hyperparameters"][high_key][index]["feedback"]
            - seed["tuned_hyperparameters"][low_key][index]["feedback"]
            for seed in report["per_seed"].values()
        ]
        summary = _over_seeds(per_seed)
        growth.append(summary["mean"])
        means = [report["tuned_hyperparameters"][_key(s)][index]["feedback"] for s in levels]
        trend = verdict(summary, ("grows", "falls", "no clear trend over seeds"))
        lines.append(
            f"Tuned lambda of {name} (seed means): "
            + ", ".join(f"{m:.2f}" for m in means)
            + f" at sigma {', '.join(str(s) for s in levels)}; from sigma {levels[0]} to "
            f"{levels[-1]} it changes by {_plain(summary)} "
            f"({trend})."
        )
    if len(growth) >= 2:
        lowest_most = growth[0] >= max(growth[1:])
        lines.append(
            "Reliance on feedback (Alamia et al.): lambda "
            + ("changes most" if lowest_most else "does not change most")
            + " at the lowest pcoder"
            + f" (changes {', '.join(f'{g:+.2f}' for g in growth)}, bottom first)."
        )
    return lines


def _plain(summary: dict[str, Any]) -> str:
    if summary["low"] is None:
        return f"{summary['mean']:+.2f}"
    return f"{summary['mean']:+.2f} [{summary['low']:+.2f}, {summary['high']:+.2f}]"


def _representations(report: dict[str, Any]) -> list[str]:
    """Choksi et al.: do noisy representations move toward the clean ones over timesteps?"""
    last = report["timesteps"][-1]
    lines = []
    for sigma, per_pcoder in report["correlation_distance_change_t0_to_T"].items():
        parts = []
        for name, change in per_pcoder.items():
            start = report["correlation_distance"][sigma][name][0]
            word = verdict(change, ("moves away from the clean one", "moves toward the clean one",
                                    "no detectable change"))  # fmt: skip
            parts.append(f"{name} {start:.3f} {_plain(change)} ({word})")
        lines.append(
            f"Correlation distance between clean and noisy representations at sigma {sigma}, "
            f"t = 0 and its change to t = {last}: " + "; ".join(parts) + "."
        )
    return lines


# ---------------------------------------------------------------------- text reports
def _percent(value: float) -> str:
    return f"{100 * value:5.1f}"


def summary_table(report: dict[str, Any]) -> str:
    """The printed table: across-seed accuracy (%) at t = 0 and t = T, and the changes."""
    last = report["timesteps"][-1]
    header = (
        f"{'sigma':>5}  {'t=0':>5}  {f't={last}':>5}  {'change t=0->T [95% CI]':<24}"
        f"{'shuffled fb':<24}{'clipped noise':<24}{'tuned (val split)':<24}"
    )
    lines = [header, "-" * len(header)]
    for sigma in report["noise_levels"]:
        key = _key(sigma)
        accuracy = report["accuracy"][key]
        lines.append(
            f"{sigma:>5}  {_percent(accuracy[0])}  {_percent(accuracy[-1])}  "
            f"{change_text(report['change_t0_to_T'][key], True):<24}"
            f"{change_text(report['change_t0_to_T_shuffled_feedback'][key], True):<24}"
            f"{change_text(report['change_t0_to_T_clipped'][key], True):<24}"
            f"{change_text(report['change_t0_to_T_tuned'][key], True):<24}"
        )
    seeds = report["seeds"]
    lines.append(
        f"accuracy in %, means over {len(seeds)} seed{'s' if len(seeds) != 1 else ''} "
        f"({', '.join(map(str, seeds))}); changes in percentage points, intervals over seeds "
        "and test images"
    )
    return "\n".join(lines)


def markdown_report(report: dict[str, Any]) -> str:
    """report.md: the tables and the findings."""
    last = report["timesteps"][-1]
    info = report["run"]
    seeds = report["seeds"]
    levels = report["noise_levels"]
    names = list(report["prediction_error"][_key(levels[0])])
    rows = []
    for sigma in levels:
        key = _key(sigma)
        for label, suffix in (
            ("feedback (paper hyperparameters)", ""),
            ("noise clipped to [0, 1]", "_clipped"),
            ("shuffled feedback (control)", "_shuffled_feedback"),
            ("tuned hyperparameters (validation split)", "_tuned"),
        ):
            accuracy = report[f"accuracy{suffix}"][key]
            change = report[f"change_t0_to_T{suffix}"][key]
            rows.append(
                f"| {sigma} | {label} | {_percent(accuracy[0])} | {_percent(accuracy[-1])} | "
                f"{change_text(change, True)} | {_seeds_text(change)} | {verdict(change)} |"
            )
    control_rows = [
        f"| {sigma} | {change_text(report['feedback_minus_shuffled_at_T'][_key(sigma)], True)} | "
        f"{verdict(report['feedback_minus_shuffled_at_T'][_key(sigma)], _CONTROL_WORDS)} |"
        for sigma in levels
    ]
    tuned_rows = []
    for sigma in levels:
        key = _key(sigma)
        cells = " | ".join(
            f"{v['feedforward']:.2f} / {v['feedback']:.2f} / {v['memory']:.2f} / {v['pc']:.3g}"
            for v in report["tuned_hyperparameters"][key]
        )
        tuned_rows.append(
            f"| {sigma} | {cells} | {change_text(report['tuned_minus_paper_at_T'][key], True)} |"
        )
    distance_rows = []
    for sigma, per_pcoder in report["correlation_distance"].items():
        cells = " | ".join(
            f"{values[0]:.3f} -> {values[-1]:.3f}"
            f" ({_plain(report['correlation_distance_change_t0_to_T'][sigma][name])})"
            for name, values in per_pcoder.items()
        )
        distance_rows.append(f"| {sigma} | {cells} |")
    error_rows = []
    for sigma in levels:
        errors = report["prediction_error"][_key(sigma)]
        cells = " | ".join(f"{v[0]:.4g} -> {v[-1]:.4g}" for v in errors.values())
        error_rows.append(f"| {sigma} | {cells} |")
    quick_note = (
        ["> Quick mode: reduced sizes for tests; the numbers are not meant to be read.", ""]
        if info["quick"]
        else []
    )
    feedforward = report["backbone"]["feedforward_accuracy"]
    return "\n".join(
        [
            "# predify demo: predictive-coding feedback on MNIST-5k",
            "",
            *quick_note,
            f"**{len(seeds)} seed{'s' if len(seeds) != 1 else ''}** ({', '.join(map(str, seeds))})"
            ": each trains its own backbone (SmallCNN: three conv stages, flatten, a hidden "
            f"layer; {info['train_images']} clean MNIST-5k training images, "
            f"{info['backbone_epochs']} epochs, no noise augmentation), then its feedback (the "
            f"decoders of `psmallcnn`, {info['feedback_epochs']} epochs on the same clean images, "
            "backbone frozen), then tunes beta, lambda, alpha per pcoder at each noise level on "
            f"the validation split ({info['tune_steps']} Adam steps of {info['tune_batch_size']} "
            f"images). Every seed is evaluated on the same {info['test_images']} held-out test "
            f"images (split seed {info['split_seed']}) under the same noise draw: additive "
            "Gaussian noise in pixel units (images in [0, 1]), T = "
            f"{last} timesteps, the paper's hyperparameters beta 0.8, lambda 0.1, alpha 0.01 "
            "unless tuned.",
            "",
            "Feed-forward test accuracy of the backbone (t = 0), mean over seeds: "
            + ", ".join(
                f"sigma {sigma}: {100 * feedforward[_key(sigma)]['mean']:.1f}%" for sigma in levels
            )
            + ". (The ShallowCNN used before collapsed to one class at sigma >= 0.5: its global "
            "average pool turns the rise of every ReLU map's mean under noise into a shift common "
            "to all images; `benchmarks/noise_collapse.py` measures it.)",
            "",
            f"Intervals: {report['interval']['method']}.",
            "",
            "## Accuracy (%) at t = 0 (feed-forward) and t = T, means over seeds",
            "",
            "| sigma | setting | t = 0 | t = T | change [95% CI] | per seed | verdict |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
            "## Is the gain image-specific? Feedback minus shuffled feedback at t = T",
            "",
            "In the control each image receives the top-down predictions of another image of its "
            "batch (a random derangement, fixed for all timesteps); its own error-correction term "
            "is unchanged. Positive: the image's own feedback does better than another's.",
            "",
            "| sigma | difference [95% CI] | verdict |",
            "|---|---|---|",
            *control_rows,
            "",
            "## Tuned hyperparameters (beta / lambda / memory / alpha per pcoder, seed means)",
            "",
            "Tuned at each noise level on the validation split (Adam on the cross-entropy summed "
            "over timesteps), then evaluated on the test split; the last column is tuned minus "
            "paper accuracy at t = T. Each seed's values: `per_seed` in report.json and "
            "`tuned_hyperparameters.png`.",
            "",
            f"| sigma | {' | '.join(names)} | tuned - paper at T [95% CI] |",
            f"|---|{'---|' * len(names)}---|",
            *tuned_rows,
            "",
            "## Correlation distance between clean and noisy representations, t = 0 -> t = T",
            "",
            "1 - Pearson r between each test image's representation with and without noise "
            "(paper hyperparameters), mean over images and seeds; in brackets the change with "
            "its interval. Falling: the noisy representation moves toward the clean one.",
            "",
            f"| sigma | {' | '.join(names)} |",
            f"|---|{'---|' * len(names)}",
            *distance_rows,
            "",
            "## Prediction error (MSE) of each pcoder, t = 0 -> t = T",
            "",
            "pcoder1 predicts the (noisy) input, so its error includes noise it cannot predict.",
            "",
            f"| sigma | {' | '.join(names)} |",
            f"|---|{'---|' * len(names)}",
            *error_rows,
            "",
            "## What the numbers say",
            "",
            *[f"- {finding}" for finding in report["findings"]],
            "",
            "## Files",
            "",
            "- `accuracy_vs_timestep.png`, `tuned_hyperparameters.png`, "
            "`correlation_distance.png`, `reconstructions.png`, `prediction_error.png`",
            "- `report.json`: every number above, each seed's under `per_seed`",
            "- `seed-N/`: the run directory of seed N (`run.json`, `config.toml`, `backbone.pt`, "
            "feedback weights, `checkpoint.pt`, `metrics.csv`): `predify evaluate DIR/seed-0`, "
            "`predify tune DIR/seed-0`",
            "",
        ]
    )
