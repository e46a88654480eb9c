"""``predify tune RUN_DIR --noise gaussian:0.5 [--noise ...]`` or ``predify tune RUN_DIR
--benchmark cifar-c:ROOT --corruptions fog --severities 1-5``: the options of
[`predify.tune.api.TuneSettings`][predify.tune.api.TuneSettings], passed to
[`predify.tune.api.tune_run()`][predify.tune.api.tune_run] (which
documents what is written), and the printed summary.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..runtime.cli_options import (
    add_common_options,
    add_execution_options,
    execution_from_args,
    nonnegative_int,
    positive_int,
    progress_from_args,
)
from .api import SPLITS, TuneReport, TuneSettings, tune_run
from .collapse import collapse_warning
from .gradient import DEFAULT_LR_MIXING, DEFAULT_LR_PC
from .noise import TUNE_NOISE_FORMS
from .objective import DEFAULT_OBJECTIVE, OBJECTIVES

__all__ = ["add_arguments", "run", "settings_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``predify tune``."""
    option = parser.add_argument
    # fmt: off
    option("run_dir", metavar="RUN_DIR", help="a run directory (predify demo/train)")
    option("--noise", action="append", default=[], metavar="SPEC",
           help=f"noise to tune for, repeatable: {TUNE_NOISE_FORMS}")
    option("--benchmark", metavar="KIND:ROOT",
           help="tune on pre-generated corrupted images instead of --noise, read as predify "
           "evaluate reads them: cifar-c:ROOT (CIFAR-10/100-C .npy arrays) or imagenet-c:ROOT "
           "(ImageNet-C folders); each corruption x severity is one level")
    option("--corruptions", metavar="SPEC",
           help="--benchmark: its corruptions, as predify evaluate takes them (fog,snow, "
           "imagenet-c, extra or all)")
    option("--severities", default="1-5", help="--benchmark: e.g. 1-5, 3 or 1,3,5 (default 1-5)")
    option("--tune-images", metavar="N|A-B",
           help="--benchmark: images tuned on, N seeded random positions or positions A-B "
           "(default a fifth of each level)")
    option("--eval-images", metavar="rest|A-B",
           help="--benchmark: images held out, the rest (default) or positions A-B; overlap "
           "with --tune-images is refused")
    option("--workers", type=nonnegative_int, metavar="N",
           help="--benchmark: data loader processes reading images (default 4 with a GPU; on "
           "the CPU 1 with two or more cores per process, else 0)")
    option("--objective", choices=OBJECTIVES, default=DEFAULT_OBJECTIVE,
           help="what tuning minimises: CE at t=T at its best temperature (scale-free-last, "
           "default), the same averaged over t > T/2 (scale-free-late) or t = 1..T "
           "(scale-free-all), or CE summed over t = 1..T (summed: the follow-up paper's, which "
           "rewards shrinking logits; see docs/tutorials/tune.md)")
    option("--method", choices=("gradient", "optuna"), default="gradient",
           help="Adam on the unrolled dynamics (default) or Optuna's TPE search with pruning")
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument("--per-layer", dest="shared", action="store_false", default=None,
                        help="one feedforward/feedback/pc set per pcoder (default unless the run's "
                        "config shares them)")
    layout.add_argument("--shared", dest="shared", action="store_true",
                        help="one set shared by all pcoders")
    option("--timesteps", type=positive_int, help="T (default: the run's config)")
    option("--epochs", type=positive_int, default=3,
           help="gradient: passes over the tuning split (default 3)")
    option("--trials", type=positive_int, default=20, help="optuna: trials (default 20)")
    option("--max-images", type=positive_int,
           help="use at most this many images of each split (a seeded random subset)")
    option("--batch-size", type=positive_int, default=64, help="images per step (default 64)")
    option("--lr-mixing", type=float, default=DEFAULT_LR_MIXING,
           help="gradient: Adam lr of the feedforward/feedback/memory logits "
           f"(default {DEFAULT_LR_MIXING:g})")
    option("--lr-pc", type=float, default=DEFAULT_LR_PC,
           help=f"gradient: Adam lr of pc's softplus parameter (default {DEFAULT_LR_PC:g})")
    option("--time-budget", type=float, metavar="SECONDS",
           help="stop tuning a level after this long")
    option("--clip", action="store_true", help="clamp noisy images to [0, 1]")
    option("--tune-split", choices=SPLITS, default="val",
           help="mnist5k runs: split tuned on (default val)")
    option("--eval-split", choices=SPLITS, default="test",
           help="mnist5k runs: split reported on (default test)")
    option("--seed", type=int, default=0, help="seeds subsets, noise, shuffling")
    option("--out", type=Path, help="output directory (default RUN_DIR/tune)")
    # fmt: on
    add_common_options(parser)
    add_execution_options(parser)


def settings_from_args(args: argparse.Namespace) -> TuneSettings:
    """The [`TuneSettings`][predify.tune.cli.TuneSettings] of parsed ``predify tune`` options."""
    return TuneSettings(
        out=args.out, method=args.method, objective=args.objective, shared=args.shared,
        timesteps=args.timesteps,
        epochs=args.epochs, trials=args.trials, max_images=args.max_images,
        batch_size=args.batch_size, lr_mixing=args.lr_mixing, lr_pc=args.lr_pc,
        time_budget=args.time_budget, clip=args.clip, tune_split=args.tune_split,
        eval_split=args.eval_split, benchmark=args.benchmark, corruptions=args.corruptions,
        severities=args.severities, tune_images=args.tune_images, eval_images=args.eval_images,
        workers=args.workers, seed=args.seed, device=args.device,
        progress=progress_from_args(args), verbose=True,
        **execution_from_args(args),  # type: ignore[arg-type]
    )  # fmt: skip


def _noise_width(report: TuneReport) -> int:
    """The noise column's width: benchmark levels (``cifar-c/gaussian_noise:5``) are long."""
    return max([16, *(len(str(level.noise)) + 2 for level in report.levels)])


def _print_summary(report: TuneReport) -> None:
    levels, modules, used = report.levels, report.pcoders, report.splits
    width = _noise_width(report)
    print("\nTuned hyperparameters (what each pcoder uses; the top pcoder has no feedback):")
    print(
        f"{'noise':<{width}}{'pcoder':<22}{'feedforward':>12}{'feedback':>10}{'memory':>8}{'pc':>10}"
    )
    for level in levels:
        for index, values in enumerate(level.result.effective):
            name = f"{index + 1} {modules[index]}"
            print(
                f"{level.noise!s:<{width}}{name:<22}{values.feedforward:>12.3f}"
                f"{values.feedback:>10.3f}{values.memory:>8.3f}{values.pc:>10.4g}"
            )
    print(
        f"\nAccuracy per timestep on {used.evaluation} ({used.evaluation_images} images, "
        f"held out; tuned on {used.tuning}, {used.tuning_images} images):"
    )
    steps = len(levels[0].before.accuracy) if levels else 0
    print(f"{'noise':<{width}}{'':<8}" + "".join(f"{'t=' + str(t):>7}" for t in range(steps)))
    for level in levels:
        for when, series in (("before", level.before), ("after", level.after)):
            accuracies = "".join(f"{float(a):>7.3f}" for a in series.accuracy)
            print(f"{str(level.noise) if when == 'before' else '':<{width}}{when:<8}{accuracies}")
    objective = report.settings.get("objective", "summed")
    print(f"\nLoss on the tuning split ({objective}) and the gain at the last step:")
    for level in levels:
        result, gain = level.result, level.gain
        before, after = result.tuning_loss_before, result.tuning_loss_after
        losses = (
            f"{before:.4f} -> {after:.4f}"
            if before is not None and after is not None
            else "not measured"
        )
        print(
            f"{level.noise!s:<{width}}loss {losses}; accuracy at t={result.timesteps} "
            f"{gain.diff:+.3f} (95% CI {gain.low:+.3f} to {gain.high:+.3f}); "
            f"{result.steps} steps, {result.seconds:.1f} s"
        )


def _print_scales(report: TuneReport) -> None:
    """The collapse table: logit scale and representation norms at t = 0 and t = T."""
    traced = [level for level in report.levels if level.before.scales and level.after.scales]
    if not traced:
        return
    names = ["logits", *(f"pcoder{i + 1}" for i in range(len(report.pcoders)))]
    width = _noise_width(report)
    print(
        "\nScale per timestep (logits: std over classes; pcoders: representation norm; means "
        "over held-out images): t = 0, t = T with the run's values, t = T tuned"
    )
    print(f"{'noise':<{width}}" + "".join(f"{name:>24}" for name in names))
    for level in traced:
        before, after = level.before.scales, level.after.scales
        assert before is not None and after is not None
        cells = [
            (before.logit_scale[0], before.logit_scale[-1], after.logit_scale[-1]),
            *(
                (start[0], start[-1], tuned[-1])
                for start, tuned in zip(
                    before.representation_norm, after.representation_norm, strict=True
                )
            ),
        ]
        row = "".join(f"{f'{a:.3g} / {b:.3g} / {c:.3g}':>24}" for a, b, c in cells)
        print(f"{level.noise!s:<{width}}{row}")
        warning = collapse_warning(after, names[1:], f"noise {level.noise}")
        if warning is not None:
            print(f"WARNING {warning}")


def run(args: argparse.Namespace) -> int:
    """``predify tune``; returns the exit status."""
    began = time.perf_counter()
    report = tune_run(args.run_dir, args.noise, settings_from_args(args))
    if not report.is_main:  # another rank of a torchrun job: rank 0 reports
        return 0
    _print_summary(report)
    _print_scales(report)
    print(
        f"\nwrote {report.out}/{{results.json, reliance.csv, reliance.png, accuracy.png, "
        f"scales.png}} and one "
        f"folder per noise level; {time.perf_counter() - began:.1f} s in all"
    )
    sys.stdout.flush()
    return 0
