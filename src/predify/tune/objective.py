"""The tuning objective: cross-entropy summed over the timesteps of the unrolled dynamics.

For logits [T+1, B, K] the loss is ``sum_{t=1..T} CE(logits[t], labels)``, averaged over images.
The feed-forward pass (t = 0) is left out: it does not depend on the hyperparameters, so it adds
a constant to the loss and nothing to its gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.noise import NoiseSpec
from ..errors import ConfigError
from ..network import PredictiveNet
from ..submodules import eval_mode
from .data import TuneData, iterate_batches

__all__ = ["Normalize", "check_timesteps", "noisy_batch", "noisy_loss", "timestep_loss"]

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


def timestep_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """``sum_{t=1..T} CE(logits[t], labels)``, each CE a mean over the batch.

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
    noise: NoiseSpec,
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
    noise: NoiseSpec,
    *,
    timesteps: int,
    seed: int = 0,
    batch_size: int = 128,
    normalize: Normalize | None = None,
) -> float:
    """The objective on all of ``data`` with the network's current hyperparameters.

    The noise comes from a generator seeded with ``seed``, so two calls with the same seed (say,
    before and after tuning) see the same noisy images. Runs in eval mode. Returns the mean over
    images of the loss of [`timestep_loss()`][predify.tune.objective.timestep_loss] (NaN or inf
    when the dynamics diverge).
    """
    check_timesteps(timesteps)
    device = network_device(pnet)
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    with eval_mode(pnet):
        for images, labels in iterate_batches(data, batch_size, None):
            x, y = noisy_batch(images, labels, noise, generator, device, normalize)
            loss = timestep_loss(pnet(x, timesteps=timesteps).logits, y)
            total += float(loss) * y.shape[0]
            count += y.shape[0]
    if count == 0:
        raise ConfigError("no images to compute the tuning loss on (0 images)")
    return total / count
