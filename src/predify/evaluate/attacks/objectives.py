"""What an attack optimises and when it succeeds: the loss at a readout, the success test, the
input gradient through the unrolled dynamics, and the targets of a targeted attack."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError
from ..pixel_space import PixelSpaceNet

__all__ = [
    "Norm",
    "Readout",
    "attack_loss",
    "check_readout",
    "input_gradient",
    "readout_success",
    "success_mask",
    "target_labels",
]

Norm = Literal["linf", "l2"]
#: A timestep whose logits an attack reads, or ``"sum"``: the losses of all timesteps summed.
Readout = int | Literal["sum"]


def target_labels(labels: Tensor, num_classes: int, shift: int = 1) -> Tensor:
    """Targets ``(labels + shift) mod num_classes`` (int [B]); shift in 1..classes-1."""
    if not 1 <= shift < num_classes:
        raise ConfigError(
            f"target shift {shift} is not in 1..{num_classes - 1} for {num_classes} classes"
        )
    return (labels + shift) % num_classes


def check_readout(readout: Readout, timesteps: int) -> int:
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


def readout_success(
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
    unrolled = check_readout(readout, timesteps)
    leaf = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(leaf, timesteps=unrolled).logits
        loss = attack_loss(logits, labels, readout, targets).sum()
        (gradient,) = torch.autograd.grad(loss, leaf)
    return gradient, logits.detach()
