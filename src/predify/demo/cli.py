"""``predify demo``: the options of [`predify.demo.run_demo()`][predify.demo.run_demo], and the
printed summary."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..runtime.cli_options import (
    add_common_options,
    nonnegative_int,
    positive_int,
    progress_from_args,
)
from ..tune.objective import DEFAULT_OBJECTIVE, OBJECTIVES
from .experiment import FULL, QUICK, run_demo
from .markdown import summary_table

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``predify demo``."""
    option = parser.add_argument
    option("--out", default="predify-demo", metavar="DIR", help="output directory")
    option(
        "--seeds",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"seeds to run (default {FULL.seeds}; {QUICK.seeds} with --quick)",
    )
    option("--seed", type=nonnegative_int, default=0, help="the first seed (default 0)")
    option(
        "--workers",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="seeds run at once, one process each (default: the fastest for the CPU cores; "
        "0: in this process); the numbers do not depend on it",
    )
    option("--timesteps", type=positive_int, default=None, help="T (default 10; 3 with --quick)")
    option(
        "--objective",
        choices=OBJECTIVES,
        default=None,
        help=f"the tuning objective (default {DEFAULT_OBJECTIVE}; summed: the follow-up "
        "paper's, which rewards shrinking logits)",
    )
    option("--quick", action="store_true", help="a much smaller run (seconds), for tests")
    add_common_options(parser)


def run(args: argparse.Namespace) -> int:
    """``predify demo``: run it and print the summary table."""
    settings = QUICK if args.quick else FULL
    changes = {
        name: getattr(args, name)
        for name in ("seeds", "timesteps", "workers")
        if getattr(args, name) is not None
    }
    if args.objective is not None:
        changes["tune_objective"] = args.objective
    settings = replace(
        settings, seed=args.seed, device=args.device, progress=progress_from_args(args), **changes
    )
    report = run_demo(args.out, settings)
    print()
    print(summary_table(report))
    print(
        f"\nreport: {Path(args.out) / 'report.md'} (plots and report.json beside it); "
        f"{report.timing_seconds['total']:.0f} s"
    )
    return 0
