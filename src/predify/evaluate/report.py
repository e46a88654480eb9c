"""What ``predify evaluate`` writes beside ``results.json``: CSV tables, PNG plots, and the few
lines it prints, all drawn from an
[`EvaluationReport`][predify.evaluate.results.EvaluationReport]."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..runtime.tables import write_csv
from .analysis import RepresentationAnalysis
from .attacks import AttackReport, AttackResult, MinimalPerturbations, epsilon_label
from .results import EvaluationReport
from .robustness import CorruptionSummary

__all__ = ["summary_text", "write_plots", "write_tables"]

Row = list[object]


def write_tables(out: Path, report: EvaluationReport) -> list[str]:
    """The CSV tables of ``report``'s sections in ``out``; returns their file names."""
    written = []
    if report.corruption is not None:
        written += _corruption_tables(out, report.corruption)
    if report.attacks is not None:
        write_csv(
            out / "attacks.csv",
            ["attack", "epsilon", "timestep", "success"],
            _attack_rows(report.attacks),
        )
        written.append("attacks.csv")
    if report.analysis is not None:
        written += _analysis_tables(out, report.analysis)
    return written


def _corruption_tables(out: Path, corruption: CorruptionSummary) -> list[str]:
    steps = range(corruption.timesteps + 1)
    rows: list[Row] = [["clean", 0, t, corruption.clean_error[t]] for t in steps]
    for name, by_severity in corruption.corruption_error.items():
        for severity, errors in by_severity.items():
            rows += [[name, int(severity), t, errors[t]] for t in steps]
    header = ["corruption", "severity", "timestep", "error"]
    write_csv(out / "corruption_errors.csv", header, rows)
    written = ["corruption_errors.csv"]
    if corruption.ce_relative_to_t0 is not None and corruption.mce_relative_to_t0 is not None:
        header = ["corruption", *[f"t{t}" for t in steps]]
        table: list[Row] = [
            [name, *values] for name, values in corruption.ce_relative_to_t0.items()
        ]
        table.append(["mean", *corruption.mce_relative_to_t0])
        write_csv(out / "ce_relative_to_t0.csv", header, table)
        written.append("ce_relative_to_t0.csv")
    return written


def _in_order(attacks: AttackReport) -> list[AttackResult]:
    """The attacks that ran, white-box ones first (the order tables and summary use)."""
    order = ("pgd", "bim", "square", "transfer")
    ran = [result for result in attacks.attacks if result.skipped is None]
    return sorted(
        ran, key=lambda result: order.index(result.name) if result.name in order else len(order)
    )


def _attack_rows(attacks: AttackReport) -> list[Row]:
    """One row per attack, epsilon and readout (per timestep for the transfer attack)."""
    rows: list[Row] = []
    for result in _in_order(attacks):
        for at_epsilon in result.epsilons:
            label = epsilon_label(at_epsilon.epsilon)
            rows += [[result.name, label, r.readout, r.success] for r in at_epsilon.readouts]
    return rows


def _analysis_tables(out: Path, analysis: RepresentationAnalysis) -> list[str]:
    rows: list[Row] = []
    for s, sigma in enumerate(analysis.sigmas):
        for p, pcoder in enumerate(analysis.pcoders):
            values = analysis.correlation_distance[s, p]
            rows += [[f"{sigma:g}", pcoder, t, float(v)] for t, v in enumerate(values)]
    write_csv(out / "correlation_distance.csv", ["sigma", "pcoder", "timestep", "distance"], rows)
    rows = []
    for noise, errors in _prediction_errors(analysis):
        for p, pcoder in enumerate(analysis.pcoders):
            rows += [[noise, pcoder, t, float(v)] for t, v in enumerate(errors[:, p])]
    write_csv(out / "prediction_errors.csv", ["noise", "pcoder", "timestep", "mse"], rows)
    return ["correlation_distance.csv", "prediction_errors.csv"]


def _prediction_errors(analysis: RepresentationAnalysis) -> list[tuple[str, np.ndarray]]:
    """(``clean`` or the sigma, [T+1, P] errors), clean first."""
    noisy = [
        (f"{sigma:g}", analysis.prediction_error_noisy[s])
        for s, sigma in enumerate(analysis.sigmas)
    ]
    return [("clean", analysis.prediction_error_clean), *noisy]


def write_plots(out: Path, report: EvaluationReport) -> list[str]:
    """The PNG plots of ``report``'s sections in ``out``; returns their file names."""
    from . import plots

    written = []
    corruption = report.corruption
    if corruption is not None:
        plots.plot_corruption_errors(corruption, out / "corruption_error.png")
        written.append("corruption_error.png")
        if corruption.ce_relative_to_t0 is not None:
            plots.plot_ce_heatmap(corruption, out / "ce_relative_to_t0.png")
            written.append("ce_relative_to_t0.png")
    if report.attacks is not None:
        plots.plot_attack_success(report.attacks, out / "attack_success.png")
        written.append("attack_success.png")
    if report.analysis is not None:
        plots.plot_correlation_distance(report.analysis, out / "correlation_distance.png")
        plots.plot_prediction_errors(report.analysis, out / "prediction_errors.png")
        written += ["correlation_distance.png", "prediction_errors.png"]
    if report.reconstructions is not None:
        plots.plot_reconstructions(report.reconstructions, out / "reconstructions.png")
        written.append("reconstructions.png")
    return written


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _first_last(values: Sequence[float | None]) -> str:
    return f"{_number(values[0])} -> {_number(values[-1])}"


def summary_text(report: EvaluationReport, out: Path, seconds: float) -> str:
    """A few lines for stdout: the headline numbers at t = 0 and t = T."""
    last = report.timesteps
    data = report.data
    lines = [f"predify evaluate: {data.spec}, {data.num_images} images, t = 0..{last}"]
    if report.corruption is not None:
        lines += _corruption_lines(report.corruption, last)
    if report.attacks is not None:
        for result in _in_order(report.attacks):
            lines += _attack_lines(result)
        if report.attacks.minimal is not None:
            lines += _minimal_lines(report.attacks.minimal)
        lines += [f"  warning: {warning}" for warning in report.attacks.checks.warnings]
    analysis = report.analysis
    if analysis is not None:
        sigma = analysis.sigmas[0]
        for p, pcoder in enumerate(analysis.pcoders):
            values = [float(v) for v in analysis.correlation_distance[0, p]]
            lines.append(
                f"  correlation distance, sigma {sigma:g}, {pcoder}: {_first_last(values)}"
            )
    lines.append(f"  wrote {out / 'results.json'} ({seconds:.1f} s)")
    return "\n".join(lines)


def _corruption_lines(corruption: CorruptionSummary, last: int) -> list[str]:
    lines = [f"  clean error t=0 -> t={last}: {_first_last(corruption.clean_error)}"]
    mean = corruption.mean_corruption_error
    relative = corruption.mce_relative_to_t0
    if mean is not None and relative is not None:
        intervals = corruption.mce_relative_to_t0_ci or [[None]]
        lines.append(
            f"  mean corruption error t=0 -> t={last}: {_first_last(mean)}; CE relative to "
            f"t=0 at t={last}: {_number(relative[-1])} (95% CI "
            f"{', '.join(map(_number, intervals[-1]))})"
        )
    return lines


def _attack_lines(result: AttackResult) -> list[str]:
    """One line per epsilon: the success at the first and the last readout."""
    readouts = result.readouts
    return [
        f"  {result.name} eps={epsilon_label(at.epsilon)}: success at t={readouts[0]} -> "
        f"t={readouts[-1]}: {_first_last(at.success)}"
        for at in result.epsilons
    ]


def _minimal_lines(minimal: MinimalPerturbations) -> list[str]:
    """One line per norm: the median minimal perturbation at each readout, and for how many
    images one was found where that is not all ("n/a": not found for half of them or more)."""
    lines = []
    for norm, name in (("l2", "L2"), ("linf", "L-inf")):
        values = [
            f"t={distance.readout} {_number(distance.median)}"
            + ("" if distance.found == 1.0 else f" (found for {distance.found:.0%})")
            for distance in minimal.distances
            if distance.norm == norm
        ]
        if values:
            lines.append(f"  minimal {name} perturbation, median: {', '.join(values)}")
    return lines
