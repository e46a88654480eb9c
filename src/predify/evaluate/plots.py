"""PNG plots of evaluation results (matplotlib's Agg renderer, no display needed).

Every function takes typed results (a
[`CorruptionSummary`][predify.evaluate.robustness.CorruptionSummary], an
[`AttackReport`][predify.evaluate.attacks.AttackReport], a
[`RepresentationAnalysis`][predify.evaluate.analysis.RepresentationAnalysis] or
[`Reconstructions`][predify.evaluate.analysis.Reconstructions]) and a path, draws on a
standalone `matplotlib.figure.Figure` (pyplot's global state is never touched) and returns the
path. matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runtime.plotting import new_figure, save_figure

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .analysis import Reconstructions, RepresentationAnalysis
    from .attacks import AttackReport
    from .robustness import CorruptionSummary

__all__ = [
    "plot_attack_success",
    "plot_ce_heatmap",
    "plot_correlation_distance",
    "plot_corruption_errors",
    "plot_prediction_errors",
    "plot_reconstructions",
]


def _figure(rows: int, cols: int, width: float = 3.2, height: float = 2.6) -> Figure:
    figure: Figure = new_figure(cols * width, rows * height, constrained=True)
    return figure


def _axes(figure: Figure, count: int) -> list[Axes]:
    cols = min(count, 4)
    rows = math.ceil(count / cols)
    grid = figure.subplots(rows, cols, squeeze=False)
    flat = [axis for row in grid for axis in row]
    for axis in flat[count:]:
        axis.set_visible(False)
    return flat[:count]


def _grid_shape(count: int) -> tuple[int, int]:
    cols = min(count, 4)
    return math.ceil(count / cols), cols


def _colors(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(index / max(count - 1, 1)) for index in range(count)]


def plot_corruption_errors(summary: CorruptionSummary, path: str | os.PathLike[str]) -> Path:
    """Top-1 error against timestep: one panel per corruption, one line per severity, with
    the clean error dashed."""
    table = summary.corruption_error
    names = list(table)
    steps = list(range(summary.timesteps + 1))
    figure = _figure(*_grid_shape(max(len(names), 1)))
    if not names:
        axis = figure.subplots()
        axis.plot(steps, summary.clean_error, "k--", label="clean")
        axis.set(xlabel="timestep", ylabel="top-1 error", title="clean")
        return save_figure(figure, path)
    for axis, name in zip(_axes(figure, len(names)), names, strict=True):
        severities = list(table[name])
        for color, severity in zip(_colors(len(severities)), severities, strict=True):
            axis.plot(steps, table[name][severity], color=color, marker=".", label=f"s{severity}")
        axis.plot(steps, summary.clean_error, "k--", label="clean")
        axis.set(title=name, xlabel="timestep", ylabel="top-1 error", ylim=(0, 1))
    figure.axes[0].legend(fontsize="x-small")
    return save_figure(figure, path)


def plot_ce_heatmap(summary: CorruptionSummary, path: str | os.PathLike[str]) -> Path:
    """Heatmap of CE relative to t = 0 (rows: corruptions, plus their mean; columns: t)."""
    import numpy as np

    relative = summary.ce_relative_to_t0 or {}
    names = [*relative, "mean"]
    rows = [*relative.values(), summary.mce_relative_to_t0 or []]
    values = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    steps = values.shape[1]
    figure = _figure(1, 1, width=max(4.0, 0.45 * steps + 2.5), height=0.35 * len(names) + 1.5)
    axis = figure.subplots()
    spread = np.nanmax(np.abs(values - 1.0)) if np.isfinite(values).any() else 0.1
    spread = max(float(spread), 0.01)
    image = axis.imshow(values, cmap="RdBu_r", vmin=1 - spread, vmax=1 + spread, aspect="auto")
    for (row, col), value in np.ndenumerate(values):
        if np.isfinite(value) and steps <= 16:
            axis.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=6)
    axis.set_xticks(range(steps))
    axis.set_yticks(range(len(names)), names)
    axis.set(xlabel="timestep", title="CE relative to t = 0 (<1: feedback helps)")
    figure.colorbar(image, ax=axis)
    return save_figure(figure, path)


def plot_attack_success(attacks: AttackReport, path: str | os.PathLike[str]) -> Path:
    """Attack success against epsilon: one panel per attack, one line per readout (per
    timestep for the transfer attack)."""
    order = ("pgd", "bim", "square", "transfer")
    panels = sorted(
        (result for result in attacks.attacks if result.skipped is None),
        key=lambda result: order.index(result.name) if result.name in order else len(order),
    )
    figure = _figure(*_grid_shape(max(len(panels), 1)))
    for axis, result in zip(_axes(figure, max(len(panels), 1)), panels, strict=False):
        readouts = result.readouts
        epsilons = [at.epsilon for at in result.epsilons]
        for color, (index, readout) in zip(
            _colors(len(readouts)), enumerate(readouts), strict=True
        ):
            axis.plot(
                epsilons,
                [at.success[index] for at in result.epsilons],
                color=color,
                marker=".",
                label=f"t={readout}",
            )
        title = "transfer from t=0" if result.name == "transfer" else result.name
        axis.set(
            title=title, xlabel=f"epsilon ({attacks.norm})", ylabel="success rate",
            ylim=(-0.02, 1.02),
        )  # fmt: skip
        if len(readouts) <= 12:
            axis.legend(fontsize="x-small")
    return save_figure(figure, path)


def plot_correlation_distance(
    analysis: RepresentationAnalysis, path: str | os.PathLike[str]
) -> Path:
    """Correlation distance (clean vs noisy) against timestep: one panel per pcoder, one line
    per noise level."""
    series = [
        (f"sigma={sigma:g}", analysis.correlation_distance[s])
        for s, sigma in enumerate(analysis.sigmas)
    ]
    return _per_pcoder_lines(
        series, analysis.pcoders, path, ylabel="1 - Pearson r (clean vs noisy)"
    )


def plot_prediction_errors(analysis: RepresentationAnalysis, path: str | os.PathLike[str]) -> Path:
    """Prediction error (MSE) against timestep: one panel per pcoder, clean and each sigma."""
    series = [("clean", analysis.prediction_error_clean.T)]
    series += [
        (f"sigma={sigma:g}", analysis.prediction_error_noisy[s].T)
        for s, sigma in enumerate(analysis.sigmas)
    ]
    return _per_pcoder_lines(series, analysis.pcoders, path, ylabel="prediction MSE", log=True)


def _per_pcoder_lines(
    series: Sequence[tuple[str, np.ndarray]],
    pcoders: Sequence[str],
    path: str | os.PathLike[str],
    *,
    ylabel: str,
    log: bool = False,
) -> Path:
    """One panel per pcoder p, one line per (label, values [P, T+1]) of ``series``."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure(*_grid_shape(len(pcoders)))
    for axis, (p, pcoder) in zip(_axes(figure, len(pcoders)), enumerate(pcoders), strict=True):
        for color, (label, values) in zip(_colors(len(series)), series, strict=True):
            line = [float(v) for v in values[p]]
            axis.plot(range(len(line)), line, color=color, marker=".", label=label)
        axis.set(title=pcoder, xlabel="timestep", ylabel=ylabel)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if log:
            axis.set_yscale("log")
    figure.axes[0].legend(fontsize="x-small")
    return save_figure(figure, path)


def plot_reconstructions(recon: Reconstructions, path: str | os.PathLike[str]) -> Path:
    """A grid: per image a row with the input, the noisy input and the first decoder's
    prediction at each timestep (pixel space, clipped to [0, 1] for display)."""
    count = recon.images.shape[0]
    steps = recon.predictions.shape[0]
    cols = steps + 2
    figure = _figure(count, cols, width=1.1, height=1.2)
    grid = figure.subplots(count, cols, squeeze=False)
    titles = ["input", f"noisy ({recon.sigma:g})", *[f"t={t}" for t in range(steps)]]
    for row in range(count):
        panels = [recon.images[row], recon.noisy[row], *recon.predictions[:, row]]
        for col, (axis, image) in enumerate(zip(grid[row], panels, strict=True)):
            pixels = image.clamp(0, 1).permute(1, 2, 0).numpy()
            if pixels.shape[-1] == 1:
                axis.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=1)
            else:
                axis.imshow(pixels)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(titles[col], fontsize=7)
    return save_figure(figure, path)
