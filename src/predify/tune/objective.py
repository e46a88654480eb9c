"""The tuning objective, a named choice: what the hyperparameters are tuned to lower.

For logits [T+1, B, K] of the unrolled dynamics:

- ``scale-free-last`` (the default): ``CE(logits[T] / tau*)``, where ``tau*`` is the temperature
  that minimises that cross-entropy for the batch, found on the detached logits (a 1-D convex
  solve). Shrinking or growing the logits cannot lower it: only better decisions can.
- ``scale-free-late``: the same, each timestep with its own ``tau*``, averaged over the later
  half, ``t > T/2``.
- ``scale-free-all``: the same averaged over ``t = 1..T``.
- ``summed``: ``sum_{t=1..T} CE(logits[t], labels)``, the follow-up paper's protocol (and
  predify's default before 0.x). A network under noise is overconfident, so this loss falls when
  the logits shrink: tuning can lower it by collapsing the representations without deciding
  better (measured on the demo: the summed CE fell 38.95 -> 22.25 while accuracy fell 42.2% ->
  38.3%; see ``docs/tutorials/tune.md``).

Why ``tau*`` needs no gradient: the scale-free loss is ``L(theta) = min_tau CE(z(theta) / tau)``,
and at the minimum ``dCE/dtau = 0``, so (the envelope theorem) ``dL/dtheta`` is the gradient of
``CE(z(theta) / tau*)`` with ``tau*`` held fixed. The feed-forward pass (t = 0) is always left
out: it does not depend on the hyperparameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..network import PredictiveNet
from ..submodules import eval_mode
from .data import TuneData, iterate_batches
from .noise import TuneNoise

__all__ = [
    "DEFAULT_OBJECTIVE",
    "OBJECTIVES",
    "Normalize",
    "check_objective",
    "check_timesteps",
    "noisy_batch",
    "noisy_loss",
    "objective_loss",
    "optimal_inverse_temperature",
    "scored_timesteps",
    "timestep_loss",
]

#: The tuning objectives by name (see the module's docstring).
OBJECTIVES = ("scale-free-last", "scale-free-late", "scale-free-all", "summed")
#: What ``tune_gradient``, ``tune_optuna``, ``predify tune`` and the demo minimise by default.
DEFAULT_OBJECTIVE = "scale-free-last"
# The inverse temperature is searched in [1e-4, 1e4] / std(logits): wide enough that the optimum
# is inside for any batch that is neither perfectly separated nor worse than chance.
_SCALE_RANGE = (1e-4, 1e4)
_BISECTION_STEPS = 48

Normalize = Callable[[Tensor], Tensor]
"""Maps noisy pixel-space images to what the backbone takes (e.g. InputNormalization)."""


def check_timesteps(timesteps: int) -> int:
    """``timesteps`` if it is an integer >= 1, else
    [`ConfigError`][predify.tune.objective.ConfigError]."""
    if not isinstance(timesteps, int) or isinstance(timesteps, bool) or timesteps < 1:
        raise ConfigError(
            f"timesteps: expected an integer >= 1 (the hyperparameters act from t = 1 on), "
            f"got {timesteps!r}"
        )
    return timesteps


def check_objective(objective: str) -> str:
    """``objective`` if it is one of `predify.tune.OBJECTIVES`, else a
    one-line [`ConfigError`][predify.tune.objective.ConfigError]."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective: expected one of {', '.join(OBJECTIVES)}, got {objective!r}")
    return objective


def scored_timesteps(objective: str, timesteps: int) -> range:
    """The timesteps ``objective`` scores for T = ``timesteps``: t = T (``scale-free-last``),
    t > T/2 (``scale-free-late``) or t = 1..T (``scale-free-all``, ``summed``)."""
    check_objective(objective)
    if objective == "scale-free-last":
        return range(timesteps, timesteps + 1)
    if objective == "scale-free-late":
        return range(timesteps // 2 + 1, timesteps + 1)
    return range(1, timesteps + 1)


@torch.no_grad()
def optimal_inverse_temperature(logits: Tensor, labels: Tensor) -> Tensor:
    """Per timestep, the ``s = 1 / tau`` that minimises the batch's mean ``CE(s * logits[t])``.

    The cross-entropy is convex in ``s`` and its derivative, ``mean(E_softmax(s z)[z] - z_y)``,
    rises with ``s``, so bisection on ``log s`` finds the root (48 halvings of a 1e8-wide
    bracket: a relative error below 1e-6).

    Args:
        logits: [S, B, K] (S timesteps); used detached, in float64.
        labels: int [B].

    Returns:
        float64 [S], each within ``[1e-4, 1e4] / std(logits[t])`` (at a bound when the batch is
        perfectly separated or its logits point away from the labels).
    """
    z = logits.detach().double()
    target = z.gather(-1, labels.view(1, -1, 1).expand(z.shape[0], -1, 1)).squeeze(-1)
    spread = z.std(dim=(1, 2)).clamp_min(1e-12)
    low = torch.full_like(spread, math.log(_SCALE_RANGE[0])) - spread.log()
    high = torch.full_like(spread, math.log(_SCALE_RANGE[1])) - spread.log()
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        scale = middle.exp().view(-1, 1, 1)
        slope = ((z * torch.softmax(scale * z, dim=-1)).sum(-1) - target).mean(-1)
        rising = slope > 0
        high = torch.where(rising, middle, high)
        low = torch.where(rising, low, middle)
    return ((low + high) / 2).exp()


def objective_loss(logits: Tensor, labels: Tensor, objective: str = DEFAULT_OBJECTIVE) -> Tensor:
    """The tuning loss of one batch under ``objective`` (a name of
    `predify.tune.OBJECTIVES`).

    Args:
        logits: [T+1, B, K], the output of ``pnet(x, timesteps=T).logits``.
        labels: int [B].

    Returns:
        A 0-dim tensor, differentiable when the logits are: ``summed`` is
        [`timestep_loss()`][predify.tune.objective.timestep_loss]; the scale-free objectives
        the mean over their timesteps of ``CE(logits[t] * s_t)``, ``s_t`` from
        [`optimal_inverse_temperature()`][predify.tune.objective.optimal_inverse_temperature]
        held fixed (no gradient flows into it: none is needed at the optimum).
    """
    if check_objective(objective) == "summed":
        return timestep_loss(logits, labels)
    steps = scored_timesteps(objective, logits.shape[0] - 1)
    chosen = logits[steps.start : steps.stop]
    scale = optimal_inverse_temperature(chosen, labels).to(chosen.dtype).view(-1, 1, 1)
    scaled = chosen * scale
    classes = chosen.shape[-1]
    per_step = F.cross_entropy(
        scaled.reshape(-1, classes), labels.repeat(len(steps)), reduction="sum"
    )
    return per_step / (labels.shape[0] * len(steps))


def timestep_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """``sum_{t=1..T} CE(logits[t], labels)``, each CE a mean over the batch: the ``summed``
    objective (the follow-up paper's protocol).

    Args:
        logits: [T+1, B, K], the output of ``pnet(x, timesteps=T).logits``.
        labels: int [B].

    Returns:
        A 0-dim tensor, differentiable when the logits are.
    """
    steps, batch, classes = logits.shape
    per_step = F.cross_entropy(
        logits[1:].reshape(-1, classes), labels.repeat(steps - 1), reduction="sum"
    )
    return per_step / batch


def noisy_batch(
    images: Tensor,
    labels: Tensor,
    noise: TuneNoise,
    generator: torch.Generator,
    device: torch.device,
    normalize: Normalize | None,
) -> tuple[Tensor, Tensor]:
    """Noise added in pixel space, then normalised, on ``device``: ([B, C, H, W], [B])."""
    noisy = noise.apply(images.to(device), generator)
    if normalize is not None:
        noisy = normalize(noisy)
    return noisy, labels.to(device)


def network_device(pnet: PredictiveNet) -> torch.device:
    """The device of the network's first parameter or buffer (CPU when it has none)."""
    for parameter in pnet.parameters():
        return parameter.device
    for buffer in pnet.buffers():
        return buffer.device
    return torch.device("cpu")


@torch.no_grad()
def noisy_loss(
    pnet: PredictiveNet,
    data: TuneData,
    noise: TuneNoise,
    *,
    timesteps: int,
    seed: int = 0,
    batch_size: int = 128,
    normalize: Normalize | None = None,
    objective: str = DEFAULT_OBJECTIVE,
) -> float:
    """The objective on all of ``data`` with the network's current hyperparameters.

    The noise comes from a generator seeded with ``seed``, so two calls with the same seed (say,
    before and after tuning) see the same noisy images. Runs in eval mode. Returns the mean over
    images of [`objective_loss()`][predify.tune.objective.objective_loss] with ``objective``
    (each batch its own ``tau*``; NaN or inf when the dynamics diverge).
    """
    check_timesteps(timesteps)
    check_objective(objective)
    device = network_device(pnet)
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    with eval_mode(pnet):
        for images, labels in iterate_batches(data, batch_size, None):
            x, y = noisy_batch(images, labels, noise, generator, device, normalize)
            loss = objective_loss(pnet(x, timesteps=timesteps).logits, y, objective)
            total += float(loss) * y.shape[0]
            count += y.shape[0]
    if count == 0:
        raise ConfigError("no images to compute the tuning loss on (0 images)")
    return total / count
