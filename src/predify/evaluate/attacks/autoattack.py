"""AutoAttack's standard version (Croce and Hein, ICML 2020) through the unrolled dynamics, by
the authors' own package, ``pyautoattack`` (the code RobustBench runs).

Standard version: APGD-CE (100 iterations, 1 restart), APGD-T (100 iterations for each of 9
target classes), FAB-T (100 iterations for each of 9 target classes) and Square (5000 queries),
each run only on the images the earlier ones did not fool. The network is read out at one
timestep by [`classifier()`][predify.evaluate.readout_classifier.classifier], so every gradient
flows through the unrolled feedback dynamics up to that readout.

Why ``pyautoattack`` rather than ``torchattacks.AutoAttack``: it is the reference code of the
paper, maintained by its authors and run by RobustBench, so numbers are comparable with the
leaderboards; torchattacks' version is a re-implementation (cross-checked against it in
``tests/evaluate/test_attacks_libraries.py``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from ...errors import ConfigError
from ..pixel_space import PixelSpaceNet, check_pixel_range
from ..readout_classifier import classifier
from .objectives import Norm
from .results import AttackBudget

__all__ = ["AUTOATTACK_BUDGET", "autoattack"]

# AutoAttack's standard version: 9 target classes (fewer when the network has fewer classes).
_TARGET_CLASSES = 9
#: What the standard version spends per image (pyautoattack's fixed settings).
AUTOATTACK_BUDGET = AttackBudget(steps=100, restarts=1, queries=5000, target_classes=9)


class _Flags(logging.Handler):
    """Collects AutoAttack's warnings (its checks for randomized, dynamic or probabilistic
    outputs, and Square beating the gradient attacks) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.messages:
            self.messages.append(message)


@contextmanager
def _quiet(device: torch.device) -> Iterator[_Flags]:
    """AutoAttack's log captured, the global random state restored after its reseeding, and
    any tracer (a debugger, coverage) put back after its check for dynamic defenses."""
    logger = logging.getLogger("auto-attack")
    flags, propagate, tracer = _Flags(), logger.propagate, sys.gettrace()
    logger.addHandler(flags)
    logger.propagate = False
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield flags
    finally:
        logger.removeHandler(flags)
        logger.propagate = propagate
        sys.settrace(tracer)


def autoattack(
    model: PixelSpaceNet,
    images: Tensor,
    labels: Tensor,
    *,
    epsilon: float,
    readout: int,
    norm: Norm = "linf",
    num_classes: int,
    seed: int = 0,
) -> tuple[Tensor, tuple[str, ...]]:
    """AutoAttack's standard version (untargeted) against the readout ``readout``.

    Args:
        model: network in pixel space.
        images: [B, C, H, W] in [0, 1]; labels: int [B].
        epsilon: the L-inf or L2 budget in pixel units.
        readout: the timestep read out (0..T).
        num_classes: K (the targeted attacks aim at min(9, K - 1) classes).
        seed: seeds every attack of the run (the global random state is restored afterwards).

    Returns:
        (adversarial images [B, C, H, W]: the clean image where no attack succeeded,
        AutoAttack's own warnings, each once).

    Raises:
        ConfigError: ``pyautoattack`` is not installed.
    """
    try:
        from pyautoattack import AutoAttack
    except ImportError:
        raise ConfigError(
            "--attacks autoattack needs the pyautoattack package: pip install 'predify[attacks]'"
        ) from None
    check_pixel_range(images)
    images = images.detach()
    if epsilon == 0:
        return images.clone(), ()
    device = images.device
    adversary = AutoAttack(
        classifier(model, timestep=readout), norm="Linf" if norm == "linf" else "L2",
        eps=float(epsilon), seed=seed, version="standard", device=device,
    )  # fmt: skip
    targets = min(_TARGET_CLASSES, num_classes - 1)
    adversary.apgd_targeted.n_target_classes = targets
    adversary.fab.n_target_classes = targets
    with _quiet(device) as flags:
        adversarial, _ = adversary.run_standard_evaluation(
            images, labels.to(device), batch_size=len(images)
        )
    return adversarial.detach(), tuple(flags.messages)
