"""One seed of the demo, and several seeds in parallel processes.

A seed retrains everything that has an initialisation or a data order: the backbone, its
feedback, the tuning of the hyperparameters and the tuning's noise. What every seed shares: the
MNIST-5k split, the test images and their noise draw, so that seeds are compared image by image.

Each seed runs in its own worker process with single-threaded ops: a seed's numbers are then the
same whichever other seeds run beside it and however many run at once (and the same as in this
process, ``workers=0``). A progress bar per stage counts the work of all seeds.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from ..config import Hyperparameters
from ..data.noise import add_gaussian_noise
from ..network import PredictiveNet
from ..runtime.runs import RunInfo, save_run
from ..train.callbacks import Callback
from ..tune.collapse import ScaleTrace
from .evaluation import (
    MainEvaluation,
    evaluate_condition,
    evaluate_main,
    paper_conditions,
    tuned_conditions,
)
from .report import TuningSummary
from .settings import SPLIT_SEED, TEST_SEED, DemoSettings

if TYPE_CHECKING:  # pragma: no cover
    from ..data import Splits
    from ..models import SmallCNN
    from ..train import FeedbackTrainer

__all__ = [
    "STAGES",
    "SeedResult",
    "best_worker_count",
    "evaluation_images",
    "run_seed",
    "run_seeds",
    "stage_totals",
    "subset",
]

#: The stages of a seed, in order, as its progress events name them.
STAGES = ("backbone", "feedback", "tuning", "evaluation")

# A condition on the test images: (condition name, sigma).
_Key = tuple[str, float]


@dataclass
class SeedResult:
    """What one seed measured (plain arrays: it crosses a process boundary)."""

    seed: int
    correct: dict[_Key, np.ndarray]
    """bool [T+1, N] per (condition name, sigma): test image n classified correctly at t."""
    prediction_error: dict[float, np.ndarray]
    """[T+1, n_pcoders] mean prediction error over the test images (main condition)."""
    correlation_distance: dict[float, np.ndarray]
    """[n_pcoders, T+1] mean correlation distance between each test image's representation
    with noise sigma and without (main condition: paper hyperparameters), for sigma > 0."""
    distance_ends: dict[float, np.ndarray]
    """[n_pcoders, 2, N] the same per test image, at t = 0 and t = T."""
    tuned: dict[float, list[Hyperparameters]]
    """Per sigma, per pcoder: the tuned values."""
    tuning: dict[float, TuningSummary]
    backbone_val_accuracy: float
    backbone_train_loss: list[float]
    feedback_train_loss: list[dict[str, float]]
    pcoder_names: list[str]
    paper_hyperparameters: list[Hyperparameters]
    """What each pcoder uses in the main condition (the paper's values)."""
    timings: dict[str, float]
    reconstructions: dict[float, np.ndarray] = field(default_factory=dict)
    """[T+1, C, H, W] the first decoder's prediction of the first test image (main condition)."""
    shown_inputs: dict[float, np.ndarray] = field(default_factory=dict)
    scales: dict[_Key, ScaleTrace] = field(default_factory=dict)
    """Per (condition name, sigma): the logit scale and representation norms at t = 0..T."""


# ---------------------------------------------------------------------- data and training
_M = TypeVar("_M", bound=nn.Module)


def _fast_layout(module: _M) -> _M:
    """``module`` with its 4-D weights channels-last (in place); returns it.

    Convolutions then produce channels-last maps, on which single-threaded CPU kernels are
    much faster: one seed's tuning and evaluation took 1.7x and 2.5x less CPU time (max-pooling
    and the bilinear upsampling's adjoint 4-5x less), with logits equal to 2e-6."""
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def subset(dataset: TensorDataset, count: int | None, seed: int) -> TensorDataset:
    """``count`` items of ``dataset`` in a seeded random order (all of them when None)."""
    images, labels = dataset.tensors
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    if count is not None:
        order = order[:count]
    return TensorDataset(images[order], labels[order])


def train_backbone(
    backbone: nn.Module,
    train: TensorDataset,
    settings: DemoSettings,
    seed: int,
    device: torch.device,
    on_epoch: Callable[[], None],
) -> list[float]:
    """Supervised training on clean images (Adam, one cycle); leaves it in eval mode."""
    images, labels = (tensor.to(device) for tensor in train.tensors)
    backbone.to(device)
    steps_per_epoch = math.ceil(len(labels) / settings.backbone_batch_size)
    optimizer = torch.optim.Adam(backbone.parameters(), lr=settings.backbone_lr)
    # One cycle: a short warm-up, then annealing, converges in a dozen epochs where a constant
    # rate is still a point or two lower.
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, settings.backbone_lr, total_steps=settings.backbone_epochs * steps_per_epoch
    )
    generator = torch.Generator().manual_seed(seed)
    epoch_losses = []
    backbone.train()
    for _ in range(settings.backbone_epochs):
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
        on_epoch()
    backbone.eval()
    return epoch_losses


def accuracy(model: nn.Module, dataset: TensorDataset, device: torch.device) -> float:
    images, labels = dataset.tensors
    with torch.no_grad():
        predicted = torch.cat(
            [model(chunk.to(device)).argmax(-1).cpu() for chunk in images.split(500)]
        )
    return float((predicted == labels).float().mean())


# ---------------------------------------------------------------------- one seed
def _level_seed(seed: int, purpose: str, sigma: float) -> int:
    """A seed for one purpose at one noise level: independent of the order of the levels."""
    return zlib.crc32(f"{seed}/{purpose}/{float(sigma)}".encode())


def evaluation_images(splits: Splits, settings: DemoSettings) -> tuple[TensorDataset, torch.Tensor]:
    """The test images every seed is evaluated on (in mixed-class batches) and their noise draw
    (unit Gaussian; each level scales it), the same for every seed."""
    test = subset(splits.test, settings.test_images, TEST_SEED)
    images = test.tensors[0]
    noise = add_gaussian_noise(
        torch.zeros_like(images), 1.0, torch.Generator().manual_seed(TEST_SEED + 1)
    )
    return test, noise


class _FeedbackProgress(Callback):
    """Reports every optimiser step of the feedback training as a progress event."""

    def __init__(self, report: Callable[[str, int], None]) -> None:
        self.report = report

    def on_step_end(
        self, trainer: FeedbackTrainer, losses: Mapping[str, float], lr: float, epoch: int
    ) -> None:
        self.report("feedback", 1)


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Records the stage's wall seconds as ``stage`` and its CPU seconds as ``stage_cpu``."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    timings[stage] = time.perf_counter() - wall
    timings[f"{stage}_cpu"] = time.process_time() - cpu


def _evaluate(
    pnet: PredictiveNet,
    test: TensorDataset,
    noise: Tensor,
    levels: list[float],
    tuned: dict[float, list[Hyperparameters]],
    settings: DemoSettings,
    seed: int,
    device: torch.device,
    report: Callable[..., None],
    timings: dict[str, float],
) -> tuple[MainEvaluation, dict[_Key, np.ndarray], dict[_Key, ScaleTrace]]:
    """Every condition on the test images: the paper's in one lockstep pass, then each tuned."""
    cpu = time.process_time()
    images, labels = test.tensors
    shuffle_seeds = {
        sigma: _level_seed(seed, "shuffle-shuffled_feedback", sigma) for sigma in levels
    }
    main = evaluate_main(
        pnet, images, labels, noise, levels, settings.timesteps, settings.eval_batch_size,
        device, lambda: report("evaluation"), shuffle_seeds,
    )  # fmt: skip
    # The lockstep pass of the paper's conditions, apart from the tuned ones (CPU seconds:
    # on a shared machine wall time says more about the neighbours than about the work).
    timings["evaluation_paper_cpu"] = time.process_time() - cpu
    correct, scales = dict(main.correct), dict(main.scales)
    for condition in tuned_conditions(levels):
        key = (condition.name, condition.sigma)
        correct[key], scales[key] = evaluate_condition(
            pnet, images, labels, noise, condition, tuned[condition.sigma], settings.timesteps,
            settings.eval_batch_size, 0, device,
        )  # fmt: skip
        report("evaluation")
    return main, correct, scales


def run_seed(
    seed: int,
    settings: DemoSettings,
    run_dir: str,
    device_name: str,
    events: Any = None,
    splits: Splits | None = None,
) -> SeedResult:
    """Train, tune and evaluate one seed; writes its run directory into ``run_dir``.

    Args:
        seed: seeds the backbone's initialisation and data order, the decoders, the feedback
            training, the tuning and the shuffled-feedback control.
        events: a queue (or anything with ``put``) that receives ``(seed, stage, amount)`` as
            work is done, for the progress bars; None: no events.
        splits: the MNIST-5k split (read from disk when None).
    """
    from ..data import mnist5k_splits
    from ..models import SmallCNN
    from ..train import seed_everything

    def report(stage: str, amount: int = 1) -> None:
        if events is not None:
            events.put((seed, stage, amount))

    device = torch.device(device_name)
    if device.type == "cpu":
        # The same numbers on any number of cores (reductions split over threads round
        # differently), and no stalls on threads waiting for each other on a busy machine.
        torch.set_num_threads(1)
    timings: dict[str, float] = {}
    levels = [float(sigma) for sigma in settings.noise_levels]

    with _timed(timings, "backbone"):
        seed_everything(seed)
        splits = mnist5k_splits(SPLIT_SEED) if splits is None else splits
        # The whole split as `load_dataset("mnist5k:train")` gives it, so that `predify train
        # --resume DIR` continues this run exactly; the trainer shuffles it per epoch.
        train = (
            splits.train
            if settings.train_images is None
            else subset(splits.train, settings.train_images, seed)
        )
        test, noise = evaluation_images(splits, settings)
        backbone = _fast_layout(SmallCNN(in_channels=1, num_classes=10, image_size=28))
        backbone_losses = train_backbone(
            backbone, train, settings, seed, device, lambda: report("backbone")
        )
        val_accuracy = accuracy(backbone, splits.val, device)
    with _timed(timings, "feedback"):
        pnet, feedback_losses = _train_feedback(
            backbone, train, settings, seed, device, Path(run_dir), report
        )
    with _timed(timings, "tuning"):
        tuned, tuning = _tune(pnet, splits.val, levels, settings, seed, report)
    with _timed(timings, "evaluation"):
        main, correct, scales = _evaluate(
            pnet, test, noise, levels, tuned, settings, seed, device, report, timings
        )
    return SeedResult(
        seed=seed,
        correct=correct,
        prediction_error=main.prediction_error,
        correlation_distance=main.correlation_distance,
        distance_ends=main.distance_ends,
        tuned=tuned,
        tuning=tuning,
        backbone_val_accuracy=val_accuracy,
        backbone_train_loss=backbone_losses,
        feedback_train_loss=feedback_losses,
        pcoder_names=[f"pcoder{index + 1}" for index in range(pnet.num_pcoders)],
        paper_hyperparameters=pnet.hyperparameter_values(),
        timings={name: round(value, 2) for name, value in timings.items()},
        reconstructions=main.reconstructions,
        shown_inputs=main.shown_inputs,
        scales=scales,
    )


def _train_feedback(
    backbone: SmallCNN,
    train: TensorDataset,
    settings: DemoSettings,
    seed: int,
    device: torch.device,
    out: Path,
    report: Callable[[str, int], None],
) -> tuple[PredictiveNet, list[dict[str, float]]]:
    """The feedback of the frozen ``backbone``, trained and saved as a run directory in ``out``;
    returns the network (in eval mode) and its losses per epoch."""
    from ..models import psmallcnn
    from ..train import FeedbackTrainer, MetricsLogging, ModelCheckpoint, TrainSettings

    backbone.requires_grad_(False)
    pnet = psmallcnn(backbone, in_channels=1, image_size=28, timesteps=settings.timesteps)
    _fast_layout(pnet)  # the new decoders
    trainer = FeedbackTrainer(pnet, lr=settings.feedback_lr, seed=seed, device=device)
    feedback_losses = trainer.fit(
        train,
        epochs=settings.feedback_epochs,
        batch_size=settings.batch_size,
        callbacks=[
            ModelCheckpoint(out / "checkpoint.pt"),
            MetricsLogging(out, tensorboard=False),
            _FeedbackProgress(report),
        ],
    )
    pnet.eval()
    extra: dict[str, Any] = {"demo": {"quick": settings.quick, "timesteps": settings.timesteps}}
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
        extra["training"] = training
    info = RunInfo(
        backbone={
            "name": "small_cnn",
            "kwargs": {"in_channels": 1, "num_classes": 10, "image_size": 28},
        },
        data={"spec": "mnist5k", "split_seed": SPLIT_SEED},
        num_classes=10,
        normalization=None,
        seed=seed,
        extra=extra,
    )
    save_run(out, pnet, info)
    return pnet, feedback_losses


def _tune(
    pnet: PredictiveNet,
    tuning_data: TensorDataset,
    levels: Sequence[float],
    settings: DemoSettings,
    seed: int,
    report: Callable[[str, int], None],
) -> tuple[dict[float, list[Hyperparameters]], dict[float, TuningSummary]]:
    """The hyperparameters tuned at each noise level on ``tuning_data`` (the validation split;
    a seeded subset of ``settings.tune_images``), and how each tuning went."""
    from ..tune import parse_noise, tune_gradient

    if settings.tune_images is not None:
        tuning_data = subset(tuning_data, settings.tune_images, seed + 4)
    tuned: dict[float, list[Hyperparameters]] = {}
    tuning: dict[float, TuningSummary] = {}
    for sigma in levels:
        result = tune_gradient(
            pnet,
            tuning_data,
            parse_noise(f"gaussian:{sigma}"),
            timesteps=settings.timesteps,
            epochs=1_000,  # max_steps ends it first
            max_steps=settings.tune_steps,
            batch_size=settings.tune_batch_size,
            time_budget_s=settings.tune_seconds_per_level,
            measure_loss=False,
            seed=_level_seed(seed, "tune", sigma),
            progress=False,
            objective=settings.tune_objective,
        )
        tuned[sigma] = list(result.effective)
        losses = [point.loss for point in result.trajectory if point.note == ""]
        window = max(1, min(len(losses) // 4, 8))
        tuning[sigma] = TuningSummary(
            steps=result.steps,
            seconds=round(result.seconds, 2),
            stopped_by_budget=result.stopped_by_budget,
            objective=result.objective,
            # Mini-batch losses (the tuning objective), mean of the first and of the last
            # steps: what the tuning optimised, beside what it did to accuracy.
            loss_first_steps=float(np.mean(losses[:window])) if losses else math.nan,
            loss_last_steps=float(np.mean(losses[-window:])) if losses else math.nan,
        )
        report("tuning", settings.tune_steps)
    return tuned, tuning


# ---------------------------------------------------------------------- several seeds
def best_worker_count(seeds: int, cores: int) -> int:
    """How many seeds to run at once on ``cores`` cores, each single-threaded.

    The shortest makespan of ``ceil(seeds / w)`` rounds of ``w`` seeds sharing the cores (a
    round takes ``max(1, w / cores)`` seed-times): 3 seeds on 2 cores run all at once (1.5
    seed-times) rather than 2 then 1 (2 seed-times). Ties go to fewer processes.
    """
    cores = max(1, cores)
    candidates = range(1, max(1, seeds) + 1)
    return min(candidates, key=lambda w: (math.ceil(seeds / w) * max(1.0, w / cores), w))


def stage_totals(settings: DemoSettings, seeds: int) -> dict[str, int]:
    """The amount of work of each stage over all seeds, in the units of the progress events."""
    train_images = 3000 if settings.train_images is None else settings.train_images
    levels = len(settings.noise_levels)
    return {
        "backbone": seeds * settings.backbone_epochs,
        "feedback": seeds
        * settings.feedback_epochs
        * math.ceil(train_images / settings.batch_size),
        "tuning": seeds * levels * settings.tune_steps,
        "evaluation": seeds
        * (
            len(paper_conditions(settings.noise_levels))
            + len(tuned_conditions(settings.noise_levels))
        ),
    }


def run_seeds(
    seeds: Sequence[int],
    settings: DemoSettings,
    out: Path,
    device: str,
    *,
    workers: int,
    progress: bool,
    splits: Splits,
) -> list[SeedResult]:
    """Run every seed, ``workers`` at once, each in its own worker process (0: in this process,
    one after the other); the run directory of seed s is ``out / f"seed-{s}"``. A progress bar
    per stage counts the work of all seeds. Returns the results in the order of ``seeds``.

    ``splits`` is read once here and sent to the workers."""
    totals = stage_totals(settings, len(seeds))
    bars = {
        stage: tqdm(  # one bar per stage, counting all seeds
            total=totals[stage],
            desc=f"{index + 1}/{len(STAGES)} {stage}",
            position=index,
            disable=not progress,
        )
        for index, stage in enumerate(STAGES)
    }
    results: dict[int, SeedResult] = {}
    threads = torch.get_num_threads()
    try:
        if workers == 0:
            direct = _BarUpdates(bars)
            for seed in seeds:
                run_dir = str(out / f"seed-{seed}")
                results[seed] = run_seed(seed, settings, run_dir, device, direct, splits)
        else:
            _run_in_processes(seeds, settings, out, device, workers, splits, bars, results)
    finally:
        torch.set_num_threads(threads)  # run_seed makes ops single-threaded
        for bar in bars.values():
            bar.close()
    return [results[seed] for seed in seeds]


class _BarUpdates:
    """The progress-event queue's ``put``, applied to the bars at once (seeds in this process)."""

    def __init__(self, bars: dict[str, Any]) -> None:
        self.bars = bars

    def put(self, event: tuple[int, str, int]) -> None:
        _, stage, amount = event
        self.bars[stage].update(amount)


def _worker_context() -> multiprocessing.context.BaseContext:
    """Workers forked from a server that imported this module once (where the platform has a
    fork server), else spawned.

    Never a fork of this process, which may have threads. Spawned workers each import torch and
    predify again: about 4.5 CPU-seconds a worker, 20 of the demo's CPU-seconds with 5 seeds
    (measured on 2 busy cores; the fork server pays it once)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _run_in_processes(
    seeds: Sequence[int],
    settings: DemoSettings,
    out: Path,
    device: str,
    workers: int,
    splits: Splits,
    bars: dict[str, Any],
    results: dict[int, SeedResult],
) -> None:
    context = _worker_context()
    with context.Manager() as manager, ProcessPoolExecutor(workers, context) as pool:
        events = manager.Queue()
        pending: set[Future[SeedResult]] = {
            pool.submit(run_seed, seed, settings, str(out / f"seed-{seed}"), device, events, splits)
            for seed in seeds
        }
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(events, bars)
            for future in finished:
                result = future.result()  # a worker's exception is raised here
                results[result.seed] = result
        _drain(events, bars)


def _drain(events: Any, bars: dict[str, Any]) -> None:
    while True:
        try:
            _, stage, amount = events.get_nowait()
        except queue.Empty:
            return
        bars[stage].update(amount)
