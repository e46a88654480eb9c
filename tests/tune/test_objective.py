"""The tuning objectives: the summed CE rewards shrinking logits, the scale-free one does not, and
its gradient (tau* held fixed) is the derivative of the loss with tau re-optimised.

Planted bugs, each seen failing: ``DEFAULT_OBJECTIVE = "summed"`` fails
``test_the_default_objective_cannot_be_lowered_by_scaling_the_logits``; a tau gradient term added
(the loss's value unchanged, a gradient flowing through a temperature that tracks the live logit
scale, ``tau = std(logits_T)``) fails
``test_the_scale_free_gradient_is_the_derivative_of_the_reoptimised_loss``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from predify.errors import ConfigError
from predify.tune.objective import (
    OBJECTIVES,
    objective_loss,
    optimal_inverse_temperature,
    scored_timesteps,
)


def _batch(
    seed: int = 0, steps: int = 4, batch: int = 48, classes: int = 10
) -> tuple[Tensor, Tensor]:
    """Informative but imperfect logits [steps, B, K] (some images wrong) and labels [B]."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (batch,), generator=generator)
    noise = torch.randn(steps, batch, classes, generator=generator, dtype=torch.float64)
    return 2.0 * noise + 3.0 * F.one_hot(labels, classes).double(), labels


def _reoptimised_ce(logits: Tensor, labels: Tensor) -> float:
    """min over s > 0 of CE(s * logits): golden-section search on log s (CE is convex in s),
    written here independently of the code under test."""

    def ce(log_s: float) -> float:
        return float(F.cross_entropy(logits * math.exp(log_s), labels))

    low, high = -12.0, 8.0
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if ce(a) < ce(b):
            high = b
        else:
            low = a
    return ce((low + high) / 2)


def test_the_default_objective_cannot_be_lowered_by_scaling_the_logits() -> None:
    # A "network" whose only tunable effect is to scale the logits at every t >= 1, as the
    # collapsing dynamics do (docs/tutorials/tune.md): logits[t] = exp(theta * t) * z.
    z, labels = _batch()
    z = 4.0 * z  # overconfident, as a backbone under noise is
    theta = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    timesteps = torch.arange(z.shape[0], dtype=torch.float64).view(-1, 1, 1)

    def gradient(objective: str | None) -> float:
        logits = torch.exp(theta * timesteps) * z
        loss = (
            objective_loss(logits, labels)
            if objective is None
            else objective_loss(logits, labels, objective)
        )
        (grad,) = torch.autograd.grad(loss, theta)
        return float(grad)

    # The summed CE falls as the overconfident, partly wrong logits shrink: a shortcut.
    assert gradient("summed") > 1.0
    # The default (scale-free) objective and its variants have nothing to gain from the scale.
    for objective in (None, "scale-free-last", "scale-free-late", "scale-free-all"):
        assert abs(gradient(objective)) < 1e-6, objective


@pytest.mark.parametrize("objective", ["scale-free-last", "scale-free-late", "scale-free-all"])
def test_the_scale_free_gradient_is_the_derivative_of_the_reoptimised_loss(objective: str) -> None:
    # logits(theta) = a + theta * b at every timestep: theta changes decisions, not only scale.
    a, labels = _batch(seed=1)
    b, _ = _batch(seed=2)
    steps = scored_timesteps(objective, a.shape[0] - 1)

    def reference(value: float) -> float:
        logits = a + value * b
        return sum(_reoptimised_ce(logits[t], labels) for t in steps) / len(steps)

    theta0, step = 0.3, 1e-4
    finite_difference = (reference(theta0 + step) - reference(theta0 - step)) / (2 * step)
    theta = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    loss = objective_loss(a + theta * b, labels, objective)
    (grad,) = torch.autograd.grad(loss, theta)
    assert float(loss) == pytest.approx(reference(theta0), rel=1e-7)
    assert float(grad) == pytest.approx(finite_difference, rel=1e-4, abs=1e-7)


def test_the_optimal_temperature_is_a_minimum() -> None:
    z, labels = _batch(seed=3)
    scales = optimal_inverse_temperature(z, labels)
    for t, scale in enumerate(scales.tolist()):
        best = float(F.cross_entropy(z[t] * scale, labels))
        for factor in (0.98, 1.02):
            assert float(F.cross_entropy(z[t] * scale * factor, labels)) > best


def test_the_summed_objective_is_the_follow_up_papers_loss() -> None:
    z, labels = _batch(seed=4)
    expected = sum(float(F.cross_entropy(z[t], labels)) for t in range(1, z.shape[0]))
    assert float(objective_loss(z, labels, "summed")) == pytest.approx(expected, rel=1e-12)


def test_scored_timesteps_and_unknown_names() -> None:
    assert list(scored_timesteps("scale-free-last", 10)) == [10]
    assert list(scored_timesteps("scale-free-late", 10)) == [6, 7, 8, 9, 10]
    assert list(scored_timesteps("scale-free-all", 3)) == [1, 2, 3]
    assert set(OBJECTIVES) == {"scale-free-last", "scale-free-late", "scale-free-all", "summed"}
    with pytest.raises(ConfigError, match="objective: expected one of"):
        objective_loss(*_batch(), "mean")
