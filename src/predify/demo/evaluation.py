"""The demo's evaluated conditions, each scored at every timestep on the same test images and
the same noise draw: the paper's hyperparameters with unclipped noise (the main one, with its
prediction errors and the correlation distance of representations), clipped noise, the
shuffled-feedback control and the hyperparameters tuned on the validation split."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    "derangement",
    "evaluate_condition",
    "evaluate_main",
    "paper_conditions",
    "tuned_conditions",
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


def tuned_conditions(noise_levels: Sequence[float]) -> list[Condition]:
    """The tuned condition at every level (each with its own hyperparameters, so one pass each)."""
    return [Condition("tuned", sigma, tuned=True) for sigma in noise_levels]


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

    correct: dict[tuple[str, float], np.ndarray]
    """bool [T+1, N] per (condition, sigma) of the main setting (``paper``) and the controls
    with the paper's hyperparameters (``clipped``, ``shuffled_feedback``)."""
    prediction_error: dict[float, np.ndarray]
    """[T+1, P] per sigma: each pcoder's prediction error, mean over images (main setting)."""
    correlation_distance: dict[float, np.ndarray]
    """[P, T+1] per sigma > 0: 1 - r(clean, noisy representation), mean over images."""
    distance_ends: dict[float, np.ndarray]
    """[P, 2, N] per sigma > 0: the same per image, at t = 0 and t = T."""
    reconstructions: dict[float, np.ndarray]
    """[T+1, C, H, W] per sigma: the first decoder's prediction of the first image."""
    shown_inputs: dict[float, np.ndarray]
    """[C, H, W] per sigma: the first image as the network saw it."""
    scales: dict[tuple[str, float], ScaleTrace]
    """Per (condition, sigma) as ``correct``: the logit scale and each pcoder's representation
    norm at t = 0..T."""


def paper_conditions(levels: Sequence[float]) -> list[Condition]:
    """The conditions that run with the paper's hyperparameters, in the order of a batched
    pass: the main one at every level, then clipped noise (sigma > 0), then shuffled feedback."""
    return [
        *(Condition("paper", sigma) for sigma in levels),
        *(Condition("clipped", sigma, clip=True) for sigma in levels if sigma > 0),
        *(Condition("shuffled_feedback", sigma, shuffled=True) for sigma in levels),
    ]


@dataclass
class _Sums:
    """What the main pass adds up over batches."""

    correct: dict[tuple[str, float], list[Tensor]]
    errors: dict[float, Tensor]
    distance_sums: dict[float, Tensor]
    distance_ends: dict[float, list[Tensor]]
    shown: dict[float, list[Tensor]]
    scales: dict[tuple[str, float], ScaleAccumulator]


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
    shuffle_seeds: Mapping[float, int],
) -> MainEvaluation:
    """Every condition with the paper's hyperparameters
    ([`paper_conditions()`][predify.demo.evaluation.paper_conditions]) in one unrolled pass per
    batch of test images: the conditions stepped in lockstep (each its own state, as it runs
    alone), so that each noisy representation meets its clean one at the same timestep.
    ``shuffle_seeds``: per sigma, the seed of the shuffled-feedback control's derangements."""
    noisy_levels = [sigma for sigma in levels if sigma > 0]
    if noisy_levels and 0.0 not in levels:
        raise DataError("the correlation distance needs sigma 0 among the noise levels")
    groups = paper_conditions(levels)
    pcoders = pnet.num_pcoders
    sums = _Sums(
        correct={(c.name, c.sigma): [] for c in groups},
        errors={s: torch.zeros(timesteps + 1, pcoders, dtype=torch.float64) for s in levels},
        distance_sums={
            s: torch.zeros(pcoders, timesteps + 1, dtype=torch.float64) for s in noisy_levels
        },
        distance_ends={s: [] for s in noisy_levels},
        shown={s: [] for s in levels},
        scales={(c.name, c.sigma): ScaleAccumulator(timesteps, pcoders) for c in groups},
    )
    generators = {s: torch.Generator().manual_seed(shuffle_seeds[s]) for s in levels}
    shown_inputs: dict[float, np.ndarray] = {}
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            part = slice(start, start + batch_size)
            inputs = [_noisy(images[part], noise[part], c.sigma, c.clip).to(device) for c in groups]
            _main_batch(pnet, groups, inputs, labels[part].to(device), timesteps, generators, sums)
            if start == 0:
                shown_inputs = {
                    c.sigma: x[0].cpu().numpy()
                    for c, x in zip(groups, inputs, strict=True)
                    if c.name == "paper"
                }
    for _ in groups:
        on_setting()
    count = len(labels)
    return MainEvaluation(
        correct={key: torch.cat(parts, dim=1).numpy() for key, parts in sums.correct.items()},
        prediction_error={sigma: (total / count).numpy() for sigma, total in sums.errors.items()},
        correlation_distance={
            sigma: (total / count).numpy() for sigma, total in sums.distance_sums.items()
        },
        distance_ends={
            sigma: torch.cat(parts, dim=2).numpy() for sigma, parts in sums.distance_ends.items()
        },
        reconstructions={sigma: torch.stack(parts).numpy() for sigma, parts in sums.shown.items()},
        shown_inputs=shown_inputs,
        scales={key: accumulator.result() for key, accumulator in sums.scales.items()},
    )


def _main_batch(
    pnet: PredictiveNet,
    groups: Sequence[Condition],
    inputs: Sequence[Tensor],
    target: Tensor,
    timesteps: int,
    generators: Mapping[float, torch.Generator],
    sums: _Sums,
) -> None:
    """One batch of every paper condition, in lockstep: each condition's own state, stepped
    timestep by timestep, so that each noisy representation meets its clean one at the same
    timestep. One state per condition rather than the conditions concatenated: a pass over
    11 x 250 images costs 1.6x the CPU time of 11 passes over 250 (tensors that no longer fit
    the caches; measured single-threaded on SmallCNN, T = 10)."""
    size = len(target)
    sources = [
        derangement(size, generators[c.sigma]).to(target.device) if c.shuffled else None
        for c in groups
    ]
    first = len(sums.correct[(groups[0].name, groups[0].sigma)]) == 0
    for condition in groups:
        sums.correct[(condition.name, condition.sigma)].append(
            torch.empty(timesteps + 1, size, dtype=torch.bool)
        )
    for sigma in sums.distance_ends:
        sums.distance_ends[sigma].append(
            torch.empty(pnet.num_pcoders, 2, size, dtype=torch.float64)
        )
    clean = groups.index(Condition("paper", 0.0)) if 0.0 in sums.errors else None
    # t = 0 does not depend on the feedback: one feed-forward pass per distinct input, shared by
    # the main condition and the shuffled-feedback control at each level.
    starts: dict[tuple[float, bool], PNetState] = {}
    for condition, x in zip(groups, inputs, strict=True):
        if (condition.sigma, condition.clip) not in starts:
            starts[(condition.sigma, condition.clip)] = pnet.start(x, with_errors=False)
    states = [starts[(c.sigma, c.clip)] for c in groups]
    # Only the main condition reports predictions at t = T (prediction error, reconstructions).
    predicts_last = [c.name == "paper" for c in groups]
    for t in range(timesteps + 1):
        if t > 0:
            states = [
                pnet.step(
                    state if source is None else with_shuffled_feedback(state, source),
                    with_predictions=t < timesteps or predicted,
                    with_errors=False,
                )
                for state, source, predicted in zip(states, sources, predicts_last, strict=True)
            ]
        for condition, state in zip(groups, states, strict=True):
            key = (condition.name, condition.sigma)
            sums.correct[key][-1][t] = ~misclassified(state.logits, target).cpu()
            sums.scales[key].add(t, state.logits, state.reps)
            if condition.name != "paper":
                continue
            sums.errors[condition.sigma][t] += _prediction_errors(state) * size
            if first:
                prediction = state.preds[0]
                assert prediction is not None
                sums.shown[condition.sigma].append(prediction[0].cpu())
            if condition.sigma > 0 and clean is not None:
                _add_distances(states[clean], state, t, timesteps, sums, condition.sigma)


def _prediction_errors(state: PNetState) -> Tensor:
    """[P] float64: each pcoder's MSE between its prediction and its target."""
    errors = []
    for index, prediction in enumerate(state.preds):
        assert prediction is not None
        target = state.input if index == 0 else state.reps[index - 1]
        errors.append((prediction - target).double().pow(2).mean())
    return torch.stack(errors).cpu()


def _add_distances(
    clean: PNetState,
    noisy: PNetState,
    t: int,
    timesteps: int,
    sums: _Sums,
    sigma: float,
) -> None:
    for index, (rep, noisy_rep) in enumerate(zip(clean.reps, noisy.reps, strict=True)):
        distance = correlation_distance(rep, noisy_rep).double().cpu()
        sums.distance_sums[sigma][index, t] += distance.sum()
        if t in (0, timesteps):
            sums.distance_ends[sigma][-1][index, int(t > 0)] = distance


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
