"""Gradient-based tuning of feedforward, feedback and pc (beta, lambda and alpha in Alamia et
al., "On the role of feedback in visual processing: a predictive coding perspective").

The dynamics are unrolled for T timesteps on noisy images and the tuning objective (by default
the scale-free cross-entropy at t = T; see [`predify.tune.objective`][predify.tune.objective])
is minimised with Adam with respect to the hyperparameters only. They are parameterised
so that every step stays valid: ``(feedforward, feedback, memory) = softmax(mixing_logits)``
(each in [0, 1], summing to 1) and ``pc = softplus(pc_raw)`` (>= 0), per pcoder or shared.
The backbone and the decoders are frozen: their ``requires_grad`` flags are switched off for the
duration (so no gradient is even computed for them) and restored after, and the network runs in
eval mode (batch-norm statistics do not move).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..config import Hyperparameters
from ..errors import ConfigError, TuningError
from ..network import PredictiveNet
from ..pcoder import HyperparameterModule
from ..runtime.progress import resolve_progress
from ..runtime.validation import check_int
from ..submodules import eval_mode
from .data import TuneData, count_batches, iterate_batches
from .hyperparameters import (
    check_values,
    effective_values,
    frozen_parameters,
    module_values,
    starting_values,
    temporary_hyperparameters,
)
from .noise import TuneNoise
from .objective import (
    DEFAULT_OBJECTIVE,
    Normalize,
    check_objective,
    check_timesteps,
    network_device,
    noisy_batch,
    noisy_loss,
    objective_loss,
)
from .result import TrajectoryPoint, TuneResult

__all__ = [
    "DEFAULT_LR_MIXING",
    "DEFAULT_LR_PC",
    "TuningError",
    "tune_gradient",
]

# Measured on a shallow CNN on MNIST-5k (T = 10, 1000 tuning images, 48 steps of 64): the
# follow-up paper's 1e-2 for the mixing logits lowered the tuning loss at sigma 1.0 from 11.04 to
# 10.74, 5e-2 to 10.56 (both about 10.5 after 96 steps). Its 1e-4 for alpha (pc) leaves pc where it
# starts here (pc = softplus(pc_raw) moves by about lr relative per step), so pc gets 1e-2.
#: Adam learning rate of the mixing logits (feedforward, feedback, memory).
DEFAULT_LR_MIXING = 5e-2
#: Adam learning rate of pc's pre-softplus parameter.
DEFAULT_LR_PC = 1e-2


def _check_finite_gradients(parameters: Sequence[Tensor], noise: TuneNoise, step: int) -> None:
    for parameter in parameters:
        if parameter.grad is not None and not bool(torch.isfinite(parameter.grad).all()):
            raise TuningError(
                f"noise {noise}: the gradient of the hyperparameters became non-finite at step "
                f"{step}; try a lower learning rate, fewer timesteps or a smaller noise level"
            )


@dataclass(frozen=True)
class _Plan:
    """The settings of one gradient tuning, checked."""

    noise: TuneNoise
    timesteps: int
    epochs: int
    max_steps: int | None
    batch_size: int
    total: int | None
    """Steps the progress bar expects (None: unknown, a DataLoader without a length)."""
    time_budget_s: float | None
    normalize: Normalize | None
    seed: int
    progress: bool | None
    objective: str


@dataclass
class _Steps:
    """What the Adam loop did."""

    trajectory: list[TrajectoryPoint] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    count: int = 0
    stopped_by_budget: bool = False


def _check_settings(
    epochs: int,
    batch_size: int,
    max_steps: int | None,
    lr_mixing: float,
    lr_pc: float,
    time_budget_s: float | None,
) -> None:
    check_int(epochs, "epochs")
    check_int(batch_size, "batch_size")
    if max_steps is not None:
        check_int(max_steps, "max_steps")
    for name, rate in (("lr_mixing", lr_mixing), ("lr_pc", lr_pc)):
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate >= 0):
            raise ConfigError(f"{name}: expected a learning rate >= 0, got {rate!r}")
    if time_budget_s is not None and not time_budget_s > 0:
        raise ConfigError(f"time_budget_s: expected a number of seconds > 0, got {time_budget_s}")


def _total_steps(epochs: int, batches_per_epoch: int | None, max_steps: int | None) -> int | None:
    """The Adam updates the call will make (None: unknown, a data loader of unknown length)."""
    total = epochs * batches_per_epoch if batches_per_epoch is not None else None
    if max_steps is not None:
        total = max_steps if total is None else min(total, max_steps)
    return total


def tune_gradient(
    pnet: PredictiveNet,
    data: TuneData,
    noise: TuneNoise,
    *,
    timesteps: int | None = None,
    epochs: int = 1,
    max_steps: int | None = None,
    batch_size: int = 64,
    lr_mixing: float = DEFAULT_LR_MIXING,
    lr_pc: float = DEFAULT_LR_PC,
    shared: bool = False,
    initial: Hyperparameters | Sequence[Hyperparameters] | None = None,
    time_budget_s: float | None = None,
    measure_loss: bool = True,
    normalize: Normalize | None = None,
    seed: int = 0,
    progress: bool | None = None,
    objective: str = DEFAULT_OBJECTIVE,
) -> TuneResult:
    """Learn feedforward, feedback and pc by gradient descent on noisy images; weights stay frozen.

    Args:
        pnet: the predictive network (its decoders trained). Left as it was: the tuned values are
            returned, not installed (use ``result.apply_to(pnet)``).
        data: tuning images ``(images [N, C, H, W] in [0, 1], labels [N])``, a TensorDataset, or
            a DataLoader of such batches. Keep it disjoint from the images you report on.
        noise: the noise added to every batch (fresh noise at every step).
        timesteps: T; default the network's config.
        epochs: passes over ``data``.
        max_steps: stop after this many Adam updates (None: run all epochs).
        batch_size: images per step when ``data`` holds tensors.
        lr_mixing: Adam learning rate of the softmax logits of (feedforward, feedback, memory).
        lr_pc: Adam learning rate of pc's softplus pre-activation. Adam's steps are about
            lr in that parameter, i.e. a relative change of about lr in a small pc.
        shared: one set for all pcoders instead of one per pcoder.
        initial: where to start; default the network's current values.
        time_budget_s: the whole call should take about this many seconds: no step starts that
            would end past it, counting the slowest step so far and, with ``measure_loss``, a
            final measurement as long as the first. At least one step runs.
        measure_loss: measure the loss on all of ``data`` (with the same noise) before and after.
        normalize: applied to the noisy images before the network (mean/std normalisation).
        seed: seeds the shuffling and the noise.
        progress: show a progress bar (None: only on a terminal).
        objective: what is minimised, a name of `predify.tune.OBJECTIVES`:
            ``scale-free-last`` (default), ``scale-free-late``, ``scale-free-all`` or
            ``summed`` (the follow-up paper's, which rewards shrinking logits).

    Returns:
        A [`TuneResult`][predify.tune.gradient.TuneResult]; its ``hyperparameters`` are valid by
        construction (feedforward, feedback, memory in [0, 1] summing to 1; pc >= 0).

    Raises:
        TuningError: the loss or a gradient became NaN or infinite.
        ConfigError: bad settings (timesteps < 1, epochs < 1, a negative learning rate, ...).
    """
    steps_per_pass = check_timesteps(pnet.config.timesteps if timesteps is None else timesteps)
    _check_settings(epochs, batch_size, max_steps, lr_mixing, lr_pc, time_budget_s)
    check_objective(objective)
    if initial is None:
        start = starting_values(pnet, shared)
    else:
        start = [initial] if isinstance(initial, Hyperparameters) else list(initial)
    batches_per_epoch = count_batches(data, batch_size)
    plan = _Plan(
        noise, steps_per_pass, epochs, max_steps, batch_size,
        _total_steps(epochs, batches_per_epoch, max_steps), time_budget_s, normalize, seed,
        progress, objective,
    )  # fmt: skip

    loss_before = loss_after = None
    began = time.perf_counter()
    with ExitStack() as stack:
        # Freeze everything the network has now (backbone, decoders, its own hyperparameter
        # modules); the learnable modules installed next are the only tensors that get gradients.
        stack.enter_context(frozen_parameters(list(pnet.parameters())))
        stack.enter_context(eval_mode(pnet))
        modules = stack.enter_context(
            temporary_hyperparameters(pnet, start, shared=shared, learnable=True)
        )
        initial_values = module_values(modules)
        # The same noise (seed) before and after: the two losses differ by the tuning only.
        measure = partial(noisy_loss, pnet, data, noise, timesteps=steps_per_pass, seed=seed,
                          normalize=normalize, objective=objective)  # fmt: skip
        measure_seconds = 0.0
        if measure_loss:
            loss_before = measure()
            measure_seconds = time.perf_counter() - began
        loop_began = time.perf_counter()
        done = _adam_steps(pnet, data, modules, shared, lr_mixing, lr_pc, plan, began,
                           measure_seconds)  # fmt: skip
        tuning_seconds = time.perf_counter() - loop_began
        tuned = module_values(modules)
        check_values(tuned, f"noise {noise}: tuned hyperparameters")
        if measure_loss:
            loss_after = measure()
    effective = effective_values(pnet, tuned, shared)
    done.trajectory.append(TrajectoryPoint(done.count, math.nan, tuple(effective), note="final"))
    # The mean over the last epoch's worth of steps: one batch's loss is too noisy to report.
    recent = done.losses[-batches_per_epoch:] if batches_per_epoch else done.losses
    return TuneResult(
        method="gradient",
        objective=objective,
        noise=noise,
        shared=shared,
        timesteps=steps_per_pass,
        hyperparameters=tuned,
        effective=effective,
        initial=initial_values,
        trajectory=done.trajectory,
        final_loss=sum(recent) / len(recent) if recent else math.nan,
        tuning_loss_before=loss_before,
        tuning_loss_after=loss_after,
        steps=done.count,
        seconds=tuning_seconds,
        stopped_by_budget=done.stopped_by_budget,
        details={
            "lr_mixing": lr_mixing,
            "lr_pc": lr_pc,
            "batch_size": batch_size,
            "epochs": epochs,
            "max_steps": max_steps,
            "time_budget_s": time_budget_s,
            "seed": seed,
            "wall_seconds": round(time.perf_counter() - began, 3),
        },
    )


def _adam_steps(
    pnet: PredictiveNet,
    data: TuneData,
    modules: Sequence[HyperparameterModule],
    shared: bool,
    lr_mixing: float,
    lr_pc: float,
    plan: _Plan,
    began: float,
    measure_seconds: float,
) -> _Steps:
    """The Adam updates of the installed learnable ``modules``, until the epochs, ``max_steps``
    or the time budget (counted from ``began``, keeping ``measure_seconds`` for the final loss
    measurement) end them."""
    mixing = [module.mixing_logits for module in modules]
    pcs = [module.pc_raw for module in modules]
    optimizer = torch.optim.Adam(
        [{"params": mixing, "lr": lr_mixing}, {"params": pcs, "lr": lr_pc}]
    )
    parameters: list[Tensor] = [p for p in mixing + pcs if p is not None]
    shuffle = torch.Generator().manual_seed(plan.seed)
    noise_generator = torch.Generator().manual_seed(plan.seed + 1)
    device = network_device(pnet)
    done = _Steps()
    slowest_step = 0.0
    bar = tqdm(
        total=plan.total, desc=f"tune {plan.noise}", unit="step", leave=False,
        disable=not resolve_progress(plan.progress),
    )  # fmt: skip
    try:
        for _ in range(plan.epochs):
            for images, labels in iterate_batches(data, plan.batch_size, shuffle):
                if plan.max_steps is not None and done.count >= plan.max_steps:
                    break
                # The end of the call if one more step runs: now + that step + the final
                # loss measurement (as long as the first one was).
                projected = time.perf_counter() - began + slowest_step + measure_seconds
                budget = plan.time_budget_s
                if budget is not None and done.count > 0 and projected > budget:
                    done.stopped_by_budget = True
                    break
                step_began = time.perf_counter()
                values = effective_values(pnet, module_values(modules), shared)
                x, y = noisy_batch(images, labels, plan.noise, noise_generator, device,
                                   plan.normalize)  # fmt: skip
                loss = objective_loss(pnet(x, timesteps=plan.timesteps).logits, y, plan.objective)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TuningError(
                        f"noise {plan.noise}: the loss became non-finite ({value}) at step "
                        f"{done.count}; try a lower learning rate, fewer timesteps or a smaller "
                        "noise level"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                _check_finite_gradients(parameters, plan.noise, done.count)
                optimizer.step()
                done.trajectory.append(TrajectoryPoint(done.count, value, tuple(values)))
                done.losses.append(value)
                done.count += 1
                slowest_step = max(slowest_step, time.perf_counter() - step_began)
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4g}")
            else:
                continue
            break  # the inner loop stopped early: max_steps or the time budget
    finally:
        bar.close()
    return done
