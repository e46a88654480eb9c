"""The demo's findings in words, computed from the numbers of a
[`DemoReport`][predify.demo.report.DemoReport]: every noise level, nothing left out."""

from __future__ import annotations

from ..tune.collapse import collapse_warning
from .report import DemoReport
from .statistics import Interval, over_seeds

__all__ = [
    "CONTROL_WORDS",
    "WORDS",
    "change_text",
    "findings",
    "plain_text",
    "seeds_text",
    "verdict",
]

WORDS = ("improves", "hurts", "no detectable change")
CONTROL_WORDS = ("own feedback better", "own feedback worse", "no detectable difference")


def verdict(change: Interval, words: tuple[str, str, str] = WORDS) -> str:
    """Whether the 95% interval lies above 0, below 0, or includes it."""
    if change.low is not None and change.low > 0:
        return words[0]
    if change.high is not None and change.high < 0:
        return words[1]
    return words[2]


def change_text(change: Interval, aligned: bool = False, scale: float = 100.0) -> str:
    """``+2.5 [+1.5, +3.6]`` (percentage points by default; padded when ``aligned``)."""
    width = 5 if aligned else 0
    mean = scale * change.mean
    if change.low is None or change.high is None:
        return f"{mean:+{width}.1f}"
    low, high = scale * change.low, scale * change.high
    return f"{mean:+{width}.1f} [{low:+{width}.1f}, {high:+{width}.1f}]"


def seeds_text(change: Interval, scale: float = 100.0, digits: int = 1) -> str:
    """Each seed's value: ``+10.0, -10.0, +0.0``."""
    return ", ".join(f"{scale * v:+.{digits}f}" for v in change.per_seed or ())


def plain_text(summary: Interval) -> str:
    """``+0.50 [+0.40, +0.60]``: unscaled, two decimals."""
    if summary.low is None or summary.high is None:
        return f"{summary.mean:+.2f}"
    return f"{summary.mean:+.2f} [{summary.low:+.2f}, {summary.high:+.2f}]"


def findings(report: DemoReport) -> list[str]:
    """Plain statements computed from the numbers, for every noise level (nothing left out)."""
    last = report.last
    seeds = len(report.seeds)
    lines = [_level_line(report, sigma) for sigma in report.noise_levels]
    for condition, label in (("paper", "the paper's hyperparameters"),
                             ("tuned", "tuned hyperparameters")):  # fmt: skip
        where = [
            f"{level.sigma} ({change_text(level.change(condition))})"
            for level in report.levels
            if verdict(level.change(condition)) == WORDS[0]
        ]
        lines.append(
            f"With {label}, feedback improves accuracy from t = 0 to t = {last} at "
            + (f"sigma {', '.join(where)}" if where else "no noise level")
            + " (95% intervals above 0); elsewhere the change is not detectably positive."
        )
    for level in report.levels:
        if level.best_timestep_tuned in (0, last):
            continue
        best = level.best_timestep_change
        lines.append(
            f"Tuned feedback at sigma {level.sigma} is best at t = {level.best_timestep_tuned}: "
            f"{change_text(best)} points over t = 0 ({verdict(best)}; the timestep was picked "
            "after seeing the test curve, so this is optimistic), against "
            f"{change_text(level.change('tuned'))} at t = {last}."
        )
    lines.extend(_survival(report))
    lines.extend(_reliance(report))
    lines.extend(_representations(report))
    lines.extend(_scales(report))
    lines.append(
        f"{seeds} seed{'s' if seeds != 1 else ''} ({', '.join(map(str, report.seeds))}): "
        "each retrains the backbone, the feedback and the tuning; the intervals cover seeds and "
        "test images together (see `interval` in report.json). With few seeds the seed part is "
        "uncertain, so the intervals are wide; each seed's value is given beside them."
    )
    return lines


def _level_line(report: DemoReport, sigma: float) -> str:
    level = report.level(sigma)
    last = report.last
    feedforward = level.feedforward_accuracy
    change, clipped, tuned = (level.change(c) for c in ("paper", "clipped", "tuned"))
    control, tuned_gain = level.feedback_minus_shuffled, level.tuned_minus_paper
    return (
        f"sigma {sigma}: feed-forward accuracy {100 * feedforward.mean:.1f}% (seeds "
        + ", ".join(f"{100 * v:.1f}" for v in feedforward.per_seed or ())
        + f"). With the paper's feedback, t = 0 -> t = {last}: {change_text(change)} points "
        f"({verdict(change)}; seeds {seeds_text(change)}); with clipped noise "
        f"{change_text(clipped)} ({verdict(clipped)}). Own minus shuffled feedback at "
        f"t = {last}: {change_text(control)} ({verdict(control, CONTROL_WORDS)}). Tuned on "
        f"the validation split: {change_text(tuned)} ({verdict(tuned)}; seeds "
        f"{seeds_text(tuned)}); tuned minus paper at t = {last}: {change_text(tuned_gain)} "
        f"({verdict(tuned_gain)})."
    )


def _survival(report: DemoReport) -> list[str]:
    """For every level where paper feedback helps: does it survive clipping and the control?"""
    lines = []
    for level in report.levels:
        if level.sigma == 0 or verdict(level.change("paper")) != WORDS[0]:
            continue
        clipped, control = level.change("clipped"), level.feedback_minus_shuffled
        survives = verdict(clipped) == WORDS[0]
        specific = verdict(control, CONTROL_WORDS) == CONTROL_WORDS[0]
        lines.append(
            f"At sigma {level.sigma} the gain {'survives' if survives else 'does not survive'} "
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


def _reliance(report: DemoReport) -> list[str]:
    """Alamia et al.: does the tuned feedback weight (their lambda) grow with noise, most at lower
    layers? Per pcoder with feedback: its value at the highest noise minus at the lowest, per
    seed."""
    levels = report.noise_levels
    lines = []
    growth = []
    for index, name in enumerate(report.pcoder_names[:-1]):  # the top pcoder has no feedback
        per_seed = [
            seed.levels[-1].tuned_hyperparameters[index].feedback
            - seed.levels[0].tuned_hyperparameters[index].feedback
            for seed in report.per_seed
        ]
        summary = over_seeds(per_seed)
        growth.append(summary.mean)
        means = [level.tuned_hyperparameters[index].feedback for level in report.levels]
        trend = verdict(summary, ("grows", "falls", "no clear trend over seeds"))
        lines.append(
            f"Tuned feedback (λ) of {name} (seed means): "
            + ", ".join(f"{m:.2f}" for m in means)
            + f" at sigma {', '.join(str(s) for s in levels)}; from sigma {levels[0]} to "
            f"{levels[-1]} it changes by {plain_text(summary)} ({trend})."
        )
    if len(growth) >= 2:
        lowest_most = growth[0] >= max(growth[1:])
        lines.append(
            "Reliance on feedback (Alamia et al.): feedback "
            + ("changes most" if lowest_most else "does not change most")
            + " at the lowest pcoder"
            + f" (changes {', '.join(f'{g:+.2f}' for g in growth)}, bottom first)."
        )
    return lines


def _representations(report: DemoReport) -> list[str]:
    """Choksi et al.: do noisy representations move toward the clean ones over timesteps?"""
    lines = []
    for level in report.levels:
        if not level.correlation_distance_change:
            continue
        parts = []
        for name, change in level.correlation_distance_change.items():
            start = level.correlation_distance[name][0]
            word = verdict(change, ("moves away from the clean one", "moves toward the clean one",
                                    "no detectable change"))  # fmt: skip
            parts.append(f"{name} {start:.3f} {plain_text(change)} ({word})")
        lines.append(
            f"Correlation distance between clean and noisy representations at sigma "
            f"{level.sigma}, t = 0 and its change to t = {report.last}: " + "; ".join(parts) + "."
        )
    return lines


def _scales(report: DemoReport) -> list[str]:
    """Do the tuned dynamics collapse the representations (norm at T below half that at t = 0)?"""
    lines = []
    names = report.pcoder_names
    for level in report.levels:
        tuned = level.scales.get("tuned")
        if tuned is None:
            continue
        warning = collapse_warning(tuned, names, f"Tuned dynamics at sigma {level.sigma}")
        if warning is not None:
            lines.append("WARNING: " + warning + ".")
            continue
        norms = ", ".join(
            f"{name} {norm[0]:.3g} -> {norm[-1]:.3g}"
            for name, norm in zip(names, tuned.representation_norm, strict=True)
        )
        lines.append(
            f"Tuned dynamics at sigma {level.sigma} keep their scale (t = 0 -> t = "
            f"{report.last}): logit scale {tuned.logit_scale[0]:.3g} -> "
            f"{tuned.logit_scale[-1]:.3g}, representation norms {norms}."
        )
    return lines
