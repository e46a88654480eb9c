"""``predify demo``: the whole method on embedded data, end to end, over several seeds (about
66 CPU-seconds a seed on a quiet machine: about three minutes on two CPU cores for the default
five; see benchmarks/README.md).

For each seed ([`seeds`][predify.demo.seeds], each in its own process):

1. Train a conventional small CNN ([`SmallCNN`][predify.models.SmallCNN]) on the clean MNIST-5k
   training images (no noise augmentation).
2. Freeze it and train its feedback (the decoders of [`psmallcnn()`][predify.models.psmallcnn]) on
the
   same clean images, with the Predify paper's reconstruction objective.
3. Tune feedforward, feedback and pc per pcoder at each noise level on the validation split (a fixed
   number of Adam steps, so that the report repeats with the seed).
4. On held-out test images (the same for every seed) with additive Gaussian noise (sigma 0,
   0.25, 0.5, 1.0 in pixel units, images in [0, 1]; the same draw for every seed and condition),
   score every timestep t = 0..T ([`evaluation`][predify.demo.evaluation]).

Reported honestly, whatever the numbers say ([`report`][predify.demo.report]): the paper's
hyperparameters with unclipped noise (the main result), clipped noise, a shuffled-feedback
control, the tuned hyperparameters beside the paper's, each pcoder's prediction error and the
correlation distance between clean and noisy representations, as means over seeds with intervals
that cover seeds and test images, and each seed's own values.

Each seed's output directory ``seed-N`` is a run directory
([`predify.runtime.runs.save_run()`][predify.runtime.runs.save_run]), so
``predify evaluate DIR/seed-0`` and ``predify tune DIR/seed-0`` work on it.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write_json, atomic_write_text
from ..errors import ConfigError
from ..runtime.device import resolve_device
from ..runtime.outputs import prepare_output_dir
from ..runtime.progress import resolve_progress
from ..runtime.validation import check_int
from . import plots
from .markdown import markdown_report
from .report import DemoReport, RunFacts
from .seeds import STAGES, SeedResult, best_worker_count, evaluation_images, run_seeds
from .settings import FULL, NOISE_LEVELS, QUICK, SPLIT_SEED, TEST_SEED, DemoSettings
from .summary import build_report

__all__ = ["FULL", "NOISE_LEVELS", "QUICK", "SPLIT_SEED", "DemoReport", "DemoSettings", "run_demo"]


def _check(settings: DemoSettings) -> None:
    check_int(settings.timesteps, "--timesteps", 1)
    check_int(settings.seeds, "--seeds", 1)
    check_int(settings.seed, "--seed", 0)
    if settings.workers is not None:
        check_int(settings.workers, "--workers", 0)
    levels = [float(sigma) for sigma in settings.noise_levels]
    if not levels or any(not math.isfinite(s) or s < 0 for s in levels) or 0.0 not in levels:
        raise ConfigError(
            f"noise_levels: expected finite values >= 0 including 0, got {list(levels)}"
        )


def run_demo(
    out_dir: str | os.PathLike[str] = "predify-demo", settings: DemoSettings | None = None
) -> DemoReport:
    """Run the demo and write its outputs into ``out_dir``; returns the report.

    >>> report = run_demo("predify-demo", replace(QUICK, seeds=3))   # doctest: +SKIP
    >>> report.level(0.5).change("tuned")                             # doctest: +SKIP
    Interval(mean=..., low=..., high=..., per_seed=(...))

    Args:
        out_dir: output directory (created; files in it are replaced): ``report.json``,
            ``report.md``, the figures, and a run directory ``seed-N`` per seed.
        settings: [`FULL`][predify.demo.experiment.FULL] when None.

    Raises:
        ConfigError, DataError: bad settings, or an output folder that cannot be written.
    """
    settings = FULL if settings is None else settings
    _check(settings)
    target = resolve_device(settings.device)
    with prepare_output_dir(out_dir) as out:  # held (locked) until the report is written
        return _run_demo(out, settings, target)


def _run_demo(out: Path, settings: DemoSettings, target: torch.device) -> DemoReport:
    from ..data import mnist5k_splits

    progress = resolve_progress(settings.progress)
    if settings.workers is not None:
        workers = settings.workers
    elif target.type != "cpu":
        workers = 1
    else:
        workers = best_worker_count(settings.seeds, os.cpu_count() or 1)
    seeds = list(range(settings.seed, settings.seed + settings.seeds))

    started = time.perf_counter()
    splits = mnist5k_splits(SPLIT_SEED)
    results = run_seeds(
        seeds, settings, out, str(target), workers=workers, progress=progress, splits=splits
    )
    seeds_seconds = time.perf_counter() - started

    test, _ = evaluation_images(splits, settings)
    run = RunFacts(
        quick=settings.quick,
        device=str(target),
        workers=workers,
        cpu_count=os.cpu_count(),
        split_seed=SPLIT_SEED,
        test_seed=TEST_SEED,
        train_images=len(splits.train) if settings.train_images is None else settings.train_images,
        test_images=len(test),
        backbone_epochs=settings.backbone_epochs,
        feedback_epochs=settings.feedback_epochs,
        tune_steps=settings.tune_steps,
        tune_batch_size=settings.tune_batch_size,
        tune_images=len(splits.val) if settings.tune_images is None else settings.tune_images,
        tune_seconds_per_level=settings.tune_seconds_per_level,
        bootstrap_resamples=settings.bootstrap_resamples,
        tune_objective=settings.tune_objective,
    )
    phase = time.perf_counter()
    report = build_report(results, settings, run)
    _plot(report, results, test.tensors[0], settings, out)
    report.timing_seconds = {
        "seeds_wall": round(seeds_seconds, 2),
        # Summed over seeds; each ran single-threaded, so these are about CPU-seconds.
        **{stage: round(sum(r.timings[stage] for r in results), 2) for stage in STAGES},
        # CPU seconds of each stage, summed over seeds: what the work costs, contention aside.
        **{
            f"{stage}_cpu": round(sum(r.timings.get(f"{stage}_cpu", 0.0) for r in results), 2)
            for stage in (*STAGES, "evaluation_paper")
        },
        "report_and_plots": round(time.perf_counter() - phase, 2),
        "total": round(time.perf_counter() - started, 2),
    }
    atomic_write_json(out / "report.json", report.to_json())
    atomic_write_text(out / "report.md", markdown_report(report))
    return report


def _plot(
    report: DemoReport,
    results: list[SeedResult],
    test_images: torch.Tensor,
    settings: DemoSettings,
    out: Path,
) -> None:
    plots.plot_accuracy(report, out / "accuracy_vs_timestep.png")
    plots.plot_tuned_hyperparameters(report, out / "tuned_hyperparameters.png")
    plots.plot_correlation_distance(report, out / "correlation_distance.png")
    plots.plot_prediction_error(report, out / "prediction_error.png")
    plots.plot_scales(report, out / "scales.png")
    first = results[0]
    plots.plot_reconstructions(
        np.asarray(test_images[0]),
        first.shown_inputs,
        first.reconstructions,
        [float(sigma) for sigma in settings.noise_levels],
        out / "reconstructions.png",
        first.seed,
    )
