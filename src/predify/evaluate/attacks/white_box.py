"""White-box attacks through the dynamics: PGD (Madry et al., random starts, step
2.5 * eps / steps, restarts) and BIM (Kurakin et al., iterative FGSM from the clean image, step
1.25 * eps / steps), in L-inf or L2. Each keeps, per image, the first iterate that succeeds."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ...errors import ConfigError
from ...runtime.validation import check_int
from ..pixel_space import PixelSpaceNet, check_pixel_range
from .objectives import Norm, Readout, check_readout, input_gradient, readout_success

__all__ = ["NORMS", "bim", "check_budget", "image_generators", "pgd"]

NORMS: tuple[str, ...] = ("linf", "l2")
# Keeps the L2 normalisation of a zero gradient finite.
_TINY = 1e-12


# ---------------------------------------------------------------------- geometry
def _per_image_norm(values: Tensor) -> Tensor:
    """L2 norm of each image, shaped [B, 1, 1, 1] for broadcasting."""
    return values.flatten(1).norm(dim=1).clamp_min(_TINY).view(-1, *([1] * (values.dim() - 1)))


def _project(delta: Tensor, epsilon: float | Tensor, norm: Norm) -> Tensor:
    """``delta`` in the ball of radius ``epsilon`` (a float, or one per image [B, 1, 1, 1])."""
    if norm == "linf":
        if isinstance(epsilon, Tensor):
            return torch.maximum(torch.minimum(delta, epsilon), -epsilon)
        return delta.clamp(-epsilon, epsilon)
    return delta * (epsilon / _per_image_norm(delta)).clamp(max=1.0)


def _ascent_direction(gradient: Tensor, norm: Norm) -> Tensor:
    if norm == "linf":
        return gradient.sign()
    return gradient / _per_image_norm(gradient)


def image_generators(
    generator: torch.Generator | Sequence[torch.Generator] | None, count: int
) -> list[torch.Generator]:
    """One CPU generator per image: ``generator`` as given when it is a list (one per image,
    e.g. seeded by image index, so an image's draws do not depend on its batch), else
    generators seeded by draws from ``generator`` (seeded 0 if None)."""
    if isinstance(generator, Sequence):
        if len(generator) != count:
            raise ConfigError(f"generator: expected one per image ({count}), got {len(generator)}")
        return list(generator)
    source = generator if generator is not None else torch.Generator().manual_seed(0)
    seeds = torch.randint(0, 2**62, (count,), generator=source, device=source.device)
    return [torch.Generator().manual_seed(int(seed)) for seed in seeds]


def _random_start(
    images: Tensor, epsilon: float, norm: Norm, generators: list[torch.Generator]
) -> Tensor:
    """A random point of the epsilon ball around ``images`` (uniform in L-inf; uniform
    direction and radius in L2), each image drawn from its own generator."""
    shape = images.shape[1:]
    if norm == "linf":
        noise = torch.stack([torch.rand(shape, generator=g) for g in generators]) * 2 - 1
        delta = noise.to(images) * epsilon
    else:
        direction = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(images)
        radius = torch.cat([torch.rand(1, generator=g) for g in generators]).to(images)
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
    steps: int = 50,
    restarts: int = 1,
    step_size: float | None = None,
    random_start: bool = True,
    targets: Tensor | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
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
        steps: gradient steps per restart.
        restarts: random starts; each one attacks only the images no earlier one fooled.
        step_size: default 2.5 * epsilon / steps.
        random_start: start from a random point of the ball (PGD) or the image (BIM).
        targets: int [B] for a targeted attack.
        generator: for the random starts: one generator per image (the draws of an image then
            do not depend on its batch), or one for the batch (a CPU generator seeded 0 if None).

    Returns:
        Adversarial images [B, C, H, W] in [0, 1] within the ball: for each image the first
        iterate that succeeded at the readout, else the last one of the last restart.
    """
    check_budget(epsilon, norm, steps)
    check_int(restarts, "restarts")
    check_pixel_range(images)
    check_readout(readout, timesteps)
    images = images.detach()
    if epsilon == 0:
        return images.clone()
    step = 2.5 * epsilon / steps if step_size is None else float(step_size)
    generators = image_generators(generator, len(images)) if random_start else []
    adversarial = images.clone()
    done = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
    for _ in range(restarts if random_start else 1):
        todo = (~done).nonzero().flatten()
        if todo.numel() == 0:
            break
        start = images[todo]
        if random_start:
            start = _random_start(start, epsilon, norm, [generators[int(i)] for i in todo])
        todo_targets = None if targets is None else targets[todo]
        crafted, fooled = _descend(
            model, images[todo], labels[todo], start, todo_targets, epsilon=epsilon,
            timesteps=timesteps, readout=readout, norm=norm, steps=steps, step=step,
        )  # fmt: skip
        adversarial[todo] = crafted
        done[todo] = fooled
    return adversarial


def _descend(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    start: Tensor,
    targets: Tensor | None,
    *,
    epsilon: float | Tensor,
    timesteps: int,
    readout: Readout,
    norm: Norm,
    steps: int,
    step: float | Tensor,
) -> tuple[Tensor, Tensor]:
    """One run of projected gradient steps from ``start``: (images, bool [B] fooled), each
    image the first iterate that succeeded, else the last one. ``epsilon`` and ``step``: one
    number, or one per image [B, 1, 1, 1]."""
    adversarial = start.clone()
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
        which = active[moving]
        image_step = step[which] if isinstance(step, Tensor) else step
        image_epsilon = epsilon[which] if isinstance(epsilon, Tensor) else epsilon
        stepped = current[moving] + image_step * _ascent_direction(gradient[moving], norm)
        delta = _project(stepped - images[which], image_epsilon, norm)
        adversarial[which] = (images[which] + delta).clamp(0.0, 1.0)
    return adversarial, done


def descend_per_image(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    epsilons: Tensor,
    *,
    timesteps: int,
    readout: Readout,
    norm: Norm,
    steps: int,
) -> tuple[Tensor, Tensor]:
    """BIM from the clean images with one budget per image (``epsilons`` float [B]), step
    2.5 * epsilon / steps: (adversarial images, bool [B] fooled)."""
    radius = epsilons.to(images).view(-1, *([1] * (images.dim() - 1)))
    return _descend(
        model, images.detach(), labels, images.detach().clone(), None, epsilon=radius,
        timesteps=timesteps, readout=readout, norm=norm, steps=steps, step=2.5 * radius / steps,
    )  # fmt: skip


def bim(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    *,
    epsilon: float,
    timesteps: int,
    readout: Readout,
    norm: Norm = "linf",
    steps: int = 50,
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
