"""The demo's figures, drawn from the [`DemoReport`][predify.demo.report.DemoReport] (and, for
reconstructions, from one seed's images) on standalone matplotlib figures (pyplot's global state
is never touched)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.plotting import new_figure, save_figure
from ..tune import plots as tune_plots
from .report import DemoReport

__all__ = [
    "plot_accuracy",
    "plot_correlation_distance",
    "plot_prediction_error",
    "plot_reconstructions",
    "plot_scales",
    "plot_tuned_hyperparameters",
]


def _figure(width: float, height: float) -> Any:
    return new_figure(width, height, constrained=True)


def _integer_ticks(axis: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_accuracy(report: DemoReport, path: Path) -> Path:
    """Accuracy over timesteps per noise level: seed means (thick) and each seed (thin)."""
    figure = _figure(3.6 * len(report.levels), 3.4)
    axes = np.atleast_1d(figure.subplots(1, len(report.levels), sharey=True))
    lines = (
        ("paper", "feedback (paper)", "C0", "-"),
        ("clipped", "noise clipped to [0, 1]", "C1", "--"),
        ("shuffled_feedback", "shuffled feedback (control)", "C3", ":"),
        ("tuned", "tuned on validation split", "C2", "-."),
    )
    steps = report.timesteps
    for index, (axis, level) in enumerate(zip(axes, report.levels, strict=True)):
        for condition, label, color, style in lines:
            for seed in report.per_seed:
                accuracy = seed.levels[index].conditions[condition].accuracy
                axis.plot(steps, accuracy, style, color=color, linewidth=0.7, alpha=0.35)
            axis.plot(steps, level.accuracy(condition), style, color=color, linewidth=2,
                      label=label)  # fmt: skip
        axis.axhline(0.1, color="grey", linewidth=0.8, alpha=0.6)
        axis.set_title(f"noise sigma = {level.sigma}")
        axis.set_xlabel("timestep t")
        _integer_ticks(axis)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (chance = 0.1)")
    axes[0].legend(fontsize=7, loc="lower left")
    figure.suptitle(
        f"MNIST-5k test accuracy over timesteps: mean of {len(report.seeds)} seeds (thick), "
        "each seed (thin)",
        fontsize=10,
    )
    return save_figure(figure, path)


#: The tuned quantities shown, with their labels (feedforward is 1 - feedback - memory).
_TUNED = (
    ("feedback", "feedback (λ)"),
    ("memory", "memory (1 - β - λ)"),
    ("pc", "pc (α, error correction)"),
)


def plot_tuned_hyperparameters(report: DemoReport, path: Path) -> Path:
    """Tuned feedback, memory and pc per pcoder against noise level; seeds as points."""
    levels = np.asarray(report.noise_levels, dtype=float)
    count = len(report.pcoder_names)
    figure = _figure(3.6 * len(_TUNED), 3.3)
    axes = figure.subplots(1, len(_TUNED))
    spread = 0.012 * (levels.max() - levels.min() if len(levels) > 1 else 1.0)
    for axis, (name, label) in zip(axes, _TUNED, strict=True):
        for index in range(count):
            if name == "feedback" and index == count - 1:
                continue  # the top pcoder has no feedback: its weight is 0 by construction
            color = f"C{index}"
            offset = (index - (count - 1) / 2) * spread
            for number, seed in enumerate(report.per_seed):
                values = [getattr(v.tuned_hyperparameters[index], name) for v in seed.levels]
                axis.scatter(
                    levels + offset, values, s=14, color=color, alpha=0.7,
                    label=f"pcoder{index + 1} (seeds)" if number == 0 else None,
                )  # fmt: skip
            means = [getattr(v.tuned_hyperparameters[index], name) for v in report.levels]
            axis.plot(levels + offset, means, color=color, linewidth=1.2)
        axis.set_title(label, fontsize=9)
        axis.set_xlabel("noise sigma")
        axis.set_xticks(levels)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(
        "Hyperparameters tuned on the validation split at each noise level (points: seeds; "
        "line: their mean)",
        fontsize=10,
    )
    return save_figure(figure, path)


def plot_correlation_distance(report: DemoReport, path: Path) -> Path:
    """Correlation distance between clean and noisy representations over timesteps, per pcoder:
    seed means (thick) and each seed (thin), one colour per noise level."""
    noisy = [(i, level) for i, level in enumerate(report.levels) if level.correlation_distance]
    names = report.pcoder_names if noisy else []
    figure = _figure(3.4 * max(1, len(names)), 3.1)
    axes = np.atleast_1d(figure.subplots(1, max(1, len(names))))
    steps = report.timesteps
    for axis, name in zip(axes, names, strict=False):
        for number, (index, level) in enumerate(noisy):
            color = f"C{number}"
            for seed in report.per_seed:
                axis.plot(steps, seed.levels[index].correlation_distance[name], color=color,
                          linewidth=0.7, alpha=0.35)  # fmt: skip
            axis.plot(steps, level.correlation_distance[name], color=color, linewidth=2,
                      label=f"sigma {level.sigma}")  # fmt: skip
        axis.set_title(f"{name}: 1 - r(clean, noisy)", fontsize=9)
        axis.set_xlabel("timestep t")
        _integer_ticks(axis)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(
        "Do noisy representations move toward the clean ones? (paper hyperparameters)",
        fontsize=10,
    )
    return save_figure(figure, path)


def plot_prediction_error(report: DemoReport, path: Path) -> Path:
    """Each pcoder's prediction error over timesteps (seed means), one line per noise level."""
    names = report.pcoder_names
    figure = _figure(3.4 * len(names), 3.0)
    axes = np.atleast_1d(figure.subplots(1, len(names)))
    for axis, name in zip(axes, names, strict=True):
        for level in report.levels:
            axis.plot(report.timesteps, level.prediction_error[name], label=f"sigma {level.sigma}")
        axis.set_yscale("log")
        axis.set_title(f"{name} prediction error (MSE)", fontsize=9)
        axis.set_xlabel("timestep t")
        _integer_ticks(axis)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return save_figure(figure, path)


def plot_reconstructions(
    clean: np.ndarray,
    shown_inputs: Mapping[float, np.ndarray],
    reconstructions: Mapping[float, np.ndarray],
    noise_levels: Sequence[float],
    path: Path,
    seed: int,
) -> Path:
    """An input, its noisy versions and the first decoder's reconstruction over timesteps."""
    steps = reconstructions[noise_levels[0]].shape[0] - 1
    shown_steps = sorted({0, 1, 2, steps // 2, steps} & set(range(steps + 1)))
    columns = 2 + len(shown_steps)
    figure = _figure(1.5 * columns, 1.6 * len(noise_levels))
    axes = figure.subplots(len(noise_levels), columns, squeeze=False)
    for row, sigma in enumerate(noise_levels):
        panels = [(clean, "input"), (shown_inputs[sigma], f"noisy, sigma {sigma}")]
        panels += [(reconstructions[sigma][t], f"decoder 1, t={t}") for t in shown_steps]
        for column, (image, title) in enumerate(panels):
            axis = axes[row][column]
            axis.imshow(image[0], cmap="gray", vmin=0.0, vmax=1.0)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0 or column == 1:
                axis.set_title(title, fontsize=7)
    figure.suptitle(
        f"An input, its noisy version and the first decoder's reconstruction (seed {seed})",
        fontsize=9,
    )
    return save_figure(figure, path)


def plot_scales(report: DemoReport, path: Path) -> Path | None:
    """The logit scale and representation norms per timestep, paper (dashed) against tuned
    (solid), one colour per noise level; None when the report has no scales."""
    levels = [level for level in report.levels if {"paper", "tuned"} <= set(level.scales)]
    if not levels:
        return None
    return tune_plots.plot_scales(
        [f"σ={level.sigma}" for level in levels],
        [level.scales["paper"] for level in levels],
        [level.scales["tuned"] for level in levels],
        path,
        report.pcoder_names,
        names=("paper", "tuned"),
        title="Logit scale and representation norms per timestep, means over seeds",
    )
