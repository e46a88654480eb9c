"""White-box attacks through the dynamics: PGD (Madry et al., random start, step
2.5 * eps / steps) and BIM (Kurakin et al., iterative FGSM from the clean image, step
1.25 * eps / steps), in L-inf or L2. Each keeps, per image, the first iterate that succeeds."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...errors import ConfigError
from ...runtime.validation import check_int
from ..pixel_space import PixelSpaceNet, check_pixel_range
from .objectives import Norm, Readout, check_readout, input_gradient, readout_success

__all__ = ["NORMS", "bim", "check_budget", "pgd"]

NORMS: tuple[str, ...] = ("linf", "l2")
# Keeps the L2 normalisation of a zero gradient finite.
_TINY = 1e-12


# ---------------------------------------------------------------------- geometry
def _per_image_norm(values: Tensor) -> Tensor:
    """L2 norm of each image, shaped [B, 1, 1, 1] for broadcasting."""
    return values.flatten(1).norm(dim=1).clamp_min(_TINY).view(-1, *([1] * (values.dim() - 1)))


def _project(delta: Tensor, epsilon: float, norm: Norm) -> Tensor:
    if norm == "linf":
        return delta.clamp(-epsilon, epsilon)
    return delta * (epsilon / _per_image_norm(delta)).clamp(max=1.0)


def _ascent_direction(gradient: Tensor, norm: Norm) -> Tensor:
    if norm == "linf":
        return gradient.sign()
    return gradient / _per_image_norm(gradient)


def _random_start(images: Tensor, epsilon: float, norm: Norm, generator: torch.Generator) -> Tensor:
    """A random point of the epsilon ball around ``images`` (uniform in L-inf; uniform
    direction and radius in L2)."""
    shape = images.shape
    if norm == "linf":
        noise = torch.rand(shape, generator=generator, device=generator.device) * 2 - 1
        delta = noise.to(images) * epsilon
    else:
        direction = torch.randn(shape, generator=generator, device=generator.device).to(images)
        radius = torch.rand(shape[0], generator=generator, device=generator.device).to(images)
        delta = direction / _per_image_norm(direction) * radius.view(-1, 1, 1, 1) * epsilon
    return (images + delta).clamp(0.0, 1.0)


def check_budget(epsilon: float, norm: str, steps: int) -> None:
    """A one-line ConfigError unless ``norm`` is known, ``epsilon`` >= 0 and ``steps`` >= 1."""
    if norm not in NORMS:
        raise ConfigError(f"norm: expected one of {', '.join(NORMS)}, got {norm!r}")
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon >= 0):
        raise ConfigError(f"epsilon: expected a number >= 0, got {epsilon!r}")
    check_int(steps, "steps")


# ---------------------------------------------------------------------- white-box attacks
def pgd(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    *,
    epsilon: float,
    timesteps: int,
    readout: Readout,
    norm: Norm = "linf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    targets: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient descent on the attack loss at ``readout``, through the dynamics.

    Args:
        model: network in pixel space.
        images: [B, C, H, W] in [0, 1].
        labels: int [B].
        epsilon: radius of the L-inf or L2 ball, in pixel units.
        timesteps: T of the network.
        readout: the timestep whose logits are attacked, or ``"sum"``.
        norm: ``"linf"`` or ``"l2"``.
        steps: gradient steps.
        step_size: default 2.5 * epsilon / steps.
        random_start: start from a random point of the ball (PGD) or the image (BIM).
        targets: int [B] for a targeted attack.
        generator: for the random start (a CPU generator seeded 0 if None).

    Returns:
        Adversarial images [B, C, H, W] in [0, 1] within the ball: for each image the first
        iterate that succeeded at the readout, else the last one.
    """
    check_budget(epsilon, norm, steps)
    check_pixel_range(images)
    check_readout(readout, timesteps)
    images = images.detach()
    if epsilon == 0:
        return images.clone()
    step = 2.5 * epsilon / steps if step_size is None else float(step_size)
    if random_start:
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        adversarial = _random_start(images, epsilon, norm, generator)
    else:
        adversarial = images.clone()
    done = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
    for iteration in range(steps + 1):
        active = (~done).nonzero().flatten()
        if active.numel() == 0:
            break
        current = adversarial[active]
        active_targets = None if targets is None else targets[active]
        if iteration == steps:  # the last iterate only needs its success checked
            with torch.inference_mode():
                unrolled = check_readout(readout, timesteps)
                logits = model(current, timesteps=unrolled).logits
            done[active] = readout_success(logits, labels[active], readout, active_targets)
            break
        gradient, logits = input_gradient(
            model, current, labels[active], readout=readout, timesteps=timesteps,
            targets=active_targets,
        )  # fmt: skip
        succeeded = readout_success(logits, labels[active], readout, active_targets)
        done[active] = succeeded
        moving = ~succeeded
        # Only images that have not succeeded yet take a step; successful ones keep this iterate.
        stepped = current[moving] + step * _ascent_direction(gradient[moving], norm)
        delta = _project(stepped - images[active][moving], epsilon, norm)
        adversarial[active[moving]] = (images[active][moving] + delta).clamp(0.0, 1.0)
    return adversarial


def bim(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    *,
    epsilon: float,
    timesteps: int,
    readout: Readout,
    norm: Norm = "linf",
    steps: int = 10,
    step_size: float | None = None,
    targets: Tensor | None = None,
) -> Tensor:
    """Basic iterative method: PGD from the clean image, step 1.25 * epsilon / steps by default.

    Same arguments and result as [`pgd()`][predify.evaluate.attacks.pgd] (without the random start).
    """
    check_budget(epsilon, norm, steps)
    return pgd(
        model, images, labels, epsilon=epsilon, timesteps=timesteps, readout=readout, norm=norm,
        steps=steps, step_size=1.25 * epsilon / steps if step_size is None else step_size,
        random_start=False, targets=targets,
    )  # fmt: skip
