"""A predictive network as the plain classifier attack libraries take: [0, 1] images in,
[B, K] logits out.

torchattacks, foolbox and AutoAttack call ``model(images)`` and expect one [B, K] tensor; a
[`PredictiveNet`][predify.network.PredictiveNet] returns a `PNetOutput` with the logits of every
timestep. [`classifier()`][predify.evaluate.readout_classifier.classifier] picks one readout (or
their mean) and puts the network's normalisation in front, so attack budgets are in pixel units.
The module is called ``readout_classifier`` so that ``predify.evaluate.classifier`` stays the
function.

```python
from predify.evaluate import classifier

model = classifier(pnet, timestep=5)  # images [B, C, H, W] in [0, 1] -> logits [B, K]
```

torchattacks (``pip install torchattacks``):

```python
import torchattacks

adversarial = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=50)(images, labels)
```

foolbox 3 (``pip install foolbox``):

```python
import foolbox as fb

fmodel = fb.PyTorchModel(model, bounds=(0, 1))
attack = fb.attacks.LinfBasicIterativeAttack(abs_stepsize=1 / 255, steps=20, random_start=False)
_, adversarial, success = attack(fmodel, images, labels, epsilons=8 / 255)
```

AutoAttack (``pip install pyautoattack``, the authors' package):

```python
from pyautoattack import AutoAttack

adversary = AutoAttack(model, norm="Linf", eps=8 / 255, version="standard", device="cpu")
adversarial, predicted = adversary.run_standard_evaluation(images, labels, batch_size=100)
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from torch import Tensor, nn

from ..data.normalization import InputNormalization
from ..errors import ConfigError
from ..network import PredictiveNet
from .pixel_space import PixelSpaceNet

__all__ = ["ReadoutClassifier", "classifier"]

#: ``"mean"``: the mean of the logits of timesteps 0..T.
Timestep = int | Literal["mean"]


class ReadoutClassifier(nn.Module):
    """``images [B, C, H, W] in [0, 1] -> logits [B, K]`` at one readout of the unrolled network.

    Built by [`classifier()`][predify.evaluate.readout_classifier.classifier]. Each call unrolls
    the network for ``timestep`` steps from a fresh state (nothing is carried between calls, so
    the output depends on the images alone) and differentiates back to the pixels through every
    pcoder update. The network is a submodule: ``.eval()``, ``.train()`` and ``.to()`` reach it.

    Attributes:
        model: the network in pixel space (normalisation inside).
        timestep: the readout: an int in 0..T, or ``"mean"``.
        timesteps: how far the network is unrolled (``timestep``, or T for ``"mean"``).
    """

    def __init__(self, model: PixelSpaceNet, timestep: int, mean: bool) -> None:
        super().__init__()
        self.model = model
        self.timesteps = timestep
        self.mean = mean

    @property
    def timestep(self) -> Timestep:
        return "mean" if self.mean else self.timesteps

    def forward(self, images: Tensor) -> Tensor:
        """Logits [B, K] at the readout (a float tensor, never a tuple or a dataclass)."""
        logits = self.model(images, timesteps=self.timesteps).logits
        return logits.mean(dim=0) if self.mean else logits[self.timesteps]

    def extra_repr(self) -> str:
        return f"timestep={self.timestep!r}"


def classifier(
    pnet: PredictiveNet | PixelSpaceNet,
    timestep: Timestep,
    *,
    timesteps: int | None = None,
    normalization: Mapping[str, Sequence[float]] | InputNormalization | str | None = "network",
) -> ReadoutClassifier:
    """The network read out at ``timestep``, as a [B, K]-logits classifier of [0, 1] images.

    The result is in eval mode, and so is the network (a shared submodule: this sets
    ``pnet.eval()``), because attacks evaluate a fixed model: no batch statistics, no dropout.
    Nothing is registered on the network: predify's temporary hooks live only during a call.

    Args:
        pnet: a [`PredictiveNet`][predify.network.PredictiveNet] (its input normalisation, e.g.
            ``pnet.normalization`` from ``load_run`` or the zoo, is put in front) or a
            [`PixelSpaceNet`][predify.evaluate.pixel_space.PixelSpaceNet] (used as it is).
        timestep: the readout, an int in 0..T (0: the feed-forward pass), or ``"mean"``: the
            mean of the logits of timesteps 0..T.
        timesteps: T for ``"mean"`` (default: the network's ``config.timesteps``).
        normalization: as in [`PixelSpaceNet`][predify.evaluate.pixel_space.PixelSpaceNet]
            (ignored for a `PixelSpaceNet`).

    Raises:
        ConfigError: a timestep that is neither ``"mean"`` nor an int >= 0.
    """
    model = pnet if isinstance(pnet, PixelSpaceNet) else PixelSpaceNet(pnet, normalization)
    if timestep == "mean":
        unrolled = model.pnet.config.timesteps if timesteps is None else timesteps
        if isinstance(unrolled, bool) or not isinstance(unrolled, int) or unrolled < 0:
            raise ConfigError(f"timesteps: expected an int >= 0, got {unrolled!r}")
        return ReadoutClassifier(model, unrolled, mean=True).eval()
    if isinstance(timestep, bool) or not isinstance(timestep, int) or timestep < 0:
        raise ConfigError(f"timestep: expected 'mean' or an int >= 0, got {timestep!r}")
    return ReadoutClassifier(model, timestep, mean=False).eval()
