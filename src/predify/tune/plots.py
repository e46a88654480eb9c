"""Plots of tuned weights and accuracies, drawn with matplotlib's Agg canvas.

Figures are built as `matplotlib.figure.Figure` objects, not through pyplot, so no display
is needed and the caller's pyplot backend and open figures are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import Hyperparameters
from ..runtime.plotting import new_figure, save_figure
from .collapse import ScaleTrace
from .noise import TuneNoise
from .result import hyperparameters_to_json

__all__ = ["plot_accuracy", "plot_reliance", "plot_scales"]

_QUANTITIES = (
    ("feedforward", "feedforward (β)"),
    ("feedback", "feedback (λ)"),
    ("memory", "memory (1 - β - λ)"),
    ("pc", "pc (α, error correction)"),
)


def _colour_map(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name]


def _noise_axis(noises: Sequence[TuneNoise]) -> tuple[list[float], str, list[str] | None]:
    """x positions, the axis label, and tick labels when the kinds differ."""
    kinds = {noise.kind for noise in noises}
    if len(kinds) == 1:
        kind = kinds.pop()
        name = {"gaussian": "sigma", "saltpepper": "p", "uniform": "w"}.get(kind, "severity")
        return [noise.level for noise in noises], f"{kind} {name}", None
    return list(range(len(noises))), "noise", [str(noise) for noise in noises]


def plot_reliance(
    noises: Sequence[TuneNoise],
    tuned: Sequence[Sequence[Hyperparameters]],
    path: str | os.PathLike[str],
    *,
    initial: Sequence[Hyperparameters] | None = None,
    pcoder_names: Sequence[str] | None = None,
    title: str = "Tuned hyperparameters against noise",
) -> Path:
    """feedforward, feedback, memory and pc of each pcoder against the noise level, one panel each.

    Args:
        noises: the noise levels, [L].
        tuned: per level, the values each pcoder uses, [L, P] (bottom pcoder first).
        path: the image file to write (atomically); its suffix picks the format.
        initial: the starting values per pcoder [P], drawn as dotted lines.
        pcoder_names: legend labels, [P]; default ``pcoder 0``, ...
    """
    order = sorted(range(len(noises)), key=lambda i: (noises[i].kind, noises[i].level))
    x, xlabel, ticks = _noise_axis([noises[i] for i in order])
    count = len(tuned[0]) if tuned else 0
    names = list(pcoder_names) if pcoder_names else [f"pcoder {i}" for i in range(count)]
    figure = new_figure(10, 7)
    axes = figure.subplots(2, 2, sharex=True)
    colours = _colour_map("viridis")
    for axis, (key, label) in zip(axes.flat, _QUANTITIES, strict=True):
        for pcoder in range(count):
            colour = colours(pcoder / max(count - 1, 1))
            y = [hyperparameters_to_json(tuned[i][pcoder])[key] for i in order]
            axis.plot(x, y, marker="o", color=colour, label=names[pcoder])
            if initial is not None:
                axis.axhline(
                    hyperparameters_to_json(initial[pcoder])[key],
                    color=colour,
                    linestyle=":",
                    linewidth=1,
                )
        axis.set_title(label)
        axis.grid(alpha=0.3)
        if key != "pc":
            axis.set_ylim(-0.03, 1.03)
        else:
            alphas = [value.pc for row in tuned for value in row]
            alphas += [value.pc for value in initial or ()]
            # pc may move over orders of magnitude; a log axis shows that, a linear one hides it.
            if min(alphas) > 0 and max(alphas) / min(alphas) > 3:
                axis.set_yscale("log")
            else:
                axis.ticklabel_format(axis="y", useOffset=False, style="plain")
        if ticks is not None:
            axis.set_xticks(x, ticks, rotation=30)
    for axis in axes[1]:
        axis.set_xlabel(xlabel)
    axes[0][0].legend(fontsize="small")
    subtitle = " (dotted: starting values)" if initial is not None else ""
    figure.suptitle(title + subtitle)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_accuracy(
    noises: Sequence[TuneNoise],
    before: Sequence[Sequence[float]],
    after: Sequence[Sequence[float]],
    path: str | os.PathLike[str],
    *,
    title: str = "Held-out accuracy per timestep, before and after tuning",
) -> Path:
    """Accuracy against timestep for each noise level: dashed before tuning, solid after.

    Args:
        noises: [L]; before, after: per level, accuracy at t = 0..T, [L, T+1].
    """
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(8, 5.5)
    axis = figure.subplots()
    colours = _colour_map("plasma")
    for index, noise in enumerate(noises):
        colour = colours(index / max(len(noises), 1))
        steps = range(len(before[index]))
        axis.plot(steps, before[index], linestyle="--", color=colour, label=f"{noise} before")
        axis.plot(steps, after[index], marker="o", color=colour, label=f"{noise} tuned")
    axis.set_xlabel("timestep t (0: feed-forward)")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel("accuracy")
    axis.grid(alpha=0.3)
    # Below the axes: curves rise towards the top, where a legend inside would hide them.
    axis.legend(fontsize="small", ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    axis.set_title(title)
    figure.tight_layout()
    return save_figure(figure, path)


def plot_scales(
    labels: Sequence[str],
    before: Sequence[ScaleTrace],
    after: Sequence[ScaleTrace],
    path: str | os.PathLike[str],
    pcoder_names: Sequence[str],
    *,
    names: tuple[str, str] = ("before", "tuned"),
    title: str = "Logit scale and representation norms per timestep (a collapse shrinks them)",
) -> Path:
    """The logit scale and each pcoder's representation norm against the timestep, one colour per
    noise level: dashed ``names[0]`` (the starting values), solid ``names[1]`` (the tuned ones).

    Args:
        labels: [L] a name per noise level; before, after: [L] traces.
    """
    from matplotlib.ticker import MaxNLocator

    panels = 1 + len(pcoder_names)
    figure = new_figure(3.6 * panels, 3.8)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    colours = _colour_map("plasma")
    for index, label in enumerate(labels):
        colour = colours(index / max(len(labels), 1))
        series = [
            (before[index].logit_scale, after[index].logit_scale),
            *zip(before[index].representation_norm, after[index].representation_norm, strict=True),
        ]
        for axis, (start, tuned) in zip(axes, series, strict=True):
            steps = range(len(start))
            axis.plot(steps, start, linestyle="--", color=colour, label=f"{label} {names[0]}")
            axis.plot(steps, tuned, marker="o", markersize=3, color=colour,
                      label=f"{label} {names[1]}")  # fmt: skip
    for axis, quantity in zip(
        axes, ["logit scale (std over classes)", *(f"{n}: ‖representation‖" for n in pcoder_names)],
        strict=True,
    ):  # fmt: skip
        axis.set_title(quantity, fontsize="medium")
        axis.set_xlabel("timestep t")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize="x-small", ncol=1)
    figure.suptitle(title)
    figure.tight_layout()
    return save_figure(figure, path)
