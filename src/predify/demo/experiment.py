"""``predify demo``: the whole method on embedded data, end to end, in about two minutes on a CPU.

1. Train a small CNN (:class:`~predify.models.ShallowCNN`) on clean MNIST-5k training images.
2. Freeze it and train its feedback (the decoders of :func:`~predify.models.pshallow`) on the same
   clean images, with the Predify paper's reconstruction objective.
3. On the held-out test split, add Gaussian noise (sigma 0, 0.25, 0.5, 1.0 in pixel units, images
   in [0, 1]) and measure accuracy at every timestep t = 0..T, and each pcoder's prediction error.

Reported honestly, whatever the numbers say:

- noise unclipped (the main result) and clipped to [0, 1];
- a control where every image receives the top-down predictions of another image of its batch
  (shuffled feedback), so a gain that does not depend on the image's own feedback shows up as such;
- hyperparameters tuned for each noise level on the validation split (``predify.tune``, gradient
  descent within a time budget), evaluated on the test split beside the paper's;
- the change from t = 0 to t = T with a paired bootstrap 95% interval over test images. Every
  setting sees the same noise draw, so all comparisons are paired. One seed is run: the intervals
  cover the sampling of test images, not the variation between training runs.

The output directory is also a run directory (:func:`predify.runs.save_run`), so
``predify evaluate DIR`` and ``predify tune DIR`` work on it.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from .._device import DEFAULT_DEVICE, resolve_device
from .._io import atomic_write_json, atomic_write_text
from ..data.noise import add_gaussian_noise
from ..errors import ConfigError
from ..network import PredictiveNet
from ..outputs import prepare_output_dir, resolve_progress
from ..runs import RunInfo, save_run
from .evaluation import Outcome, conditions_to_run, evaluate_conditions
from .plots import plot_accuracy, plot_prediction_error, plot_reconstructions
from .report import findings, markdown_report

if TYPE_CHECKING:
    from ..models import ShallowCNN

__all__ = ["FULL", "NOISE_LEVELS", "QUICK", "SPLIT_SEED", "DemoReport", "DemoSettings", "run_demo"]

#: Standard deviations of the additive Gaussian noise, for images in [0, 1].
NOISE_LEVELS = (0.0, 0.25, 0.5, 1.0)
#: The MNIST-5k split of the run directory (``predify evaluate`` reads the same split back).
SPLIT_SEED = 0
REPORT_FORMAT = "predify-demo-report-v1"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs: :data:`FULL` by default, :data:`QUICK` with ``--quick``.

    New fields get a default, so that settings written by older code still build.
    """

    seed: int = 0
    """Seeds the backbone, the feedback training, the noise draw and the control."""
    noise_levels: tuple[float, ...] = NOISE_LEVELS
    """Standard deviations of the additive Gaussian noise, images in [0, 1]."""
    device: str = DEFAULT_DEVICE
    progress: bool | None = None
    """Progress bars; None: only on a terminal."""
    quick: bool = False
    """Reduced sizes, for tests: the report says its numbers are not meant to be read."""
    timesteps: int = 10
    backbone_epochs: int = 12
    backbone_lr: float = 1e-2
    backbone_batch_size: int = 64
    feedback_epochs: int = 10
    feedback_lr: float = 3e-3
    """Chosen by the validation split's reconstruction loss (1e-3: 0.46, 3e-3: 0.35, 1e-2: 0.36)."""
    batch_size: int = 64
    """Of the feedback training."""
    eval_batch_size: int = 500
    train_images: int | None = None
    """None: the whole training split (3000 images)."""
    test_images: int | None = None
    """None: the whole test split (1000 images)."""
    bootstrap_resamples: int = 2000
    tune_steps: int = 12
    """Adam steps of the hyperparameter tuning at each noise level (a fixed count, so that the
    tuned values do not depend on the machine's speed)."""
    tune_seconds_per_level: float = 60.0
    """A cap on the tuning time of one level, for slow machines (the report says if it hit)."""
    tune_images: int | None = None
    """Validation images the tuning uses; None: the whole split (1000 images)."""
    tune_batch_size: int = 64


FULL = DemoSettings()
QUICK = DemoSettings(
    quick=True,
    timesteps=3,
    backbone_epochs=5,
    backbone_lr=2e-2,
    backbone_batch_size=32,
    feedback_epochs=2,
    eval_batch_size=200,
    train_images=1000,
    test_images=200,
    bootstrap_resamples=200,
    tune_steps=3,
    tune_seconds_per_level=20.0,
    tune_images=200,
)


# ---------------------------------------------------------------------- data and training
def _subset(dataset: TensorDataset, count: int | None, seed: int) -> TensorDataset:
    """``count`` items of ``dataset`` in a seeded random order (all of them when None)."""
    images, labels = dataset.tensors
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    if count is not None:
        order = order[:count]
    return TensorDataset(images[order], labels[order])


def _train_backbone(
    train: TensorDataset,
    settings: DemoSettings,
    seed: int,
    device: torch.device,
    progress: bool,
) -> tuple[ShallowCNN, list[float]]:
    """Supervised training of the ShallowCNN on clean images; returns it (eval mode) and losses."""
    from ..models import ShallowCNN

    torch.manual_seed(seed)
    backbone = ShallowCNN(in_channels=1, num_classes=10).to(device)
    images, labels = (tensor.to(device) for tensor in train.tensors)
    steps_per_epoch = math.ceil(len(labels) / settings.backbone_batch_size)
    optimizer = torch.optim.Adam(backbone.parameters(), lr=settings.backbone_lr)
    # One cycle: a short warm-up, then annealing, reaches ~95% in a dozen epochs where a constant
    # rate is still near 93%.
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, settings.backbone_lr, total_steps=settings.backbone_epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(seed)
    epoch_losses = []
    bar = tqdm(range(settings.backbone_epochs), desc="1/4 backbone", disable=not progress)
    for _ in bar:
        order = torch.randperm(len(labels), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(labels), settings.backbone_batch_size):
            batch = order[start : start + settings.backbone_batch_size]
            loss = F.cross_entropy(backbone(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        epoch_losses.append(total / len(labels))
        bar.set_postfix(loss=f"{epoch_losses[-1]:.4f}")
    return backbone.eval(), epoch_losses


def _accuracy(model: torch.nn.Module, dataset: TensorDataset, device: torch.device) -> float:
    images, labels = dataset.tensors
    with torch.no_grad():
        predicted = torch.cat(
            [model(chunk.to(device)).argmax(-1).cpu() for chunk in images.split(1000)]
        )
    return float((predicted == labels).float().mean())


def _tune_levels(
    pnet: PredictiveNet,
    tuning: TensorDataset,
    levels: Sequence[float],
    timesteps: int,
    settings: DemoSettings,
    seed: int,
    bar: Any,
    workers: int,
) -> dict[float, Any]:
    """Tune beta, lambda and alpha per pcoder at each noise level on ``tuning`` (the validation
    split), each level within its time budget; ``workers`` levels at once, each on its own copy."""
    from ..tune import parse_noise, tune_gradient

    images, labels = tuning.tensors

    def tune(sigma: float) -> Any:
        result = tune_gradient(
            copy.deepcopy(pnet),
            (images, labels),
            parse_noise(f"gaussian:{sigma}"),
            timesteps=timesteps,
            epochs=100,  # max_steps ends it first
            max_steps=settings.tune_steps,
            batch_size=settings.tune_batch_size,
            time_budget_s=settings.tune_seconds_per_level,
            measure_loss=False,
            seed=seed,
            progress=False,
        )
        bar.update(1)
        return result

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(levels)))) as pool:
        results = list(pool.map(tune, levels))
    return dict(zip(levels, results, strict=True))


# ---------------------------------------------------------------------- statistics
def _interval(a: Tensor, b: Tensor, resamples: int, seed: int) -> dict[str, float]:
    """Mean of a - b (per-image correctness, same images) with its paired bootstrap 95% CI."""
    from ..evaluate.metrics import paired_bootstrap_diff

    result = paired_bootstrap_diff(a.numpy(), b.numpy(), n_resamples=resamples, seed=seed)
    return {"mean": result.diff, "low": result.low, "high": result.high}


#: The evaluated conditions, in the order of the report; "paper" is the main result.
CONDITIONS = ("paper", "clipped", "shuffled_feedback", "tuned")


@dataclass
class DemoReport:
    """What the demo measured; :meth:`to_json` is ``report.json``.

    Per-sigma entries are keyed by ``str(float(sigma))``; intervals are ``{mean, low, high}``
    (paired bootstrap 95% over test images).
    """

    seed: int
    timesteps: list[int]
    """[0, 1, ..., T]."""
    noise_levels: list[float]
    accuracy: dict[str, dict[str, list[float]]]
    """Per condition of :data:`CONDITIONS`, per sigma: accuracy at t = 0..T."""
    change_t0_to_T: dict[str, dict[str, dict[str, float]]]
    """Per condition, per sigma: accuracy at T minus at 0."""
    feedback_minus_shuffled_at_T: dict[str, dict[str, float]]
    tuned_minus_paper_at_T: dict[str, dict[str, float]]
    prediction_error: dict[str, dict[str, list[float]]]
    """Per sigma, per pcoder (``pcoder1``..): MSE at t = 0..T."""
    bootstrap: dict[str, Any]
    hyperparameters: list[dict[str, float]] = field(default_factory=list)
    tuned_hyperparameters: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    tuning: dict[str, dict[str, Any]] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    timing_seconds: dict[str, float] = field(default_factory=dict)
    seeds: int = 1

    def to_json(self) -> dict[str, Any]:
        """The flat layout of ``report.json`` (``accuracy``, ``accuracy_clipped``, ...)."""
        report: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "seeds": self.seeds,
            "seed": self.seed,
            "timesteps": self.timesteps,
            "noise_levels": self.noise_levels,
        }
        for condition in CONDITIONS:
            suffix = "" if condition == "paper" else f"_{condition}"
            report[f"accuracy{suffix}"] = self.accuracy[condition]
            report[f"change_t0_to_T{suffix}"] = self.change_t0_to_T[condition]
        for name in (
            "feedback_minus_shuffled_at_T",
            "tuned_minus_paper_at_T",
            "prediction_error",
            "bootstrap",
            "hyperparameters",
            "tuned_hyperparameters",
            "tuning",
            "run",
            "findings",
            "timing_seconds",
        ):
            report[name] = getattr(self, name)
        return report


def _sigma_key(sigma: float) -> str:
    return str(float(sigma))


def _build_report(
    outcomes: dict[tuple[str, float], Outcome],
    noise_levels: Sequence[float],
    timesteps: int,
    settings: DemoSettings,
    seed: int,
    num_pcoders: int,
) -> DemoReport:
    resamples = settings.bootstrap_resamples
    accuracy: dict[str, dict[str, list[float]]] = {}
    change: dict[str, dict[str, dict[str, float]]] = {}
    for condition in CONDITIONS:
        key = "" if condition == "paper" else condition
        accuracy[condition], change[condition] = {}, {}
        for sigma in noise_levels:
            # Clean images are in [0, 1]: the clipped setting at sigma 0 is the main one.
            source_key = "" if key == "clipped" and sigma == 0 else key
            correct = outcomes[(source_key, sigma)].correct.double()
            accuracy[condition][_sigma_key(sigma)] = correct.mean(dim=1).tolist()
            change[condition][_sigma_key(sigma)] = _interval(
                correct[-1], correct[0], resamples, seed
            )

    def difference_at_t(first: str, second: str) -> dict[str, dict[str, float]]:
        """Per sigma: accuracy at T of condition ``first`` minus that of ``second``."""
        return {
            _sigma_key(sigma): _interval(
                outcomes[(first, sigma)].correct[-1].double(),
                outcomes[(second, sigma)].correct[-1].double(),
                resamples,
                seed,
            )
            for sigma in noise_levels
        }

    shuffled = difference_at_t("", "shuffled_feedback")
    tuned = difference_at_t("tuned", "")
    prediction_error = {}
    for sigma in noise_levels:
        errors = outcomes[("", sigma)].errors
        assert errors is not None
        prediction_error[_sigma_key(sigma)] = {
            f"pcoder{index + 1}": errors[:, index].tolist() for index in range(num_pcoders)
        }
    return DemoReport(
        seed=seed,
        timesteps=list(range(timesteps + 1)),
        noise_levels=[float(s) for s in noise_levels],
        accuracy=accuracy,
        change_t0_to_T=change,
        feedback_minus_shuffled_at_T=shuffled,
        tuned_minus_paper_at_T=tuned,
        prediction_error=prediction_error,
        bootstrap={
            "resamples": resamples,
            "confidence": 0.95,
            "paired_over": "test images (the same images and the same noise draw in every setting)",
        },
    )


# ---------------------------------------------------------------------- the demo


def run_demo(
    out_dir: str | os.PathLike[str] = "predify-demo", settings: DemoSettings | None = None
) -> DemoReport:
    """Run the demo and write its outputs into ``out_dir``; returns the report.

    >>> report = run_demo("predify-demo", replace(QUICK, seed=1))  # doctest: +SKIP
    >>> report.accuracy["paper"]["0.25"]                            # doctest: +SKIP

    Args:
        out_dir: output directory (created; files in it are replaced); it is also a run
            directory that ``predify evaluate`` and ``predify tune`` read.
        settings: :data:`FULL` when None.

    Raises:
        ConfigError, DataError: bad settings, or an output folder that cannot be written.
    """
    settings = FULL if settings is None else settings
    steps = settings.timesteps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"--timesteps: expected an integer >= 1, got {steps!r}")
    seed = settings.seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"--seed: expected an integer, got {seed!r}")
    levels = [float(sigma) for sigma in settings.noise_levels]
    if not levels or any(not math.isfinite(s) or s < 0 for s in levels):
        raise ConfigError(
            f"noise_levels: expected finite values >= 0, got {list(settings.noise_levels)}"
        )
    out = prepare_output_dir(out_dir)
    target_device = resolve_device(settings.device)
    progress = resolve_progress(settings.progress)
    if target_device.type != "cpu":
        return _run_demo(out, settings, steps, seed, levels, target_device, progress, workers=1)
    # Ops run single-threaded on the CPU: the numbers are then the same on any number of cores
    # (reductions split over threads round differently), and a busy machine does not stall the
    # small steps of this demo on threads waiting for each other. The cores are used instead by
    # evaluating several settings at once.
    workers = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_demo(out, settings, steps, seed, levels, target_device, progress, workers)
    finally:
        torch.set_num_threads(workers)


def _run_demo(
    out: Path,
    settings: DemoSettings,
    steps: int,
    seed: int,
    levels: list[float],
    target_device: torch.device,
    progress: bool,
    workers: int,
) -> DemoReport:
    from ..data import mnist5k_splits
    from ..models import pshallow
    from ..train import (
        FeedbackTrainer,
        MetricsLogging,
        ModelCheckpoint,
        ProgressBar,
        TrainSettings,
        seed_everything,
    )

    started = time.perf_counter()
    timings: dict[str, float] = {}

    seed_everything(seed)
    splits = mnist5k_splits(SPLIT_SEED)
    # The whole split as `load_dataset("mnist5k:train")` gives it, so that `predify train
    # --resume DIR` continues this run exactly; the trainer shuffles it per epoch.
    train = (
        splits.train
        if settings.train_images is None
        else _subset(splits.train, settings.train_images, seed)
    )
    test = _subset(splits.test, settings.test_images, seed + 1)  # mixed classes in every batch
    timings["data"] = time.perf_counter() - started

    phase = time.perf_counter()
    backbone, backbone_losses = _train_backbone(train, settings, seed, target_device, progress)
    val_accuracy = _accuracy(backbone, splits.val, target_device)
    timings["backbone"] = time.perf_counter() - phase

    phase = time.perf_counter()
    backbone.requires_grad_(False)
    pnet = pshallow(backbone, in_channels=1, image_size=28, timesteps=steps)
    trainer = FeedbackTrainer(pnet, lr=settings.feedback_lr, seed=seed, device=target_device)
    feedback_losses = trainer.fit(
        train,
        epochs=settings.feedback_epochs,
        batch_size=settings.batch_size,
        callbacks=[
            ModelCheckpoint(out / "checkpoint.pt"),
            MetricsLogging(out, tensorboard=False),
            ProgressBar(progress),
        ],
    )
    pnet.eval()
    training = None
    if settings.train_images is None:
        # The same data, order and settings as `predify train`: `--resume DIR` continues it.
        training = TrainSettings(
            data="mnist5k:train",
            epochs=settings.feedback_epochs,
            batch_size=settings.batch_size,
            lr=settings.feedback_lr,
            seed=seed,
        ).run_json(image_size=None)
        training.update(status="finished", steps=trainer.global_step)
    extra: dict[str, Any] = {"demo": {"quick": settings.quick, "timesteps": steps}}
    if training is not None:
        extra["training"] = training
    info = RunInfo(
        backbone={"name": "shallow_cnn", "kwargs": {"in_channels": 1, "num_classes": 10}},
        data={"spec": "mnist5k", "split_seed": SPLIT_SEED},
        num_classes=10,
        normalization=None,
        seed=seed,
        extra=extra,
    )
    save_run(out, pnet, info)
    timings["feedback"] = time.perf_counter() - phase

    phase = time.perf_counter()
    tuning_data = (
        splits.val
        if settings.tune_images is None
        else _subset(splits.val, settings.tune_images, seed + 4)
    )
    with tqdm(total=len(levels), desc="3/4 tuning", disable=not progress) as bar:
        tuning = _tune_levels(pnet, tuning_data, levels, steps, settings, seed + 5, bar, workers)
    timings["tuning"] = time.perf_counter() - phase

    phase = time.perf_counter()
    images, labels = test.tensors
    # One noise draw for everything: every comparison below is paired.
    noise = add_gaussian_noise(
        torch.zeros_like(images), 1.0, torch.Generator().manual_seed(seed + 2)
    )
    to_run = conditions_to_run(
        levels, {sigma: tuple(result.effective) for sigma, result in tuning.items()}
    )
    batches = math.ceil(len(labels) / settings.eval_batch_size)
    with tqdm(total=len(to_run) * batches, desc="4/4 evaluation", disable=not progress) as bar:
        outcomes = evaluate_conditions(
            pnet,
            images,
            labels,
            noise,
            to_run,
            steps,
            settings.eval_batch_size,
            seed + 3,
            target_device,
            bar,
            workers,
        )
    timings["evaluation"] = time.perf_counter() - phase

    report = _build_report(outcomes, levels, steps, settings, seed, pnet.num_pcoders)
    report.hyperparameters = [
        asdict(pnet.config.hyperparameters_of(index)) for index in range(pnet.num_pcoders)
    ]
    report.tuned_hyperparameters = {
        _sigma_key(sigma): [{**asdict(value), "memory": value.memory} for value in result.effective]
        for sigma, result in tuning.items()
    }
    report.tuning = {
        _sigma_key(sigma): {
            "method": "gradient",
            "split": "validation",
            "steps": result.steps,
            "seconds": round(result.seconds, 2),
            "stopped_by_budget": result.stopped_by_budget,
            "final_loss": result.final_loss,
        }
        for sigma, result in tuning.items()
    }
    report.run = {
        "quick": settings.quick,
        "device": str(target_device),
        "intra_op_threads": torch.get_num_threads(),
        "parallel_evaluations": workers,
        "split_seed": SPLIT_SEED,
        "train_images": len(train),
        "test_images": len(test),
        "backbone_epochs": settings.backbone_epochs,
        "backbone_train_loss": backbone_losses,
        "backbone_val_accuracy": val_accuracy,
        "feedback_epochs": settings.feedback_epochs,
        "feedback_train_loss": feedback_losses,
        "noise_seed": seed + 2,
        "tune_steps": settings.tune_steps,
        "tune_batch_size": settings.tune_batch_size,
        "tune_seconds_per_level": settings.tune_seconds_per_level,
        "tune_images": len(tuning_data),
    }
    report.findings = findings(report.to_json())

    phase = time.perf_counter()
    plot_accuracy(report.to_json(), out / "accuracy_vs_timestep.png")
    plot_reconstructions(outcomes, images[0], levels, out / "reconstructions.png")
    plot_prediction_error(report.to_json(), out / "prediction_error.png")
    timings["plots"] = time.perf_counter() - phase
    timings["total"] = time.perf_counter() - started
    report.timing_seconds = {name: round(value, 2) for name, value in timings.items()}
    atomic_write_json(out / "report.json", report.to_json())
    atomic_write_text(out / "report.md", markdown_report(report.to_json()))
    return report
