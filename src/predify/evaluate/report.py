"""What ``predify evaluate`` writes beside ``results.json``: CSV tables, PNG plots, and the few
lines it prints. Every function reads the JSON-ready results
([`predify.evaluate.api.EvaluationReport.to_json()`][predify.evaluate.api.EvaluationReport.to_json]).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..runtime.tables import write_csv

__all__ = ["summary_text", "write_plots", "write_tables"]


def write_tables(out: Path, results: dict[str, Any]) -> list[str]:
    written = []
    corruption = results.get("corruption")
    if corruption is not None:
        steps = range(int(corruption["timesteps"]) + 1)
        rows: list[list[Any]] = [["clean", 0, t, corruption["clean_error"][t]] for t in steps]
        for name, by_severity in corruption["corruption_error"].items():
            for severity, errors in by_severity.items():
                rows += [[name, int(severity), t, errors[t]] for t in steps]
        write_csv(
            out / "corruption_errors.csv", ["corruption", "severity", "timestep", "error"], rows
        )
        written.append("corruption_errors.csv")
        if "ce_relative_to_t0" in corruption:
            header = ["corruption", *[f"t{t}" for t in steps]]
            table = [[name, *values] for name, values in corruption["ce_relative_to_t0"].items()]
            table.append(["mean", *corruption["mce_relative_to_t0"]])
            write_csv(out / "ce_relative_to_t0.csv", header, table)
            written.append("ce_relative_to_t0.csv")
    attacks = results.get("attacks")
    if attacks is not None:
        rows = []
        for name in ("pgd", "bim"):
            if name in attacks:
                for eps, values in attacks[name]["success"].items():
                    rows += [
                        [name, eps, r, v] for r, v in zip(attacks["readouts"], values, strict=True)
                    ]
        if "square" in attacks and "success" in attacks["square"]:
            for eps, values in attacks["square"]["success"].items():
                readouts = attacks["square"]["readouts"]
                rows += [["square", eps, r, v] for r, v in zip(readouts, values, strict=True)]
        if "transfer" in attacks:
            for eps, values in attacks["transfer"]["success"].items():
                rows += [["transfer", eps, t, v] for t, v in enumerate(values)]
        write_csv(out / "attacks.csv", ["attack", "epsilon", "timestep", "success"], rows)
        written.append("attacks.csv")
    analysis = results.get("analysis")
    if analysis is not None:
        rows = []
        for sigma, by_pcoder in analysis["correlation_distance"].items():
            for pcoder, values in by_pcoder.items():
                rows += [[sigma, pcoder, t, v] for t, v in enumerate(values)]
        write_csv(
            out / "correlation_distance.csv", ["sigma", "pcoder", "timestep", "distance"], rows
        )
        rows = []
        for noise, by_pcoder in analysis["prediction_error"].items():
            for pcoder, values in by_pcoder.items():
                rows += [[noise, pcoder, t, v] for t, v in enumerate(values)]
        write_csv(out / "prediction_errors.csv", ["noise", "pcoder", "timestep", "mse"], rows)
        written += ["correlation_distance.csv", "prediction_errors.csv"]
    return written


def write_plots(out: Path, results: dict[str, Any], recon: Any) -> list[str]:
    from . import plots

    written = []
    corruption = results.get("corruption")
    if corruption is not None:
        plots.plot_corruption_errors(corruption, out / "corruption_error.png")
        written.append("corruption_error.png")
        if "ce_relative_to_t0" in corruption:
            plots.plot_ce_heatmap(corruption, out / "ce_relative_to_t0.png")
            written.append("ce_relative_to_t0.png")
    if results.get("attacks") is not None:
        plots.plot_attack_success(results["attacks"], out / "attack_success.png")
        written.append("attack_success.png")
    if results.get("analysis") is not None:
        plots.plot_correlation_distance(results["analysis"], out / "correlation_distance.png")
        plots.plot_prediction_errors(results["analysis"], out / "prediction_errors.png")
        written += ["correlation_distance.png", "prediction_errors.png"]
    if recon is not None:
        plots.plot_reconstructions(recon, out / "reconstructions.png")
        written.append("reconstructions.png")
    return written


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _first_last(values: Sequence[float | None]) -> str:
    return f"{_number(values[0])} -> {_number(values[-1])}"


def summary_text(results: dict[str, Any], out: Path, seconds: float) -> str:
    """A few lines for stdout: the headline numbers at t = 0 and t = T."""
    last = int(results["timesteps"])
    data = results["data"]
    lines = [f"predify evaluate: {data['spec']}, {data['num_images']} images, t = 0..{last}"]
    corruption = results.get("corruption")
    if corruption is not None:
        lines.append(f"  clean error t=0 -> t={last}: {_first_last(corruption['clean_error'])}")
        if "mean_corruption_error" in corruption:
            lines.append(
                f"  mean corruption error t=0 -> t={last}: "
                f"{_first_last(corruption['mean_corruption_error'])}; CE relative to t=0 at "
                f"t={last}: {_number(corruption['mce_relative_to_t0'][-1])} (95% CI "
                f"{', '.join(map(_number, corruption.get('mce_relative_to_t0_ci', [[None]])[-1]))})"
            )
    attacks = results.get("attacks")
    if attacks is not None:
        readouts = attacks["readouts"]
        for name in ("pgd", "bim"):
            for eps, values in attacks.get(name, {}).get("success", {}).items():
                lines.append(
                    f"  {name} eps={eps}: success at t={readouts[0]} -> t={readouts[-1]}: "
                    f"{_first_last(values)}"
                )
        for name in ("square", "transfer"):
            block = attacks.get(name) or {}
            steps = block.get("readouts", [0, last])
            for eps, values in (block.get("success") or {}).items():
                lines.append(
                    f"  {name} eps={eps}: success at t={steps[0]} -> t={steps[-1]}: "
                    f"{_first_last(values)}"
                )
        lines += [f"  warning: {warning}" for warning in attacks["checks"]["warnings"]]
    analysis = results.get("analysis")
    if analysis is not None:
        sigma = next(iter(analysis["correlation_distance"]))
        for pcoder, values in analysis["correlation_distance"][sigma].items():
            lines.append(f"  correlation distance, sigma {sigma}, {pcoder}: {_first_last(values)}")
    lines.append(f"  wrote {out / 'results.json'} ({seconds:.1f} s)")
    return "\n".join(lines)
