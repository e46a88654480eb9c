"""One seed of the demo, and several seeds in parallel processes.

A seed retrains everything that has an initialisation or a data order: the backbone, its
feedback, the tuning of the hyperparameters, the noise of the tuning. What every seed shares: the
MNIST-5k split, the test images and their noise draw, so that seeds are compared image by image.

Each seed runs in its own worker process with single-threaded ops: a seed's numbers are then the
same whichever other seeds run beside it, and however many run at once.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from ..config import Hyperparameters
from ..errors import DataError
from ..evaluate.analysis import correlation_distance
from ..network import PNetState, PredictiveNet

__all__ = [
    "FULL",
    "NOISE_LEVELS",
    "QUICK",
    "STAGES",
    "DemoSettings",
    "SeedResult",
    "Setting",
    "best_worker_count",
    "run_seed",
    "run_seeds",
]

#: Standard deviations of the additive Gaussian noise, for images in [0, 1].
NOISE_LEVELS = (0.0, 0.25, 0.5, 1.0)
#: The MNIST-5k split (``predify evaluate`` reads the same split back).
SPLIT_SEED = 0
#: Seeds the choice of test images and their noise: the same for every training seed.
TEST_SEED = 1_000


@dataclass(frozen=True)
class DemoSettings:
    """The demo's sizes; :data:`FULL` by default, :data:`QUICK` with ``--quick``."""

    timesteps: int = 10
    backbone_epochs: int = 12
    backbone_lr: float = 1e-2
    backbone_batch_size: int = 64
    feedback_epochs: int = 10
    feedback_lr: float = 3e-3
    """Chosen by the validation split's reconstruction loss (1e-3: 0.46, 3e-3: 0.35, 1e-2: 0.36)."""
    feedback_batch_size: int = 64
    eval_batch_size: int = 250
    train_images: int | None = None
    """None: the whole training split (3000 images)."""
    test_images: int | None = 500
    """Of the 1000 test images (the same ones for every seed); None: all."""
    bootstrap_resamples: int = 1000
    tune_steps: int = 48
    """Adam steps of the hyperparameter tuning at each noise level: a fixed count, so that the
    tuned values do not depend on the machine's speed (48, as many as ``predify tune``'s default
    three epochs of 64 images; here of 32, which reaches the same values in half the time)."""
    tune_batch_size: int = 32
    tune_images: int | None = None
    """Validation images the tuning uses; None: the whole split (1000 images)."""
    tune_seconds_per_level: float = 120.0
    """A cap on the tuning time of one level, for slow machines (the report says if it hit)."""
    noise_levels: tuple[float, ...] = NOISE_LEVELS


FULL = DemoSettings()
QUICK = DemoSettings(
    timesteps=3,
    backbone_epochs=4,
    backbone_lr=2e-2,
    backbone_batch_size=32,
    feedback_epochs=2,
    eval_batch_size=100,
    train_images=600,
    test_images=100,
    bootstrap_resamples=200,
    tune_steps=3,
    tune_images=100,
)

#: The stages of a seed, as its progress events name them.
STAGES = ("backbone", "feedback", "tuning", "evaluation")


@dataclass(frozen=True)
class Setting:
    """One evaluated condition: a noise level, clipping, and what the feedback is."""

    key: str
    """The report entry: ``accuracy`` + ``_<key>`` (empty for the main result)."""
    sigma: float
    clip: bool = False
    shuffled: bool = False
    tuned: bool = False


def settings_to_run(noise_levels: Sequence[float]) -> list[Setting]:
    """Every evaluated condition of one seed (the main ones first)."""
    runs = [Setting("", sigma) for sigma in noise_levels]
    for sigma in noise_levels:
        if sigma > 0:  # clipping clean images, already in [0, 1], changes nothing
            runs.append(Setting("clipped", sigma, clip=True))
        runs.append(Setting("shuffled_feedback", sigma, shuffled=True))
        runs.append(Setting("tuned", sigma, tuned=True))
    return runs


@dataclass
class SeedResult:
    """What one seed measured (plain arrays: it crosses a process boundary)."""

    seed: int
    correct: dict[tuple[str, float], np.ndarray]
    """bool [T+1, N] per (setting key, sigma): test image n classified correctly at t."""
    prediction_error: dict[float, np.ndarray]
    """[T+1, n_pcoders] mean prediction error over the test images (main setting)."""
    correlation_distance: dict[float, np.ndarray]
    """[n_pcoders, T+1] mean correlation distance between each test image's representation
    with noise sigma and without (main setting, paper hyperparameters), for sigma > 0."""
    distance_ends: dict[float, np.ndarray]
    """[n_pcoders, 2, N] the same per test image, at t = 0 and t = T."""
    tuned: dict[float, list[dict[str, float]]]
    """Per sigma, per pcoder: the tuned feedforward, feedback, memory, pc."""
    tuning: dict[float, dict[str, Any]]
    backbone_val_accuracy: float
    backbone_train_loss: list[float]
    feedback_train_loss: list[dict[str, float]]
    pcoder_names: list[str]
    timings: dict[str, float]
    reconstructions: dict[float, np.ndarray] = field(default_factory=dict)
    """[T+1, C, H, W] the first decoder's prediction of the first test image (main setting)."""
    shown_inputs: dict[float, np.ndarray] = field(default_factory=dict)


# ---------------------------------------------------------------------- data and training
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


# ---------------------------------------------------------------------- evaluation
def derangement(size: int, generator: torch.Generator) -> Tensor:
    """A random permutation without fixed points: image i gets the feedback of image p[i] != i."""
    if size < 2:
        raise DataError("the shuffled-feedback control needs batches of at least 2 images")
    order = torch.randperm(size, generator=generator)
    source = torch.empty(size, dtype=torch.long)
    source[order] = order.roll(-1)  # one cycle through a random order: nobody keeps their own
    return source


def with_shuffled_feedback(state: PNetState, source: Tensor) -> PNetState:
    """The state with the top-down predictions (those of pcoders 2..N, which feed the layer
    below) taken from other images; pcoder 1's prediction of the input feeds nothing."""
    preds = [state.preds[0], *(p[source] if p is not None else None for p in state.preds[1:])]
    return replace(state, preds=preds)


def _noisy(images: Tensor, noise: Tensor, sigma: float, clip: bool) -> Tensor:
    x = images + sigma * noise
    return x.clamp(0.0, 1.0) if clip else x


def evaluate_main(
    pnet: PredictiveNet,
    images: Tensor,
    labels: Tensor,
    noise: Tensor,
    levels: Sequence[float],
    timesteps: int,
    batch_size: int,
    device: torch.device,
    on_setting: Callable[[], None],
) -> tuple[Any, ...]:
    """The main setting (paper hyperparameters, unclipped noise) at every level, the levels in
    lockstep so that each noisy representation meets its clean one at the same timestep.

    Returns correct {sigma: bool [T+1, N]}, prediction errors {sigma: [T+1, P]}, correlation
    distances {sigma > 0: [P, T+1]} (image means) and {sigma > 0: [P, 2, N]} (per image at
    t = 0 and T), and (reconstructions, shown inputs) of the first image.
    """
    correct: dict[float, list[Tensor]] = {sigma: [] for sigma in levels}
    errors = {
        sigma: torch.zeros(timesteps + 1, pnet.num_pcoders, dtype=torch.float64) for sigma in levels
    }
    noisy_levels = [sigma for sigma in levels if sigma > 0]
    if noisy_levels and 0.0 not in levels:
        raise DataError("the correlation distance needs sigma 0 among the noise levels")
    distance_sums = {
        sigma: torch.zeros(pnet.num_pcoders, timesteps + 1, dtype=torch.float64)
        for sigma in noisy_levels
    }
    # Per image at t = 0 and t = T: [batches] of [P, 2, b].
    distance_ends: dict[float, list[Tensor]] = {sigma: [] for sigma in noisy_levels}
    shown: dict[float, list[Tensor]] = {sigma: [] for sigma in levels}
    shown_inputs: dict[float, np.ndarray] = {}
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            part = slice(start, start + batch_size)
            target = labels[part].to(device)
            clean = images[part].to(device)
            inputs = {
                sigma: _noisy(clean, noise[part].to(device), sigma, False) for sigma in levels
            }
            states = {sigma: pnet.start(x, with_errors=True) for sigma, x in inputs.items()}
            for t in range(timesteps + 1):
                if t > 0:
                    states = {sigma: pnet.step(s, with_errors=True) for sigma, s in states.items()}
                reference = states.get(0.0)
                for sigma, state in states.items():
                    if t == 0:
                        correct[sigma].append(
                            torch.empty(timesteps + 1, len(target), dtype=torch.bool)
                        )
                    correct[sigma][-1][t] = (state.logits.argmax(-1) == target).cpu()
                    assert state.errors is not None
                    errors[sigma][t] += state.errors.double().cpu() * len(target)
                    if sigma > 0 and reference is not None:
                        if t == 0:
                            distance_ends[sigma].append(
                                torch.empty(pnet.num_pcoders, 2, len(target), dtype=torch.float64)
                            )
                        for index in range(pnet.num_pcoders):
                            distance = (
                                correlation_distance(reference.reps[index], state.reps[index])
                                .double()
                                .cpu()
                            )
                            distance_sums[sigma][index, t] += distance.sum()
                            if t in (0, timesteps):
                                distance_ends[sigma][-1][index, int(t > 0)] = distance
                    if start == 0:
                        first_prediction = state.preds[0]
                        assert first_prediction is not None
                        shown[sigma].append(first_prediction[0].cpu())
            if start == 0:
                shown_inputs = {sigma: x[0].cpu().numpy() for sigma, x in inputs.items()}
    count = len(labels)
    for _ in levels:
        on_setting()
    return (
        {sigma: torch.cat(parts, dim=1).numpy() for sigma, parts in correct.items()},
        {sigma: (total / count).numpy() for sigma, total in errors.items()},
        {sigma: (total / count).numpy() for sigma, total in distance_sums.items()},
        {sigma: torch.cat(parts, dim=2).numpy() for sigma, parts in distance_ends.items()},
        ({sigma: torch.stack(parts).numpy() for sigma, parts in shown.items()}, shown_inputs),
    )


def evaluate_setting(
    pnet: PredictiveNet,
    images: Tensor,
    labels: Tensor,
    noise: Tensor,
    setting: Setting,
    hyperparameters: Sequence[Hyperparameters] | None,
    timesteps: int,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> np.ndarray:
    """bool [T+1, N]: correctness at every timestep of one control or tuned setting."""
    configured = pnet.hyperparameters()
    if hyperparameters is not None:
        pnet.set_hyperparameters(list(hyperparameters))
    shuffle_generator = torch.Generator().manual_seed(seed)
    correct = []
    try:
        with torch.no_grad():
            for start in range(0, len(labels), batch_size):
                part = slice(start, start + batch_size)
                x = _noisy(images[part], noise[part], setting.sigma, setting.clip).to(device)
                target = labels[part].to(device)
                source = derangement(len(target), shuffle_generator).to(device)
                state = pnet.start(x, with_errors=False)
                per_step = [state.logits.argmax(-1) == target]
                for t in range(timesteps):
                    if setting.shuffled:
                        state = with_shuffled_feedback(state, source)
                    last = t == timesteps - 1
                    state = pnet.step(state, with_predictions=not last, with_errors=False)
                    per_step.append(state.logits.argmax(-1) == target)
                correct.append(torch.stack(per_step).cpu())
    finally:
        pnet.set_hyperparameters(configured)
    return torch.cat(correct, dim=1).numpy()


# ---------------------------------------------------------------------- one seed
def _level_seed(seed: int, purpose: str, sigma: float) -> int:
    """A seed for one purpose at one noise level: independent of the order of the levels."""
    return zlib.crc32(f"{seed}/{purpose}/{float(sigma)}".encode())


def _hyperparameter_dict(value: Hyperparameters) -> dict[str, float]:
    return {
        "feedforward": value.feedforward,
        "feedback": value.feedback,
        "memory": value.memory,
        "pc": value.pc,
    }


def run_seed(
    seed: int,
    settings: DemoSettings,
    run_dir: str,
    device_name: str,
    events: Any = None,
) -> SeedResult:
    """Train, tune and evaluate one seed; writes its run directory into ``run_dir``.

    ``events`` (a queue, or None) receives ``(seed, stage, amount)`` as work is done, for the
    progress bars of the parent process.
    """
    from ..data import mnist5k_splits
    from ..models import SmallCNN, psmallcnn
    from ..runs import RunInfo, save_run
    from ..train import FeedbackTrainer, seed_everything
    from ..tune import parse_noise, tune_gradient

    def report(stage: str, amount: int = 1) -> None:
        if events is not None:
            events.put((seed, stage, amount))

    device = torch.device(device_name)
    if device.type == "cpu":
        # The same numbers on any number of cores (reductions split over threads round
        # differently), and no stalls on threads waiting for each other on a busy machine.
        torch.set_num_threads(1)
    timings: dict[str, float] = {}
    levels = list(settings.noise_levels)
    steps = settings.timesteps
    out = Path(run_dir)

    phase = time.perf_counter()
    seed_everything(seed)
    splits = mnist5k_splits(SPLIT_SEED)
    train = (
        splits.train
        if settings.train_images is None
        else subset(splits.train, settings.train_images, seed)
    )
    # The same test images and noise for every seed, in mixed-class batches.
    test = subset(splits.test, settings.test_images, TEST_SEED)
    images, labels = test.tensors
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(TEST_SEED + 1))
    backbone = SmallCNN(in_channels=1, num_classes=10, image_size=28)
    backbone_losses = train_backbone(
        backbone, train, settings, seed, device, lambda: report("backbone")
    )
    val_accuracy = accuracy(backbone, splits.val, device)
    timings["backbone"] = time.perf_counter() - phase

    phase = time.perf_counter()
    backbone.requires_grad_(False)
    pnet = psmallcnn(backbone, in_channels=1, image_size=28, timesteps=steps)
    trainer = FeedbackTrainer(pnet, lr=settings.feedback_lr, seed=seed, device=device)
    feedback_losses = trainer.fit(
        train,
        epochs=settings.feedback_epochs,
        batch_size=settings.feedback_batch_size,
        checkpoint_path=out / "checkpoint.pt",
        log_dir=out,
        tensorboard=False,
        progress=False,
        callback=lambda step, losses: report("feedback"),
    )
    pnet.eval()
    extra: dict[str, Any] = {"demo": {"quick": settings == QUICK, "timesteps": steps}}
    if settings.train_images is None:
        # The same data, order and settings as `predify train`: `--resume DIR` continues it.
        extra["training"] = {
            "data": "mnist5k:train",
            "data_root": None,
            "image_size": None,
            "epochs": settings.feedback_epochs,
            "batch_size": settings.feedback_batch_size,
            "lr": settings.feedback_lr,
            "weight_decay": 5e-4,
            "optimizer": "adam",
            "momentum": 0.9,
            "timesteps": 0,
            "tbptt": None,
            "checkpoint_activations": False,
            "amp": False,
            "seed": seed,
            "status": "finished",
            "steps": trainer.global_step,
        }
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
    timings["feedback"] = time.perf_counter() - phase

    phase = time.perf_counter()
    tuning_data = (
        splits.val
        if settings.tune_images is None
        else subset(splits.val, settings.tune_images, seed + 4)
    )
    tuned: dict[float, list[Hyperparameters]] = {}
    tuning: dict[float, dict[str, Any]] = {}
    for sigma in levels:
        result = tune_gradient(
            pnet,
            tuning_data,
            parse_noise(f"gaussian:{sigma}"),
            timesteps=steps,
            epochs=1_000,  # max_steps ends it first
            max_steps=settings.tune_steps,
            batch_size=settings.tune_batch_size,
            time_budget_s=settings.tune_seconds_per_level,
            measure_loss=False,
            seed=_level_seed(seed, "tune", sigma),
            progress=False,
        )
        tuned[sigma] = list(result.effective)
        losses = [point.loss for point in result.trajectory if point.note == ""]
        window = max(1, min(len(losses) // 4, 8))
        tuning[sigma] = {
            "method": "gradient",
            "split": "validation",
            "steps": result.steps,
            "seconds": round(result.seconds, 2),
            "stopped_by_budget": result.stopped_by_budget,
            # Mini-batch losses (CE summed over t = 1..T) of the first and last steps.
            "loss_first_steps": float(np.mean(losses[:window])) if losses else math.nan,
            "loss_last_steps": float(np.mean(losses[-window:])) if losses else math.nan,
        }
        report("tuning", settings.tune_steps)
    timings["tuning"] = time.perf_counter() - phase

    phase = time.perf_counter()
    correct_main, errors, distances, distance_ends, (reconstructions, shown) = evaluate_main(
        pnet,
        images,
        labels,
        noise,
        levels,
        steps,
        settings.eval_batch_size,
        device,
        lambda: report("evaluation"),
    )
    correct = {("", sigma): value for sigma, value in correct_main.items()}
    for setting in settings_to_run(levels)[len(levels) :]:
        correct[(setting.key, setting.sigma)] = evaluate_setting(
            pnet,
            images,
            labels,
            noise,
            setting,
            tuned[setting.sigma] if setting.tuned else None,
            steps,
            settings.eval_batch_size,
            _level_seed(seed, f"shuffle-{setting.key}", setting.sigma),
            device,
        )
        report("evaluation")
    timings["evaluation"] = time.perf_counter() - phase
    return SeedResult(
        seed=seed,
        correct=correct,
        prediction_error=errors,
        correlation_distance=distances,
        distance_ends=distance_ends,
        tuned={sigma: [_hyperparameter_dict(v) for v in values] for sigma, values in tuned.items()},
        tuning=tuning,
        backbone_val_accuracy=val_accuracy,
        backbone_train_loss=backbone_losses,
        feedback_train_loss=feedback_losses,
        pcoder_names=[f"pcoder{index + 1}" for index in range(pnet.num_pcoders)],
        timings={name: round(value, 2) for name, value in timings.items()},
        reconstructions=reconstructions,
        shown_inputs=shown,
    )


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
        * math.ceil(train_images / settings.feedback_batch_size),
        "tuning": seeds * levels * settings.tune_steps,
        "evaluation": seeds * len(settings_to_run(settings.noise_levels)),
    }


def run_seeds(
    seeds: Sequence[int],
    settings: DemoSettings,
    out: Path,
    device: str,
    *,
    workers: int,
    progress: bool,
) -> list[SeedResult]:
    """Run every seed, ``workers`` at once, each in its own worker process (0: in this process,
    one after the other); the run directory of seed s is ``out / f"seed-{s}"``. A progress bar
    per stage counts the work of all seeds. Returns the results in the order of ``seeds``."""
    totals = stage_totals(settings, len(seeds))
    bars = {
        stage: tqdm(
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
                results[seed] = run_seed(seed, settings, str(out / f"seed-{seed}"), device, direct)
        else:
            _run_in_processes(seeds, settings, out, device, workers, bars, results)
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


def _run_in_processes(
    seeds: Sequence[int],
    settings: DemoSettings,
    out: Path,
    device: str,
    workers: int,
    bars: dict[str, Any],
    results: dict[int, SeedResult],
) -> None:
    context = multiprocessing.get_context("spawn")  # no fork of a process that has threads
    with context.Manager() as manager, ProcessPoolExecutor(workers, context) as pool:
        events = manager.Queue()
        pending: set[Future[SeedResult]] = {
            pool.submit(run_seed, seed, settings, str(out / f"seed-{seed}"), device, events)
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
