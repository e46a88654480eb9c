"""The demo's evaluated conditions: noise, clipping, the paper's or tuned hyperparameters and
the shuffled-feedback control, each scored at every timestep on the same images."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from ..config import Hyperparameters
from ..errors import DataError
from ..evaluate.metrics import misclassified
from ..network import PNetState, PredictiveNet

__all__ = ["Condition", "Outcome", "conditions_to_run", "evaluate_conditions"]


@dataclass(frozen=True)
class Condition:
    """One evaluated condition: a noise level, clipping, and what the feedback is."""

    key: str
    """The report entry: ``accuracy`` + ``_<key>`` (empty for the main result)."""
    sigma: float
    clip: bool = False
    shuffled: bool = False
    hyperparameters: Hyperparameters | tuple[Hyperparameters, ...] | None = None
    """None: the network's configured (paper) hyperparameters; else one set or one per pcoder."""


@dataclass
class Outcome:
    correct: Tensor
    """bool [T+1, N]: image n classified correctly at timestep t."""
    errors: Tensor | None = None
    """[T+1, n_pcoders] mean prediction error over the images (main setting only)."""
    reconstructions: Tensor | None = None
    """[T+1, C, H, W] the first decoder's prediction of the shown image over time."""
    shown_input: Tensor | None = None
    """[C, H, W] the shown image as the network received it."""


# ---------------------------------------------------------------------- evaluation
def _derangement(size: int, generator: torch.Generator) -> Tensor:
    """A random permutation without fixed points: image i gets the feedback of image p[i] != i."""
    if size < 2:
        raise DataError("the shuffled-feedback control needs batches of at least 2 images")
    order = torch.randperm(size, generator=generator)
    source = torch.empty(size, dtype=torch.long)
    source[order] = order.roll(-1)  # one cycle through a random order: nobody keeps their own
    return source


def _with_shuffled_feedback(state: PNetState, source: Tensor) -> PNetState:
    """The state with the top-down predictions (those of pcoders 2..N, which feed the layer
    below) taken from other images; pcoder 1's prediction of the input feeds nothing."""
    preds = [state.preds[0], *(p[source] if p is not None else None for p in state.preds[1:])]
    return replace(state, preds=preds)


def _batches(total: int, size: int) -> Iterator[slice]:
    for start in range(0, total, size):
        yield slice(start, min(start + size, total))


def _evaluate(
    pnet: PredictiveNet,
    images: Tensor,
    labels: Tensor,
    noise: Tensor,
    setting: Condition,
    timesteps: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    record: bool,
    bar: Any,
) -> Outcome:
    """Accuracy at every timestep of one setting (and, with ``record``, the prediction errors and
    the first image's reconstructions)."""
    configured = pnet.hyperparameter_values()
    if setting.hyperparameters is not None:
        pnet.set_hyperparameters(setting.hyperparameters)
    shuffle_generator = torch.Generator().manual_seed(seed)
    correct: list[Tensor] = []
    error_sums = torch.zeros(timesteps + 1, pnet.num_pcoders, dtype=torch.float64)
    outcome = Outcome(correct=torch.empty(0))
    try:
        with torch.no_grad():
            for part in _batches(len(labels), batch_size):
                x = images[part] + setting.sigma * noise[part]
                if setting.clip:
                    x = x.clamp(0.0, 1.0)
                x = x.to(device)
                target = labels[part].to(device)
                source = _derangement(len(target), shuffle_generator).to(device)
                state = pnet.start(x, with_errors=record)
                per_step = [~misclassified(state.logits, target)]
                errors = [state.errors]
                shown = [state.preds[0][0].cpu()] if record and part.start == 0 else []  # type: ignore[index]
                for _ in range(timesteps):
                    if setting.shuffled:
                        state = _with_shuffled_feedback(state, source)
                    state = pnet.step(state, with_errors=record)
                    per_step.append(~misclassified(state.logits, target))
                    errors.append(state.errors)
                    if shown:
                        shown.append(state.preds[0][0].cpu())  # type: ignore[index]
                correct.append(torch.stack(per_step).cpu())
                if record:
                    error_sums += torch.stack(errors).double().cpu() * len(target)  # type: ignore[arg-type]
                if shown:
                    outcome.reconstructions = torch.stack(shown)
                    outcome.shown_input = x[0].cpu()
                bar.update(1)
    finally:
        pnet.set_hyperparameters(configured)
    outcome.correct = torch.cat(correct, dim=1)
    if record:
        outcome.errors = (error_sums / len(labels)).float()
    return outcome


def evaluate_conditions(
    pnet: PredictiveNet,
    images: Tensor,
    labels: Tensor,
    noise: Tensor,
    to_run: Sequence[Condition],
    timesteps: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    bar: Any,
    workers: int,
) -> dict[tuple[str, float], Outcome]:
    """Every setting; on the CPU ``workers`` at once, each in its own thread on its own copy of
    the network (the demo runs ops single-threaded, see :func:`run_demo`).

    PyTorch ops release the GIL, so the settings run truly in parallel. The results do not depend
    on how many run at once: each setting has its own seeds.
    """

    def evaluate(model: PredictiveNet, setting: Condition) -> Outcome:
        bar.set_postfix_str(f"sigma {setting.sigma}, {setting.key or 'feedback'}")
        return _evaluate(
            model,
            images,
            labels,
            noise,
            setting,
            timesteps,
            batch_size,
            seed,
            device,
            record=setting.key == "",
            bar=bar,
        )

    if workers <= 1 or device.type != "cpu":
        return {(s.key, s.sigma): evaluate(pnet, s) for s in to_run}
    local = threading.local()

    def task(setting: Condition) -> Outcome:
        if not hasattr(local, "model"):
            local.model = copy.deepcopy(pnet)  # hooks and hyperparameters stay per thread
        return evaluate(local.model, setting)

    with ThreadPoolExecutor(max_workers=min(workers, len(to_run))) as pool:
        outcomes = list(pool.map(task, to_run))
    return {(s.key, s.sigma): outcome for s, outcome in zip(to_run, outcomes, strict=True)}


def conditions_to_run(
    noise_levels: Sequence[float], tuned: dict[float, tuple[Hyperparameters, ...]]
) -> list[Condition]:
    settings = []
    for sigma in noise_levels:
        settings.append(Condition("", sigma))  # the paper's hyperparameters, noise unclipped
        if sigma > 0:  # clipping clean images, already in [0, 1], changes nothing
            settings.append(Condition("clipped", sigma, clip=True))
        settings.append(Condition("shuffled_feedback", sigma, shuffled=True))
        settings.append(Condition("tuned", sigma, hyperparameters=tuned[sigma]))
    return settings
