"""The lines ``predify evaluate`` prints, drawn from the typed report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from predify.evaluate.attacks import AttackBudget, MinimalDistance, MinimalPerturbations
from predify.evaluate.report import summary_text
from predify.evaluate.results import read_results

V1 = Path(__file__).parent / "data" / "results-v1"


def test_the_summary_has_a_line_per_norm_for_the_minimal_perturbations(tmp_path) -> None:
    report = read_results(V1 / "full")  # any report with an attacks block; v1 had no minimal
    assert report.attacks is not None
    # Hand-chosen distances: a median not found (None) at t=2 in L-inf, one found for 75% only.
    minimal = MinimalPerturbations(
        method="bisection over epsilon with PGD",
        budget=AttackBudget(steps=20),
        distances=(
            MinimalDistance(0, "l2", 1.25, 1.0),
            MinimalDistance(0, "linf", 0.0625, 1.0),
            MinimalDistance(2, "l2", 2.5, 0.75),
            MinimalDistance(2, "linf", None, 0.25),
        ),
    )
    with_minimal = replace(report, attacks=replace(report.attacks, minimal=minimal))
    lines = summary_text(with_minimal, tmp_path, 0.0).splitlines()
    without = summary_text(report, tmp_path, 0.0).splitlines()
    added = [line for line in lines if line not in without]
    assert added == [
        "  minimal L2 perturbation, median: t=0 1.250, t=2 2.500 (found for 75%)",
        "  minimal L-inf perturbation, median: t=0 0.062, t=2 n/a (found for 25%)",
    ]
    # Right after the attacks' own lines, L2 first.
    last_attack = max(i for i, line in enumerate(lines) if ": success at t=" in line)
    assert lines[last_attack + 1 : last_attack + 3] == added
