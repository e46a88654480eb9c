"""``predify evaluate RUN_DIR --out DIR``: robustness of a trained run over timesteps.

The options of [`predify.evaluate.api.EvaluateSettings`][predify.evaluate.api.EvaluateSettings],
passed to
[`predify.evaluate.api.evaluate_run()`][predify.evaluate.api.evaluate_run] (which documents what is
measured and the defaults);
this module only parses them and prints the summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..runtime.cli_options import (
    add_common_options,
    add_execution_options,
    execution_from_args,
    nonnegative_int,
    positive_int,
    progress_from_args,
)
from .api import DEFAULT_ATTACKS, DEFAULT_CORRUPTIONS, EvaluateSettings, evaluate_run
from .data import SUBSETS

__all__ = ["add_arguments", "run", "settings_from_args"]


def _count_or_all(text: str) -> int | str:
    return "all" if text.strip().lower() == "all" else positive_int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``predify evaluate``."""
    option = parser.add_argument
    # fmt: off
    option("run_dir", metavar="RUN_DIR", help="what `predify demo`/`train` wrote")
    option("--out", required=True, metavar="DIR", help="output directory")
    option("--data", metavar="SPEC",
           help="data set to evaluate on (default: the run's test split, e.g. mnist5k:test)")
    option("--benchmark", metavar="KIND:ROOT",
           help="pre-generated corrupted images instead of corrupting on the fly: "
           "cifar-c:ROOT (CIFAR-10/100-C .npy arrays) or imagenet-c:ROOT (ImageNet-C folders)")
    option("--corruptions", default=",".join(DEFAULT_CORRUPTIONS), metavar="SPEC",
           help="all, imagenet-c, extra, comma-separated names, or none (default: nine cheap "
           "ones from the noise, blur and digital families)")
    option("--severities", default="1-5", help="e.g. 1-5, 3 or 1,3,5 (default 1-5)")
    option("--timesteps", type=nonnegative_int, metavar="T",
           help="timesteps to unroll (default: the run's)")
    option("--attacks", default=",".join(DEFAULT_ATTACKS), metavar="LIST",
           help="comma-separated subset of pgd,bim,square,transfer,autoattack,minimal, or none "
           "(default pgd,square,transfer; autoattack: AutoAttack's standard version, minimal: the "
           "median minimal L2 and L-inf perturbation; autoattack needs pip install "
           "'predify[attacks]')")
    option("--epsilons", metavar="LIST",
           help="attack budgets in pixel units, e.g. 0.05,0.1,0.3 or 2/255,8/255 (default: "
           "0.05,0.1,0.3 in L-inf and 0.5,1.5,5 in L2 for 1-channel images; 1/255,4/255,16/255 "
           "and 0.25,1,4 otherwise)")
    option("--norm", choices=("linf", "l2"), default="linf", help="attack norm")
    option("--targeted", action="store_true", help="aim at class (label + shift) mod classes")
    option("--target-shift", type=int, default=1, metavar="K", help="default 1")
    option("--attack-timesteps", default="auto", metavar="LIST",
           help="readouts PGD/BIM attack: auto (every timestep up to T = 5, else about six evenly "
           "spaced ones including 0 and T), all, sum (the summed loss of all timesteps), or a "
           "list such as 0,5,10 (default auto)")
    option("--square-timesteps", default="ends", metavar="LIST",
           help="readouts the Square attack aims at: ends (0 and T), all, or a list (default ends)")
    option("--attack-images", type=positive_int, default=32, metavar="N", help="default 32")
    option("--attack-steps", type=positive_int, default=50,
           help="PGD/BIM steps (default 50)")
    option("--attack-restarts", type=positive_int, default=5,
           help="PGD random starts (default 5)")
    option("--square-queries", type=positive_int, default=5000,
           help="Square queries per image (default 5000, as in AutoAttack)")
    option("--minimal-steps", type=positive_int, default=20,
           help="attack steps per budget tried by --attacks minimal (default 20)")
    option("--analysis", action=argparse.BooleanOptionalAction, default=True,
           help="representation analysis and reconstructions (default on)")
    option("--analysis-images", type=positive_int, default=100, metavar="N", help="default 100")
    option("--max-images", type=_count_or_all, metavar="N|all",
           help="images evaluated, or all (default 250; with --subset, all of the subset)")
    option("--subset", choices=SUBSETS,
           help="robustbench: RobustBench's 5,000 ImageNet validation images (--data is the "
           "ImageNet validation folder), in its order")
    option("--skip-bad-images", action="store_true",
           help="leave unreadable image files out (named in results.json) instead of stopping")
    option("--workers", type=nonnegative_int, metavar="N",
           help="data loader processes reading and corrupting images (default 4 with a GPU; "
           "on the CPU 1 with two or more cores per process, else 0)")
    option("--batch-size", type=positive_int, default=100, help="default 100")
    option("--bootstrap", type=nonnegative_int, default=1000, metavar="R",
           help="resamples for the 95%% intervals (0: none; default 1000)")
    option("--seed", type=int, default=0, help="images, corruptions, attacks, noise")
    option("--restart", action="store_true",
           help="discard the finished cells of a previous evaluation in --out")
    option("--no-plots", action="store_true", help="skip the PNG plots")
    # fmt: on
    add_common_options(parser)
    add_execution_options(parser)


def settings_from_args(args: argparse.Namespace) -> EvaluateSettings:
    """The [`EvaluateSettings`][predify.evaluate.cli.EvaluateSettings] of parsed ``predify
    evaluate`` options."""
    epsilons: list[float | str] | None = None
    if args.epsilons is not None:
        epsilons = [item for item in args.epsilons.split(",") if item.strip()]
    return EvaluateSettings(
        out=args.out, data=args.data, benchmark=args.benchmark, corruptions=args.corruptions,
        severities=args.severities, timesteps=args.timesteps,
        attacks=[item for item in args.attacks.split(",") if item.strip()],
        epsilons=epsilons,
        norm=args.norm, targeted=args.targeted, target_shift=args.target_shift,
        attack_timesteps=args.attack_timesteps, square_timesteps=args.square_timesteps,
        attack_images=args.attack_images, attack_steps=args.attack_steps,
        attack_restarts=args.attack_restarts, square_queries=args.square_queries,
        minimal_steps=args.minimal_steps, analysis=args.analysis,
        analysis_images=args.analysis_images, max_images=args.max_images, subset=args.subset,
        skip_bad_images=args.skip_bad_images, workers=args.workers,
        batch_size=args.batch_size, bootstrap=args.bootstrap, seed=args.seed,
        device=args.device, restart=args.restart, plots=not args.no_plots,
        progress=progress_from_args(args), announce=_print_line,
        **execution_from_args(args),  # type: ignore[arg-type]
    )  # fmt: skip


def _print_line(line: str) -> None:
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    """``predify evaluate``: evaluate, write the outputs, print a summary; returns 0."""
    from .report import summary_text

    report = evaluate_run(args.run_dir, settings_from_args(args))
    if not report.is_main:  # another rank of a torchrun job: rank 0 reports
        return 0
    print(summary_text(report, Path(args.out), report.elapsed_seconds))
    return 0
