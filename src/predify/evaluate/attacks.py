"""Adversarial attacks through the unrolled feedback dynamics.

Images live in [0, 1]; the model is a
[`PixelSpaceNet`][predify.evaluate.pixel_space.PixelSpaceNet], so
budgets are in pixel units and normalisation happens inside. Every attack aims at one *readout*:

* ``readout=t`` (an int): the loss is the cross-entropy of ``logits[t]``, the network read out
  after t timesteps. The gradient flows back through the whole unrolled computation up to t:
  every pcoder update, every decoder prediction and every error-gradient term.
* ``readout="sum"``: the loss is the sum of the cross-entropies of all timesteps 0..T.

Untargeted attacks raise the loss of the true label; targeted ones lower the loss of the target
``(label + shift) mod classes`` (the Predify paper's choice). An attack *succeeds* on an image
when the prediction at the readout is wrong (untargeted) or is the target (targeted); for
``"sum"``, when that holds at every timestep. Success rates are fractions of all attacked images,
so at epsilon 0 the untargeted rate is the clean error.

White-box attacks (written here, on torch only): PGD (Madry et al., random start, step
2.5 * eps / steps) and BIM (Kurakin et al., iterative FGSM from the clean image, step
1.25 * eps / steps), in L-inf or L2. Each keeps, per image, the first iterate that succeeds.
Guards against gradient masking, reported beside them: a gradient-free Square attack (L-inf,
Andriushchenko et al., 2020, a compact version written here; ``torchattacks`` is not needed) and
a transfer attack (PGD crafted on the feed-forward readout t = 0, evaluated at every timestep).
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..runtime.progress import resolve_progress
from ..runtime.store import ResultStore, pack_bits, unpack_bits
from .metrics import bootstrap_ci
from .pixel_space import PixelSpaceNet, check_pixel_range

__all__ = [
    "ATTACKS",
    "FULL_SUCCESS",
    "NORMS",
    "AttackReport",
    "Readout",
    "attack_loss",
    "bim",
    "default_epsilons",
    "gradient_masking_checks",
    "input_gradient",
    "pgd",
    "run_attacks",
    "square",
    "success_mask",
    "target_labels",
]

Norm = Literal["linf", "l2"]
Readout = int | Literal["sum"]

#: The attacks [`run_attacks()`][predify.evaluate.attacks.run_attacks] knows.
ATTACKS: tuple[str, ...] = ("pgd", "bim", "square", "transfer")
NORMS: tuple[str, ...] = ("linf", "l2")
#: A white-box attack at the largest epsilon should reach this success rate; less suggests
#: gradient masking (or too few steps).
FULL_SUCCESS = 0.99
# Square or transfer beating the white-box attack by more than this is flagged.
_MASKING_MARGIN = 0.05
# Keeps the L2 normalisation of a zero gradient finite.
_TINY = 1e-12


# ---------------------------------------------------------------------- objectives
def target_labels(labels: Tensor, num_classes: int, shift: int = 1) -> Tensor:
    """Targets ``(labels + shift) mod num_classes`` (int [B]); shift in 1..classes-1."""
    if not 1 <= shift < num_classes:
        raise ConfigError(
            f"target shift {shift} is not in 1..{num_classes - 1} for {num_classes} classes"
        )
    return (labels + shift) % num_classes


def _check_readout(readout: Readout, timesteps: int) -> int:
    """T' the network must be unrolled to for ``readout``."""
    if readout == "sum":
        return timesteps
    if isinstance(readout, bool) or not isinstance(readout, int) or not 0 <= readout <= timesteps:
        raise ConfigError(
            f"readout: expected 'sum' or a timestep in 0..{timesteps}, got {readout!r}"
        )
    return readout


def attack_loss(
    logits: Tensor, labels: Tensor, readout: Readout, targets: Tensor | None = None
) -> Tensor:
    """Per-image objective the attack ascends, float [B].

    Args:
        logits: [T'+1, B, K] from one unrolled pass.
        labels: int [B] true labels.
        readout: a timestep (index into ``logits``) or ``"sum"`` (all timesteps).
        targets: int [B] for a targeted attack (then the loss is -CE(target)).
    """
    selected = logits if readout == "sum" else logits[readout].unsqueeze(0)
    steps, batch, classes = selected.shape
    wanted = labels if targets is None else targets
    cross_entropy = F.cross_entropy(
        selected.reshape(-1, classes), wanted.repeat(steps), reduction="none"
    ).view(steps, batch)
    per_image = cross_entropy.sum(dim=0)
    return per_image if targets is None else -per_image


def success_mask(logits: Tensor, labels: Tensor, targets: Tensor | None = None) -> Tensor:
    """bool [..., B]: wrong prediction (untargeted) or the target predicted (targeted).

    Args:
        logits: [..., B, K], e.g. [T+1, B, K].
    """
    predictions = logits.argmax(dim=-1)
    if targets is None:
        return predictions != labels
    return predictions == targets


def _readout_success(
    logits: Tensor, labels: Tensor, readout: Readout, targets: Tensor | None
) -> Tensor:
    """bool [B]: success at the readout (at every timestep for ``"sum"``)."""
    if readout == "sum":
        return success_mask(logits, labels, targets).all(dim=0)
    return success_mask(logits[readout], labels, targets)


def input_gradient(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    *,
    readout: Readout,
    timesteps: int,
    targets: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Gradient of the summed attack loss with respect to the pixels, through all timesteps.

    Args:
        images: [B, C, H, W] in [0, 1].
        readout: which logits the loss reads (see
            [`attack_loss()`][predify.evaluate.attacks.attack_loss]).
        timesteps: T (the network is unrolled to the readout only: later steps cannot matter).

    Returns:
        (gradient [B, C, H, W], logits [T'+1, B, K] detached) where T' = readout (T for "sum").
    """
    unrolled = _check_readout(readout, timesteps)
    leaf = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(leaf, timesteps=unrolled).logits
        loss = attack_loss(logits, labels, readout, targets).sum()
        (gradient,) = torch.autograd.grad(loss, leaf)
    return gradient, logits.detach()


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


def _check_budget(epsilon: float, norm: str, steps: int) -> None:
    if norm not in NORMS:
        raise ConfigError(f"norm: expected one of {', '.join(NORMS)}, got {norm!r}")
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon >= 0):
        raise ConfigError(f"epsilon: expected a number >= 0, got {epsilon!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps: expected an integer >= 1, got {steps!r}")


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
    _check_budget(epsilon, norm, steps)
    check_pixel_range(images)
    _check_readout(readout, timesteps)
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
                unrolled = _check_readout(readout, timesteps)
                logits = model(current, timesteps=unrolled).logits
            done[active] = _readout_success(logits, labels[active], readout, active_targets)
            break
        gradient, logits = input_gradient(
            model, current, labels[active], readout=readout, timesteps=timesteps,
            targets=active_targets,
        )  # fmt: skip
        succeeded = _readout_success(logits, labels[active], readout, active_targets)
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
    _check_budget(epsilon, norm, steps)
    return pgd(
        model, images, labels, epsilon=epsilon, timesteps=timesteps, readout=readout, norm=norm,
        steps=steps, step_size=1.25 * epsilon / steps if step_size is None else step_size,
        random_start=False, targets=targets,
    )  # fmt: skip


# ---------------------------------------------------------------------- gradient-free attack
def _square_fraction(p_init: float, iteration: int, queries: int) -> float:
    """The Square attack's schedule of the window area (fraction of the image), rescaled from
    the paper's 10000 queries to ``queries``."""
    scaled = int(iteration / queries * 10000)
    for bound, divisor in (
        (10, 1), (50, 2), (200, 4), (500, 8), (1000, 16),
        (2000, 32), (4000, 64), (6000, 128), (8000, 256), (10000, 512),
    ):  # fmt: skip
        if scaled <= bound:
            return p_init / divisor
    return p_init / 512


def _margin(logits: Tensor, labels: Tensor, readout: Readout, targets: Tensor | None) -> Tensor:
    """float [B], < 0 exactly when the attack succeeds at the readout.

    Untargeted: z_label - max_{j != label} z_j. Targeted: max_{j != target} z_j - z_target.
    For ``"sum"``: the largest margin over timesteps (success needs every timestep).
    """
    selected = logits if readout == "sum" else logits[readout].unsqueeze(0)
    wanted = labels if targets is None else targets
    picked = selected.gather(-1, wanted.view(1, -1, 1).expand(selected.shape[0], -1, 1))
    others = selected.scatter(-1, wanted.view(1, -1, 1).expand_as(picked), -math.inf)
    best_other = others.max(dim=-1).values
    margin = picked.squeeze(-1) - best_other if targets is None else best_other - picked.squeeze(-1)
    return margin.max(dim=0).values


def square(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    *,
    epsilon: float,
    timesteps: int,
    readout: Readout,
    queries: int = 300,
    p_init: float = 0.8,
    targets: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Square attack (L-inf), gradient-free: random square updates at the corners of the ball.

    A compact version of Andriushchenko et al. (ECCV 2020): vertical-stripe initialisation, then
    per query one random square window (side from the paper's schedule of ``p_init``) set to
    +-epsilon per channel, kept if the margin loss decreases. Only images not yet fooled are
    queried. (The original also resamples windows that would not change the image; skipped.)

    Args:
        images: [B, C, H, W] in [0, 1].
        queries: forward passes per image at most (including the initialisation).
        p_init: initial fraction of the image a window covers; 0.8, the paper's L-inf value
            (0.1 finds far fewer adversarials at small budgets, too weak to reveal masking).

    The other arguments are those of [`pgd()`][predify.evaluate.attacks.pgd].

    Returns:
        Adversarial images [B, C, H, W] in [0, 1] with L-inf distance <= epsilon.
    """
    _check_budget(epsilon, "linf", max(queries, 1))
    check_pixel_range(images)
    unrolled = _check_readout(readout, timesteps)
    if not 0 < p_init <= 1:
        raise ConfigError(f"p_init: expected a fraction in (0, 1], got {p_init!r}")
    images = images.detach()
    if epsilon == 0:
        return images.clone()
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    batch, channels, height, width = images.shape

    def signs(shape: tuple[int, ...]) -> Tensor:
        draws = torch.randint(0, 2, shape, generator=generator, device=generator.device)
        return (draws * 2 - 1).to(images)

    def margins(candidates: Tensor, index: Tensor) -> Tensor:
        with torch.inference_mode():
            logits = model(candidates, timesteps=unrolled).logits
        wanted = None if targets is None else targets[index]
        return _margin(logits, labels[index], readout, wanted)

    everyone = torch.arange(batch, device=images.device)
    adversarial = (images + epsilon * signs((batch, channels, 1, width))).clamp(0.0, 1.0)
    margin = margins(adversarial, everyone)
    rows = torch.arange(height, device=images.device)
    cols = torch.arange(width, device=images.device)
    for iteration in range(queries - 1):
        active = (margin >= 0).nonzero().flatten()
        if active.numel() == 0:
            break
        fraction = _square_fraction(p_init, iteration, queries)
        side = int(min(max(round(math.sqrt(fraction * height * width)), 1), height, width))
        count = active.numel()
        top = torch.randint(0, height - side + 1, (count,), generator=generator).to(rows.device)
        left = torch.randint(0, width - side + 1, (count,), generator=generator).to(cols.device)
        in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)  # [n, H]
        in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)  # [n, W]
        window = (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)  # [n, 1, H, W]
        delta = adversarial[active] - images[active]
        delta = torch.where(window, epsilon * signs((count, channels, 1, 1)), delta)
        candidate = (images[active] + delta).clamp(0.0, 1.0)
        candidate_margin = margins(candidate, active)
        better = candidate_margin < margin[active]
        adversarial[active[better]] = candidate[better]
        margin[active[better]] = candidate_margin[better]
    return adversarial


# ---------------------------------------------------------------------- the suite
def default_epsilons(norm: Norm, channels: int) -> list[float]:
    """Three budgets used when none are given: MNIST-scale ones for 1-channel images, the usual
    ImageNet/CIFAR ones (k/255 in L-inf) otherwise. The largest is meant to be large enough for
    a working white-box attack to fool nearly every image (the gradient-masking check)."""
    if norm == "linf":
        return [0.05, 0.1, 0.3] if channels == 1 else [1 / 255, 4 / 255, 16 / 255]
    return [0.5, 1.5, 5.0] if channels == 1 else [0.25, 1.0, 4.0]


def _seed(seed: int, *parts: object) -> int:
    return zlib.crc32("/".join(str(part) for part in (seed, *parts)).encode())


def _eps_key(epsilon: float) -> str:
    return f"{epsilon:.6g}"


@dataclass(frozen=True)
class _Budget:
    """What every attack cell of one [`run_attacks()`][predify.evaluate.attacks.run_attacks] call
    shares."""

    norm: Norm
    timesteps: int
    steps: int
    square_queries: int
    batch_size: int
    seed: int
    targeted: bool
    target_shift: int
    num_images: int

    def tag(self) -> str:
        """A short digest of the settings, part of every cell's progress key: cells crafted
        with other settings are never mistaken for these."""
        return f"{zlib.crc32(repr(self).encode()):08x}"


def _success_all_timesteps(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    targets: Tensor | None,
    budget: _Budget,
) -> np.ndarray:
    """bool [T+1, N]: success at every timestep, one unrolled pass per batch."""
    flags = []
    with torch.inference_mode():
        for start in range(0, len(images), budget.batch_size):
            part = slice(start, start + budget.batch_size)
            logits = model(images[part], timesteps=budget.timesteps).logits
            flags.append(success_mask(logits, labels[part], _part(targets, part)).cpu())
    return torch.cat(flags, dim=1).numpy()


def _part(targets: Tensor | None, part: slice) -> Tensor | None:
    return None if targets is None else targets[part]


def _craft(
    model: PixelSpaceNet,
    attack: str,
    images: Tensor,
    labels: Tensor,
    targets: Tensor | None,
    epsilon: float,
    readout: Readout,
    budget: _Budget,
    generator: torch.Generator,
) -> Tensor:
    """Adversarial versions of one batch by ``attack`` (pgd, bim or square)."""
    common: dict[str, Any] = {
        "epsilon": epsilon, "timesteps": budget.timesteps, "readout": readout, "targets": targets,
    }  # fmt: skip
    if attack == "pgd":
        return pgd(model, images, labels, norm=budget.norm, steps=budget.steps,
                   generator=generator, **common)  # fmt: skip
    if attack == "bim":
        return bim(model, images, labels, norm=budget.norm, steps=budget.steps, **common)
    return square(model, images, labels, queries=budget.square_queries, generator=generator,
                  **common)  # fmt: skip


def _attack_cell(
    model: PixelSpaceNet,
    attack: str,
    epsilon: float,
    readout: Readout,
    images: Tensor,
    labels: Tensor,
    targets: Tensor | None,
    budget: _Budget,
    store: ResultStore | None,
) -> np.ndarray:
    """bool [T+1, N]: success at every timestep of the images one (attack, epsilon, readout)
    cell crafts; read from ``store`` when it holds the cell, else computed and stored."""
    key = f"attack-{attack}-eps{_eps_key(epsilon)}-t{readout}-{budget.tag()}"
    shape = (budget.timesteps + 1, len(images))
    payload = store.get(key) if store is not None else None
    if payload is not None:
        try:
            return unpack_bits(str(payload["success_bits"]), shape)
        except (KeyError, ValueError):
            pass  # a damaged file: compute the cell again
    seed = _seed(budget.seed, attack, _eps_key(epsilon), readout)
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, len(images), budget.batch_size):
        part = slice(start, start + budget.batch_size)
        batch = (images[part], labels[part], _part(targets, part))
        batches.append(_craft(model, attack, *batch, epsilon, readout, budget, generator))
    crafted = torch.cat(batches)
    success = _success_all_timesteps(model, crafted, labels, targets, budget)
    if store is not None:
        store.put(key, {"attack": attack, "epsilon": epsilon, "readout": readout,
                        "success_bits": pack_bits(success)})  # fmt: skip
    return success


def _readout_list(readouts: Sequence[int] | Literal["sum"] | None, timesteps: int) -> list[Readout]:
    chosen: list[Readout]
    if readouts == "sum":
        chosen = ["sum"]
    elif readouts is None:
        chosen = list(range(timesteps + 1))
    else:
        chosen = [int(readout) for readout in readouts]
    for readout in chosen:
        _check_readout(readout, timesteps)
    return chosen


@dataclass
class AttackReport:
    """What [`run_attacks()`][predify.evaluate.attacks.run_attacks] measured; `to_json()` is
    ``results.json``'s ``attacks``
    block (the attack blocks at its top level).

    Attributes:
        readouts: the timesteps PGD/BIM attacked (``objective`` ``"sum"``: all at once).
        clean_success: the success rate at every timestep before any attack.
        attacks: per attack (``pgd``, ``bim``, ``square``, ``transfer``): ``success[eps]`` per
            readout (per timestep for ``transfer``), with ``success_ci`` and
            ``success_all_timesteps`` for PGD/BIM.
        checks: the gradient-masking diagnostics
            ([`gradient_masking_checks()`][predify.evaluate.attacks.gradient_masking_checks]).
    """

    norm: str
    targeted: bool
    target_shift: int | None
    epsilons: list[float]
    timesteps: int
    num_images: int
    objective: str
    readouts: list[int]
    steps: int
    success_definition: str
    clean_success: list[float]
    attacks: dict[str, dict[str, Any]]
    checks: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        header = {name: getattr(self, name) for name in _REPORT_HEADER}
        return {**header, **self.attacks, "checks": self.checks}


_REPORT_HEADER = (
    "norm",
    "targeted",
    "target_shift",
    "epsilons",
    "timesteps",
    "num_images",
    "objective",
    "readouts",
    "steps",
    "success_definition",
    "clean_success",
)


def run_attacks(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    *,
    attacks: Sequence[str],
    epsilons: Sequence[float],
    timesteps: int,
    norm: Norm = "linf",
    targeted: bool = False,
    target_shift: int = 1,
    num_classes: int | None = None,
    readouts: Sequence[int] | Literal["sum"] | None = None,
    square_readouts: Sequence[int] | None = None,
    steps: int = 10,
    square_queries: int = 300,
    batch_size: int = 100,
    seed: int = 0,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    store: ResultStore | None = None,
    progress: bool | None = None,
) -> AttackReport:
    """White-box PGD/BIM at each readout, Square and transfer from t = 0, for every epsilon.

    Args:
        model: network in pixel space.
        images: [N, C, H, W] in [0, 1]; labels: int [N].
        attacks: a subset of `ATTACKS`.
        epsilons: budgets in pixel units (the norm's).
        timesteps: T.
        targeted: aim at ``(label + target_shift) mod num_classes``.
        readouts: timesteps attacked by PGD/BIM (default: every one, 0..T), or ``"sum"`` to
            attack the sum of the losses of all timesteps.
        square_readouts: timesteps the Square attack aims at (default: 0 and T).
        steps: PGD/BIM iterations; square_queries: Square's query budget per image.
        batch_size: images attacked together.
        seed: seeds random starts and Square's draws (per attack, epsilon and readout).
        n_resamples, confidence: bootstrap intervals of success rates (0: none).
        store: finished (attack, epsilon, readout) cells are read from and written to it,
            under keys that include a digest of the other settings.

    Returns:
        An [`AttackReport`][predify.evaluate.attacks.AttackReport] (JSON-ready values).
        ``attacks[<attack>]["success"][eps]``
        lists the success rate at each readout of ``readouts`` (for PGD/BIM) or
        ``square_readouts`` (Square), and at every timestep 0..T for ``transfer``. PGD/BIM also
        give ``success_all_timesteps[eps][readout]``: the rate at every timestep of the images
        crafted against that readout. ``checks`` holds the gradient-masking diagnostics.
    """
    unknown = [name for name in attacks if name not in ATTACKS]
    if unknown:
        raise ConfigError(f"unknown attack {unknown[0]!r}; expected some of {', '.join(ATTACKS)}")
    epsilons = [float(eps) for eps in epsilons]
    for eps in epsilons:
        _check_budget(eps, norm, steps)
    check_pixel_range(images)
    readout_list = _readout_list(readouts, timesteps)
    square_list = _readout_list(
        sorted({0, timesteps}) if square_readouts is None else square_readouts, timesteps
    )
    classes = model.num_classes() if num_classes is None else num_classes
    device = model.device
    images, labels = images.to(device), labels.to(device)
    targets = target_labels(labels, classes, target_shift) if targeted else None
    budget = _Budget(
        norm, timesteps, steps, square_queries, batch_size, seed, targeted, target_shift,
        len(images),
    )  # fmt: skip

    plan: list[tuple[str, float, Readout]] = []
    for attack in attacks:
        if attack in ("pgd", "bim"):
            plan += [(attack, eps, readout) for eps in epsilons for readout in readout_list]
        elif attack == "square" and norm == "linf":
            plan += [("square", eps, readout) for eps in epsilons for readout in square_list]
        elif attack == "transfer":
            # Crafted by PGD on the feed-forward readout: the PGD cell (eps, t = 0) itself.
            plan += [("pgd", eps, 0) for eps in epsilons if ("pgd", eps, 0) not in plan]
    outcomes = {
        (attack, eps, readout): _attack_cell(
            model, attack, eps, readout, images, labels, targets, budget, store
        )
        for attack, eps, readout in tqdm(
            plan, desc="attacks", unit="cell", disable=not resolve_progress(progress)
        )
    }
    clean = _success_all_timesteps(model, images, labels, targets, budget)

    def rate(flags: np.ndarray) -> float:
        return float(flags.mean())

    def interval(flags: np.ndarray, key: str) -> list[float]:
        low, high = bootstrap_ci(
            flags.astype(np.float64), n_resamples=n_resamples, confidence=confidence,
            seed=_seed(seed, key),
        )  # fmt: skip
        return [float(low), float(high)]

    def at_readout(flags: np.ndarray, readout: Readout) -> np.ndarray:
        return np.asarray(flags.all(axis=0) if readout == "sum" else flags[readout])

    results: dict[str, Any] = {
        "norm": norm,
        "targeted": targeted,
        "target_shift": target_shift if targeted else None,
        "epsilons": epsilons,
        "timesteps": timesteps,
        "num_images": len(images),
        "objective": "sum" if readouts == "sum" else "per-timestep",
        "readouts": readout_list,
        "steps": steps,
        "success_definition": (
            "fraction of attacked images whose prediction at the readout is the target"
            if targeted
            else "fraction of attacked images misclassified at the readout"
        ),
        "clean_success": [rate(row) for row in clean],
    }
    for attack in attacks:
        if attack in ("pgd", "bim"):
            results[attack] = {
                "success": {
                    _eps_key(eps): [
                        rate(at_readout(outcomes[attack, eps, r], r)) for r in readout_list
                    ]
                    for eps in epsilons
                },
                "success_all_timesteps": {
                    _eps_key(eps): {
                        str(r): [rate(row) for row in outcomes[attack, eps, r]]
                        for r in readout_list
                    }
                    for eps in epsilons
                },
            }
            if n_resamples > 0:
                results[attack]["success_ci"] = {
                    _eps_key(eps): [
                        interval(at_readout(outcomes[attack, eps, r], r), f"{attack}{eps}{r}")
                        for r in readout_list
                    ]
                    for eps in epsilons
                }
        elif attack == "square" and norm != "linf":
            results["square"] = {"skipped": "the Square attack here is L-inf only"}
        elif attack == "square":
            results["square"] = {
                "readouts": square_list,
                "queries": square_queries,
                "success": {
                    _eps_key(eps): [rate(outcomes["square", eps, r][r]) for r in square_list]
                    for eps in epsilons
                },
            }
        elif attack == "transfer":
            results["transfer"] = {
                "source_readout": 0,
                "success": {
                    _eps_key(eps): [rate(row) for row in outcomes["pgd", eps, 0]]
                    for eps in epsilons
                },
            }
    results["checks"] = gradient_masking_checks(results)
    return AttackReport(
        **{name: results[name] for name in _REPORT_HEADER},
        attacks={name: results[name] for name in attacks if name in results},
        checks=results["checks"],
    )


def gradient_masking_checks(results: Mapping[str, Any]) -> dict[str, Any]:
    """Diagnostics of gradient masking from [`run_attacks()`][predify.evaluate.attacks.run_attacks]
    results.

    * the white-box attacks should reach `FULL_SUCCESS` at the largest epsilon;
    * success should not fall as epsilon grows (beyond 5 points);
    * the gradient-free Square attack and the transfer attack should not beat the white-box
      attack on the same readout (beyond 5 points).

    Returns:
        ``{"max_epsilon", "white_box_success_at_max_epsilon": {attack: min over readouts},
        "reaches_full_success": bool | None, "warnings": [...]}``.
    """
    epsilons = [float(eps) for eps in results["epsilons"]]
    readouts = list(results["readouts"])
    warnings: list[str] = []
    checks: dict[str, Any] = {
        "max_epsilon": max(epsilons) if epsilons else None,
        "white_box_success_at_max_epsilon": {},
        "reaches_full_success": None,
        "warnings": warnings,
    }
    if not epsilons:
        return checks
    largest = _eps_key(max(epsilons))
    ordered = [_eps_key(eps) for eps in sorted(epsilons)]
    for attack in ("pgd", "bim"):
        if attack not in results:
            continue
        success = results[attack]["success"]
        worst = min(success[largest])
        checks["white_box_success_at_max_epsilon"][attack] = worst
        if worst < FULL_SUCCESS:
            warnings.append(
                f"{attack} reaches only {worst:.1%} success at epsilon {largest} on some readout: "
                "possible gradient masking, or too few steps / too small a budget"
            )
        for index, readout in enumerate(readouts):
            rates = [success[key][index] for key in ordered]
            if any(
                later < earlier - _MASKING_MARGIN for earlier, later in itertools.pairwise(rates)
            ):
                warnings.append(f"{attack} success falls as epsilon grows at readout {readout}")
    if checks["white_box_success_at_max_epsilon"]:
        checks["reaches_full_success"] = all(
            value >= FULL_SUCCESS for value in checks["white_box_success_at_max_epsilon"].values()
        )
    white_box = results.get("pgd") or results.get("bim")
    if white_box is not None:
        for name in ("square", "transfer"):
            other = results.get(name)
            if not other or "success" not in other:
                continue
            other_readouts = other.get("readouts", list(range(int(results["timesteps"]) + 1)))
            for key in ordered:
                for position, readout in enumerate(other_readouts):
                    if readout not in readouts:
                        continue
                    box = white_box["success"][key][readouts.index(readout)]
                    value = other["success"][key][position]
                    if value > box + _MASKING_MARGIN:
                        warnings.append(
                            f"{name} ({value:.1%}) beats the white-box attack ({box:.1%}) at "
                            f"epsilon {key}, readout {readout}: possible gradient masking"
                        )
    return checks
