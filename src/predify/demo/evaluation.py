"""The demo's evaluated conditions, each scored at every timestep on the same test images and
the same noise draw: the paper's hyperparameters with unclipped noise (the main one, with its
prediction errors and the correlation distance of representations), clipped noise, the
shuffled-feedback control and the hyperparameters tuned on the validation split."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from ..config import Hyperparameters
from ..errors import DataError
from ..evaluate.analysis import correlation_distance
from ..evaluate.metrics import misclassified
from ..network import PNetState, PredictiveNet
from ..tune.collapse import ScaleAccumulator, ScaleTrace

__all__ = [
    "CONDITIONS",
    "Condition",
    "MainEvaluation",
    "conditions_to_run",
    "derangement",
    "evaluate_condition",
    "evaluate_main",
    "with_shuffled_feedback",
]

#: The evaluated conditions, in the order of the report; "paper" is the main result.
CONDITIONS = ("paper", "clipped", "shuffled_feedback", "tuned")


@dataclass(frozen=True)
class Condition:
    """One evaluated condition: a noise level, clipping, and what the feedback is."""

    name: str
    """One of [`CONDITIONS`][predify.demo.evaluation.CONDITIONS]."""
    sigma: float
    clip: bool = False
    shuffled: bool = False
    tuned: bool = False


def conditions_to_run(noise_levels: Sequence[float]) -> list[Condition]:
    """The conditions besides the main one (which
    [`evaluate_main()`][predify.demo.evaluation.evaluate_main] runs for every level)."""
    conditions = []
    for sigma in noise_levels:
        if sigma > 0:  # clipping clean images, already in [0, 1], changes nothing
            conditions.append(Condition("clipped", sigma, clip=True))
        conditions.append(Condition("shuffled_feedback", sigma, shuffled=True))
        conditions.append(Condition("tuned", sigma, tuned=True))
    return conditions


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


@dataclass(frozen=True)
class MainEvaluation:
    """What [`evaluate_main()`][predify.demo.evaluation.evaluate_main] measured, per noise level
    (plain arrays: it crosses a process boundary)."""

    correct: dict[float, np.ndarray]
    """bool [T+1, N] per sigma: test image n classified correctly at t."""
    prediction_error: dict[float, np.ndarray]
    """[T+1, P] per sigma: each pcoder's prediction error, mean over images."""
    correlation_distance: dict[float, np.ndarray]
    """[P, T+1] per sigma > 0: 1 - r(clean, noisy representation), mean over images."""
    distance_ends: dict[float, np.ndarray]
    """[P, 2, N] per sigma > 0: the same per image, at t = 0 and t = T."""
    reconstructions: dict[float, np.ndarray]
    """[T+1, C, H, W] per sigma: the first decoder's prediction of the first image."""
    shown_inputs: dict[float, np.ndarray]
    """[C, H, W] per sigma: the first image as the network saw it."""
    scales: dict[float, ScaleTrace]
    """Per sigma: the logit scale and each pcoder's representation norm at t = 0..T."""


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
) -> MainEvaluation:
    """The main setting (paper hyperparameters, unclipped noise) at every level, the levels in
    lockstep so that each noisy representation meets its clean one at the same timestep."""
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
    scales = {sigma: ScaleAccumulator(timesteps, pnet.num_pcoders) for sigma in levels}
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
                    correct[sigma][-1][t] = (~misclassified(state.logits, target)).cpu()
                    scales[sigma].add(t, state.logits, state.reps)
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
    return MainEvaluation(
        correct={sigma: torch.cat(parts, dim=1).numpy() for sigma, parts in correct.items()},
        prediction_error={sigma: (total / count).numpy() for sigma, total in errors.items()},
        correlation_distance={
            sigma: (total / count).numpy() for sigma, total in distance_sums.items()
        },
        distance_ends={
            sigma: torch.cat(parts, dim=2).numpy() for sigma, parts in distance_ends.items()
        },
        reconstructions={sigma: torch.stack(parts).numpy() for sigma, parts in shown.items()},
        shown_inputs=shown_inputs,
        scales={sigma: accumulator.result() for sigma, accumulator in scales.items()},
    )


def evaluate_condition(
    pnet: PredictiveNet,
    images: Tensor,
    labels: Tensor,
    noise: Tensor,
    condition: Condition,
    hyperparameters: Sequence[Hyperparameters] | None,
    timesteps: int,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> tuple[np.ndarray, ScaleTrace]:
    """bool [T+1, N]: correctness at every timestep of one control or tuned condition, and the
    scales of its logits and representations per timestep.

    ``hyperparameters``: installed for the duration (the tuned ones), None: the network's."""
    configured = pnet.hyperparameter_values()
    if hyperparameters is not None:
        pnet.set_hyperparameters(list(hyperparameters))
    shuffle_generator = torch.Generator().manual_seed(seed)
    correct = []
    scales = ScaleAccumulator(timesteps, pnet.num_pcoders)
    try:
        with torch.no_grad():
            for start in range(0, len(labels), batch_size):
                part = slice(start, start + batch_size)
                x = _noisy(images[part], noise[part], condition.sigma, condition.clip).to(device)
                target = labels[part].to(device)
                source = derangement(len(target), shuffle_generator).to(device)
                state = pnet.start(x, with_errors=False)
                per_step = [~misclassified(state.logits, target)]
                scales.add(0, state.logits, state.reps)
                for t in range(timesteps):
                    if condition.shuffled:
                        state = with_shuffled_feedback(state, source)
                    last = t == timesteps - 1
                    state = pnet.step(state, with_predictions=not last, with_errors=False)
                    per_step.append(~misclassified(state.logits, target))
                    scales.add(t + 1, state.logits, state.reps)
                correct.append(torch.stack(per_step).cpu())
    finally:
        pnet.set_hyperparameters(configured)
    return torch.cat(correct, dim=1).numpy(), scales.result()
