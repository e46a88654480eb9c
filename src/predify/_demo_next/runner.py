"""``run_demo``: every seed, then the report, its figures and the printed table."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._device import resolve_device
from .._io import atomic_write_json, atomic_write_text, check_writable_dir
from ..errors import ConfigError
from . import plots
from .experiment import (
    FULL,
    QUICK,
    SPLIT_SEED,
    TEST_SEED,
    DemoSettings,
    SeedResult,
    best_worker_count,
    run_seeds,
    subset,
)
from .report import build_report, markdown

__all__ = ["DEFAULT_SEEDS", "run_demo"]

#: Seeds of a default run.
DEFAULT_SEEDS = 3


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def run_demo(
    out_dir: str | Path = "predify-demo",
    *,
    seeds: int = DEFAULT_SEEDS,
    first_seed: int = 0,
    timesteps: int | None = None,
    quick: bool = False,
    device: str | torch.device = "cpu",
    workers: int | None = None,
    progress: bool = True,
    noise_levels: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Run the demo over ``seeds`` seeds and write its outputs into ``out_dir``.

    Args:
        out_dir: output directory (created; files in it are replaced). Seed s's run directory is
            ``out_dir/seed-s``.
        seeds: how many seeds (``first_seed``, ``first_seed + 1``, ...).
        timesteps: T (default 10, or 3 with ``quick``).
        quick: much smaller sizes (seconds per seed), for tests.
        device: ``cpu``, ``cuda``, ``auto``...
        workers: seeds run at once, each in its own process (None: as many as make the run
            shortest on this machine's cores; 0: in this process, one after the other). The
            numbers do not depend on it.
        progress: show a progress bar per stage.
        noise_levels: sigma of the additive Gaussian noise, images in [0, 1]; must include 0.

    Returns:
        The report, as written to ``report.json``.
    """
    settings = QUICK if quick else FULL
    count = _check_int(seeds, "--seeds", 1)
    start = _check_int(first_seed, "--seed", 0)
    if timesteps is not None:
        settings = replace(settings, timesteps=_check_int(timesteps, "--timesteps", 1))
    if noise_levels is not None:
        levels = tuple(float(sigma) for sigma in noise_levels)
        if not levels or any(not math.isfinite(s) or s < 0 for s in levels) or 0.0 not in levels:
            raise ConfigError(
                f"noise_levels: expected finite values >= 0 including 0, got {list(noise_levels)}"
            )
        settings = replace(settings, noise_levels=levels)
    target = resolve_device(device)
    if workers is None:
        workers = 1 if target.type != "cpu" else best_worker_count(count, os.cpu_count() or 1)
    workers = _check_int(workers, "--workers", 0)
    out = Path(out_dir)
    check_writable_dir(out)
    seed_list = list(range(start, start + count))

    started = time.perf_counter()
    results = run_seeds(seed_list, settings, out, str(target), workers=workers, progress=progress)
    seconds = time.perf_counter() - started

    run = {
        "quick": settings == QUICK,
        "device": str(target),
        "workers": workers,
        "intra_op_threads": 1 if target.type == "cpu" else torch.get_num_threads(),
        "split_seed": SPLIT_SEED,
        "test_seed": TEST_SEED,
        "train_images": 3000 if settings.train_images is None else settings.train_images,
        "test_images": results[0].correct[("", settings.noise_levels[0])].shape[1],
        "backbone_epochs": settings.backbone_epochs,
        "feedback_epochs": settings.feedback_epochs,
        "tune_steps": settings.tune_steps,
        "tune_batch_size": settings.tune_batch_size,
        "tune_images": 1000 if settings.tune_images is None else settings.tune_images,
        "tune_seconds_per_level": settings.tune_seconds_per_level,
        "bootstrap_resamples": settings.bootstrap_resamples,
    }
    report = build_report(results, settings, run)
    phase = time.perf_counter()
    _plot(report, results, settings, out)
    stages = ("backbone", "feedback", "tuning", "evaluation")
    report["timing_seconds"] = {
        "seeds": round(seconds, 2),
        # Summed over seeds: each ran single-threaded, so these are about CPU-seconds.
        **{stage: round(sum(r.timings[stage] for r in results), 2) for stage in stages},
        "report_and_plots": round(time.perf_counter() - phase, 2),
        "total": round(time.perf_counter() - started, 2),
    }
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", markdown(report))
    return report


def _plot(
    report: dict[str, Any], results: Sequence[SeedResult], settings: DemoSettings, out: Path
) -> None:
    from ..data import mnist5k_splits

    plots.plot_accuracy(report, out / "accuracy_vs_timestep.png")
    plots.plot_tuned_hyperparameters(report, out / "tuned_hyperparameters.png")
    plots.plot_correlation_distance(report, out / "correlation_distance.png")
    plots.plot_prediction_error(report, out / "prediction_error.png")
    first = results[0]
    test = subset(mnist5k_splits(SPLIT_SEED).test, settings.test_images, TEST_SEED)
    plots.plot_reconstructions(
        np.asarray(test.tensors[0][0]),
        first.shown_inputs,
        first.reconstructions,
        list(settings.noise_levels),
        out / "reconstructions.png",
        first.seed,
    )
