"""The demo's figures: accuracy over timesteps, reconstructions, prediction errors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from ..plotting import new_figure, save_figure
from .evaluation import Outcome

__all__ = ["plot_accuracy", "plot_prediction_error", "plot_reconstructions"]


def plot_accuracy(report: dict[str, Any], path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    levels = report["noise_levels"]
    figure = new_figure(3.6 * len(levels), 3.4)
    axes = figure.subplots(1, len(levels), sharey=True)
    lines = (
        ("accuracy", "feedback (paper)", "C0", "-"),
        ("accuracy_clipped", "noise clipped to [0, 1]", "C1", "--"),
        ("accuracy_shuffled_feedback", "shuffled feedback (control)", "C3", ":"),
        ("accuracy_tuned", "tuned on validation split", "C2", "-."),
    )
    for axis, sigma in zip(np.atleast_1d(axes), levels, strict=True):
        for key, label, color, style in lines:
            axis.plot(report["timesteps"], report[key][str(sigma)], style, color=color, label=label)
        axis.axhline(0.1, color="grey", linewidth=0.8, alpha=0.6)
        axis.set_title(f"noise sigma = {sigma}")
        axis.set_xlabel("timestep t")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("test accuracy (chance = 0.1)")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="lower left")
    figure.suptitle("MNIST-5k test accuracy over timesteps (t = 0: feed-forward)", fontsize=10)
    figure.tight_layout()
    save_figure(figure, path, tight=True)


def plot_reconstructions(
    outcomes: dict[tuple[str, float], Outcome],
    clean: Tensor,
    noise_levels: Sequence[float],
    path: Path,
) -> None:
    first = outcomes[("", noise_levels[0])].reconstructions
    assert first is not None
    steps = first.shape[0] - 1
    shown_steps = sorted({0, 1, 2, steps // 2, steps} & set(range(steps + 1)))
    columns = 2 + len(shown_steps)
    figure = new_figure(1.5 * columns, 1.6 * len(noise_levels))
    axes = figure.subplots(len(noise_levels), columns, squeeze=False)
    for row, sigma in enumerate(noise_levels):
        outcome = outcomes[("", sigma)]
        assert outcome.reconstructions is not None and outcome.shown_input is not None
        panels = [(clean, "input"), (outcome.shown_input, f"noisy, sigma {sigma}")]
        panels += [(outcome.reconstructions[t], f"decoder 1, t={t}") for t in shown_steps]
        for column, (image, title) in enumerate(panels):
            axis = axes[row][column]
            axis.imshow(image[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0 or column == 1:
                axis.set_title(title, fontsize=7)
    figure.suptitle(
        "An input, its noisy version and the first decoder's reconstruction", fontsize=9
    )
    save_figure(figure, path, tight=True)


def plot_prediction_error(report: dict[str, Any], path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    levels = report["noise_levels"]
    names = list(report["prediction_error"][str(levels[0])])
    figure = new_figure(3.4 * len(names), 3.0)
    axes = figure.subplots(1, len(names), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        for sigma in levels:
            values = report["prediction_error"][str(sigma)][name]
            axis.plot(report["timesteps"], values, label=f"sigma {sigma}")
        axis.set_yscale("log")
        axis.set_title(f"{name} prediction error (MSE)", fontsize=9)
        axis.set_xlabel("timestep t")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    save_figure(figure, path, tight=True)
