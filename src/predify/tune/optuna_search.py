"""Black-box tuning of feedforward, feedback and pc with Optuna (the ``optuna`` extra).

The search space is the one gradient tuning explores: per pcoder (or one shared set)
``feedforward ~ U(0, 1)``, ``feedback = share * (1 - feedforward)`` with ``share ~ U(0, 1)`` (so
feedforward + feedback <= 1 and memory >= 0 without rejected samples; the top pcoder has no
feedback) and ``pc`` log-uniform. A trial runs the fixed-hyperparameter dynamics on the tuning
images with the same noise in every trial (the noise generator is re-seeded), reports the running
mean loss after every batch, and is pruned when that falls behind the other trials' (median rule).
The starting values are evaluated first, so the best trial is never worse than the start on the
tuning objective.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..config import Hyperparameters
from ..errors import ConfigError, TuningError
from ..network import PredictiveNet
from ..runtime.progress import resolve_progress
from ..runtime.validation import check_int
from ..submodules import eval_mode
from .data import TuneData, count_batches, iterate_batches
from .hyperparameters import effective_values, starting_values, temporary_hyperparameters
from .noise import TuneNoise
from .objective import (
    DEFAULT_OBJECTIVE,
    Normalize,
    check_objective,
    check_timesteps,
    network_device,
    noisy_batch,
    objective_loss,
)
from .result import TrajectoryPoint, TuneResult

__all__ = ["DEFAULT_PC_RANGE", "import_optuna", "tune_optuna"]

#: Log-uniform range of pc.
DEFAULT_PC_RANGE = (1e-4, 1.0)


def import_optuna() -> Any:
    """The ``optuna`` module, or a one-line [`ConfigError`][predify.tune.optuna_search.ConfigError]
    saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "Optuna tuning needs the optuna extra: pip install 'predify[optuna]' "
            "(or use the gradient method)"
        ) from None
    return optuna


def _names(index: int | None) -> tuple[str, str, str]:
    suffix = "" if index is None else f"_{index}"
    return f"feedforward{suffix}", f"feedback_share{suffix}", f"pc{suffix}"


def _suggest(
    trial: Any, has_feedback: bool, index: int | None, pc_range: tuple[float, float]
) -> Hyperparameters:
    feedforward_name, share_name, pc_name = _names(index)
    feedforward = trial.suggest_float(feedforward_name, 0.0, 1.0)
    share = trial.suggest_float(share_name, 0.0, 1.0) if has_feedback else 0.0
    pc = trial.suggest_float(pc_name, *pc_range, log=True)
    # min(): feedforward + feedback may exceed 1 by a rounding error otherwise.
    return Hyperparameters(feedforward, min(share * (1.0 - feedforward), 1.0 - feedforward), pc)


def _as_params(
    values: Sequence[Hyperparameters],
    feedback: Sequence[bool],
    shared: bool,
    pc_range: tuple[float, float],
) -> dict[str, float]:
    """Optuna parameters that reproduce ``values`` (the starting point, enqueued first)."""
    params: dict[str, float] = {}
    for index, (value, has_feedback) in enumerate(zip(values, feedback, strict=True)):
        feedforward_name, share_name, pc_name = _names(None if shared else index)
        params[feedforward_name] = value.feedforward
        if has_feedback:
            rest = 1.0 - value.feedforward
            params[share_name] = min(value.feedback / rest, 1.0) if rest > 0 else 0.0
        params[pc_name] = min(max(value.pc, pc_range[0]), pc_range[1])
    return params


def _objective(
    optuna: Any,
    pnet: PredictiveNet,
    data: TuneData,
    noise: TuneNoise,
    feedback: Sequence[bool],
    shared: bool,
    pc_range: tuple[float, float],
    timesteps: int,
    batch_size: int,
    normalize: Normalize | None,
    seed: int,
    loss_name: str,
) -> Callable[[Any], float]:
    """A trial's value: the running mean loss over the batches, reported after each, with the
    same noise in every trial."""
    device = network_device(pnet)

    def objective(trial: Any) -> float:
        values = [
            _suggest(trial, has_feedback, None if shared else index, pc_range)
            for index, has_feedback in enumerate(feedback)
        ]
        trial.set_user_attr("values", [v.to_json() for v in values])
        generator = torch.Generator().manual_seed(seed)
        total, count = 0.0, 0
        with torch.no_grad(), temporary_hyperparameters(pnet, values, shared=shared):
            for batch_index, (images, labels) in enumerate(iterate_batches(data, batch_size, None)):
                x, y = noisy_batch(images, labels, noise, generator, device, normalize)
                loss = float(objective_loss(pnet(x, timesteps=timesteps).logits, y, loss_name))
                if not math.isfinite(loss):
                    # The dynamics diverged for these values: the worst possible result.
                    trial.set_user_attr("diverged", True)
                    return math.inf
                total += loss * y.shape[0]
                count += y.shape[0]
                trial.report(total / count, batch_index)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return total / count

    return objective


def _trajectory(
    study: Any, states: Any, pnet: PredictiveNet, shared: bool
) -> list[TrajectoryPoint]:
    """One point per finished trial: complete, pruned (its last reported value) or diverged."""
    trajectory = []
    for trial in study.trials:
        values = [Hyperparameters(**v) for v in trial.user_attrs.get("values", [])]
        if not values:
            continue
        if trial.state == states.PRUNED:
            note = "pruned"
            loss = trial.intermediate_values[max(trial.intermediate_values)]
        elif trial.user_attrs.get("diverged"):
            note, loss = "diverged", math.inf
        elif trial.state == states.COMPLETE:
            note, loss = "complete", float(trial.value)
        else:
            continue
        trajectory.append(
            TrajectoryPoint(trial.number, loss, tuple(effective_values(pnet, values, shared)), note)
        )
    return trajectory


def tune_optuna(
    pnet: PredictiveNet,
    data: TuneData,
    noise: TuneNoise,
    *,
    timesteps: int | None = None,
    trials: int = 30,
    batch_size: int = 128,
    shared: bool = False,
    initial: Hyperparameters | Sequence[Hyperparameters] | None = None,
    pc_range: tuple[float, float] = DEFAULT_PC_RANGE,
    time_budget_s: float | None = None,
    normalize: Normalize | None = None,
    seed: int = 0,
    pruner: Any = None,
    progress: bool | None = None,
    objective: str = DEFAULT_OBJECTIVE,
) -> TuneResult:
    """Search feedforward, feedback and pc with Optuna's TPE sampler and median pruning.

    Args:
        pnet: the predictive network; left as it was (use ``result.apply_to(pnet)``).
        data: tuning images (see [`predify.tune.tune_gradient()`][predify.tune.tune_gradient]), the
            validation split;
            keep it disjoint from the images you report on.
        noise: the noise; the same noisy images in every trial.
        timesteps: T; default the network's config.
        trials: number of trials (the first evaluates the starting values).
        batch_size: images per batch; the running mean loss is reported after each batch.
        shared: one set for all pcoders instead of one per pcoder.
        initial: the first trial's values; default the network's current values.
        pc_range: (low, high) of pc's log-uniform range, 0 < low < high.
        time_budget_s: stop starting trials after this many seconds.
        normalize: applied to the noisy images before the network.
        seed: seeds the sampler and the noise.
        pruner: an Optuna pruner; default ``MedianPruner(n_startup_trials=4, n_warmup_steps=1)``.
        progress: show Optuna's progress bar (None: only on a terminal).
        objective: the loss a trial scores, a name of `predify.tune.OBJECTIVES`
            (see [`tune_gradient()`][predify.tune.tune_gradient]).

    Raises:
        ConfigError: Optuna is not installed, or bad settings.
        TuningError: no trial gave a finite loss.
    """
    optuna = import_optuna()
    steps_per_pass = check_timesteps(pnet.config.timesteps if timesteps is None else timesteps)
    check_int(trials, "trials")
    check_objective(objective)
    low, high = pc_range
    if not (0 < low < high and math.isfinite(high)):
        raise ConfigError(f"pc_range: expected 0 < low < high, got {pc_range}")
    if initial is None:
        start = starting_values(pnet, shared)
    else:
        start = [initial] if isinstance(initial, Hyperparameters) else list(initial)
    feedback = [True] if shared else [pcoder.has_feedback for pcoder in pnet.pcoders]
    total_batches = count_batches(data, batch_size)

    score = _objective(
        optuna, pnet, data, noise, feedback, shared, pc_range, steps_per_pass, batch_size,
        normalize, seed, objective,
    )  # fmt: skip
    sampler = optuna.samplers.TPESampler(seed=seed)
    chosen_pruner = pruner or optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=chosen_pruner)
    study.enqueue_trial(_as_params(start, feedback, shared, pc_range))
    show = resolve_progress(progress)
    began = time.perf_counter()
    with eval_mode(pnet):
        study.optimize(score, n_trials=trials, timeout=time_budget_s, show_progress_bar=show)
    seconds = time.perf_counter() - began

    states = optuna.trial.TrialState
    trajectory = _trajectory(study, states, pnet, shared)
    complete = [t for t in study.trials if t.state == states.COMPLETE]
    finite = [t for t in complete if math.isfinite(t.value)]
    if not finite:
        raise TuningError(
            f"noise {noise}: no Optuna trial gave a finite loss ({len(study.trials)} trials); "
            "try a smaller pc range, fewer timesteps or a smaller noise level"
        )
    best = min(finite, key=lambda t: t.value)
    tuned = [Hyperparameters(**v) for v in best.user_attrs["values"]]
    start_trial = study.trials[0]
    start_loss = (
        float(start_trial.value)
        if start_trial.state == states.COMPLETE and start_trial.value is not None
        else None
    )
    pruned = sum(1 for t in study.trials if t.state == states.PRUNED)
    return TuneResult(
        method="optuna",
        objective=objective,
        noise=noise,
        shared=shared,
        timesteps=steps_per_pass,
        hyperparameters=tuned,
        effective=effective_values(pnet, tuned, shared),
        initial=[Hyperparameters(**v) for v in start_trial.user_attrs["values"]],
        trajectory=trajectory,
        final_loss=float(best.value),
        tuning_loss_before=start_loss,
        tuning_loss_after=float(best.value),
        steps=len(complete) + pruned,
        seconds=seconds,
        stopped_by_budget=len(study.trials) < trials,
        details={
            "trials": len(study.trials),
            "complete": len(complete),
            "pruned": pruned,
            "diverged": sum(1 for t in complete if not math.isfinite(t.value)),
            "best_trial": best.number,
            "batch_size": batch_size,
            "batches_per_trial": total_batches,
            "pc_range": list(pc_range),
            "seed": seed,
            "sampler": "TPESampler",
            "pruner": type(chosen_pruner).__name__,
        },
    )
